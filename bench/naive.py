"""The script a user would write without crmsync: for every CRM record, search PostHog, GET, PATCH the whole account.

No ledger, no cursor, no batching: every run reads every record of every CRM and, per record, searches PostHog for
the account (by external id, else by name), GETs it, and PATCHes name, link and tags back whole (or POSTs a new
account). It is inbound only: it pushes nothing back to the CRMs, so its request counts are a lower bound for what a
naive two-way script would need. It talks to the stand-ins with plain ``httpx``, as such a script would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from bench.harness import Env
from sandbox.stack import HUBSPOT_TOKEN, POSTHOG_KEY, SALESFORCE_LOGIN, STRIPE_KEY

ACCOUNTS = "/api/environments/1/accounts/"


@dataclass
class NaiveRecord:
    name: str
    external_id: str | None
    link: str
    link_id: str


def _get(http: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """GET, waiting out a 429 as a careful script would (HubSpot's stand-in enforces its 10-second budget)."""
    while True:
        response = http.get(url, **kwargs)
        if response.status_code != 429:
            response.raise_for_status()
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))


def salesforce_records(http: httpx.Client, base: str) -> Iterator[NaiveRecord]:
    token = http.post(f"{base}/services/oauth2/token", data={"grant_type": "password", **SALESFORCE_LOGIN}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    instance = token.get("instance_url", base)
    soql = "SELECT Id, Name, PostHog_External_Id__c FROM Account"
    page = _get(http, f"{instance}/services/data/v59.0/query/", params={"q": soql}, headers=headers).json()
    while True:
        for row in page["records"]:
            yield NaiveRecord(row["Name"], row.get("PostHog_External_Id__c"), "sfdc_id", row["Id"])
        if page.get("done", True) or not page.get("nextRecordsUrl"):
            return
        page = _get(http, f"{instance}{page['nextRecordsUrl']}", headers=headers).json()


def hubspot_records(http: httpx.Client, base: str) -> Iterator[NaiveRecord]:
    headers = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
    params: dict[str, Any] = {"limit": 100, "properties": "name,posthog_external_id", "associations": "deals"}
    while True:
        page = _get(http, f"{base}/crm/v3/objects/companies", params=params, headers=headers).json()
        for row in page["results"]:
            deals = row.get("associations", {}).get("deals", {}).get("results", [])
            if not deals:
                continue
            props = row["properties"]
            yield NaiveRecord(
                props.get("name") or "", props.get("posthog_external_id"), "hubspot_deal_id", deals[0]["id"]
            )
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return
        params["after"] = after


def stripe_records(http: httpx.Client, base: str) -> Iterator[NaiveRecord]:
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = _get(http, f"{base}/v1/customers", params=params, headers=headers).json()
        for row in page["data"]:
            external = (row.get("metadata") or {}).get("posthog_external_id")
            yield NaiveRecord(row.get("name") or row["email"], external, "stripe_customer_id", row["id"])
        if not page.get("has_more"):
            return
        params["starting_after"] = page["data"][-1]["id"]


def apply_record(http: httpx.Client, posthog: str, record: NaiveRecord) -> None:
    """Search, GET, PATCH the whole account (or POST a new one)."""
    key = record.external_id or record.name
    found = _get(http, f"{posthog}{ACCOUNTS}", params={"search": key}).json()["results"]
    match = next(
        (a for a in found if (a.get("external_id") == record.external_id if record.external_id else a["name"] == key)),
        None,
    )
    if match is None:
        body: dict[str, Any] = {"name": record.name, "properties": {record.link: record.link_id}}
        if record.external_id:
            body["external_id"] = record.external_id
        http.post(f"{posthog}{ACCOUNTS}", json=body).raise_for_status()
        return
    account = _get(http, f"{posthog}{ACCOUNTS}{match['id']}/").json()
    properties = {**account.get("properties", {}), record.link: record.link_id}
    body = {"name": record.name, "properties": properties, "tags": account.get("tags", [])}
    http.patch(f"{posthog}{ACCOUNTS}{match['id']}/", json=body).raise_for_status()


def run_naive(env: Env) -> tuple[int, float]:
    """One pass of the naive script over every record of every CRM: (records, seconds)."""
    assert env.stack is not None
    started = time.monotonic()
    records = 0
    with (
        httpx.Client(timeout=60, headers={"Authorization": f"Bearer {POSTHOG_KEY}"}) as posthog_http,
        httpx.Client(timeout=60, verify=str(env.stack.ca_file)) as crm_http,
    ):
        posthog = env.url("posthog")
        sources = (
            salesforce_records(crm_http, env.url("salesforce")),
            hubspot_records(crm_http, env.url("hubspot")),
            stripe_records(crm_http, env.url("stripe")),
        )
        for source in sources:
            for record in source:
                apply_record(posthog_http, posthog, record)
                records += 1
    return records, time.monotonic() - started
