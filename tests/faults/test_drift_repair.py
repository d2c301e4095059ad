"""Drift repair: what a person clears on any side after a sync is put back by the next full sync, and only then.

After a clean sync a person clears the link crmsync pushed to one record of each CRM (the HubSpot deal's
``posthog_account_id``, the Stripe customer's ``metadata.posthog_account_id``, the Salesforce Account's
``PostHog_Account_Id__c``) and, in PostHog, an account's ``stripe_customer_id``, its ``Industry`` custom value and
its account owner (both Salesforce's). An incremental sync trusts the ledger and leaves them; a full sync (per
source, and planned) compares what each system holds with what crmsync wrote, writes the six back, and says so.
The repair costs one listing of PostHog's accounts; a full sync of an undrifted deployment writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync.mapping import get_path
from sync.posthog.custom_properties import list_definitions, set_value
from sync.posthog.relationships import RelationshipApi
from sync.report import RunReport
from tests.faults.harness import Deployment, deployment, final_state, sync_all
from workers.runtime import Runtime

SEED = 30
LINK_FIELDS = {
    "hubspot": "posthog_account_id",
    "stripe": "metadata.posthog_account_id",
    "salesforce": "PostHog_Account_Id__c",
}


def _linked_record(runtime: Runtime, source: str) -> tuple[str, str]:
    """(record id, account id) of the first record of ``source`` that holds its PostHog account id."""
    connector = runtime.connector(source)
    (stream,) = runtime.streams(source)
    for page in connector.pull(stream, None):
        for record in page.records:
            account_id = get_path(record.fields, LINK_FIELDS[source])
            if account_id:
                return record.id, str(account_id)
    raise AssertionError(f"no {source} record holds a PostHog account id")


def _clear_links(dep: Deployment) -> dict[str, Any]:
    """A person clears one link in each CRM and one in PostHog; returns what was cleared, to check it comes back."""
    runtime = dep.runtime
    cleared: dict[str, Any] = {source: _linked_record(runtime, source) for source in LINK_FIELDS}
    with dep.admin("hubspot") as http:
        deal_id = cleared["hubspot"][0]
        http.patch(
            f"/_sandbox/objects/deals/{deal_id}", json={"properties": {"posthog_account_id": ""}}
        ).raise_for_status()
    with dep.admin("stripe") as http:
        customer = cleared["stripe"][0]
        http.post(f"/_sandbox/customers/{customer}", json={"metadata": {"posthog_account_id": None}}).raise_for_status()
    with dep.admin("salesforce") as http:
        sf_id = cleared["salesforce"][0]
        http.patch(f"/_sandbox/sobjects/Account/{sf_id}", json={"PostHog_Account_Id__c": None}).raise_for_status()
    industry = _industry_record(runtime, exclude=cleared["salesforce"][0])
    (definition,) = [d for d in list_definitions(runtime.posthog) or [] if d.name == "Industry"]
    set_value(runtime.posthog, industry[1], definition.id, "Changed by a person")
    cleared["industry"] = industry
    owner = _owner(runtime, industry[1])
    other = next(user for user in range(101, 111) if user != owner["user"]["id"])
    RelationshipApi(runtime.posthog).assign(industry[1], owner["definition"]["id"], other)  # a person reassigns
    cleared["owner"] = owner["user"]["id"]
    account = next(a for a in runtime.posthog.iter_accounts() if a.properties.payload().get("stripe_customer_id"))
    props = account.properties.payload()
    cleared["posthog"] = (account.id, props.pop("stripe_customer_id"))
    runtime.posthog.update_account(account.id, properties=props)
    return cleared


def _industry_record(runtime: Runtime, exclude: str) -> tuple[str, str, str]:
    """(record id, account id, Industry) of a Salesforce Account with an Industry, linked, other than ``exclude``."""
    for page in runtime.connector("salesforce").pull("Account", None):
        for record in page.records:
            account_id, industry = get_path(record.fields, LINK_FIELDS["salesforce"]), record.fields.get("Industry")
            if account_id and industry and record.id != exclude:
                return record.id, str(account_id), str(industry)
    raise AssertionError("no linked Salesforce Account has an Industry")


def _custom_value(runtime: Runtime, account_id: str, name: str) -> Any:
    (definition,) = [d for d in list_definitions(runtime.posthog) or [] if d.name == name]
    path = f"{runtime.posthog.projects_path}/accounts/{account_id}/custom_property_values/"
    answer = runtime.posthog.call("GET", path)
    values = answer.get("results", []) if isinstance(answer, dict) else answer
    return next((v["value"] for v in values if v["definition_id"] == definition.id), None)


def _owner(runtime: Runtime, account_id: str) -> dict[str, Any]:
    """The account's active "Account owner" relationship (PostHog's current generation keeps roles there)."""
    active = RelationshipApi(runtime.posthog).active(account_id)
    return next(r for r in active if r["definition"]["name"] == "Account owner")


def _holds(runtime: Runtime, source: str, record_id: str) -> Any:
    (stream,) = runtime.streams(source)
    (record,) = runtime.connector(source).fetch(stream, [record_id])
    return get_path(record.fields, LINK_FIELDS[source])


def _total(reports: list[RunReport], key: str) -> int:
    return sum(r.counts.get(key, 0) for r in reports)


def _planned(runtime: Runtime, mode: str) -> list[RunReport]:
    """``sync all`` (plan before write), then the outbound passes beat runs between syncs."""
    connectors = {s: runtime.connector(s) for s in LINK_FIELDS}
    reports = runtime.engine.run_planned(connectors, {s: runtime.streams(s) for s in LINK_FIELDS}, mode)
    return reports + [runtime.engine.push_back_pass(connectors[s], runtime.streams(s)[0]) for s in LINK_FIELDS]


def _per_source(runtime: Runtime, mode: str) -> list[RunReport]:
    return sync_all(runtime, mode)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("full_sync", [_per_source, _planned], ids=["per-source", "planned"])
def test_full_sync_puts_back_what_a_person_cleared(full_sync: Callable[[Runtime, str], list[RunReport]]) -> None:
    with deployment(SEED) as dep:
        runtime = dep.runtime
        first = full_sync(runtime, "full")
        assert all(r.status == "succeeded" for r in first), [r.as_dict() for r in first]
        clean = final_state(runtime)
        cleared = _clear_links(dep)

        incremental = full_sync(runtime, "incremental")  # trusts the ledger: nothing comes back
        assert _total(incremental, "repaired_posthog") == 0
        assert all(not _holds(runtime, s, cleared[s][0]) for s in LINK_FIELDS)
        assert _custom_value(runtime, cleared["industry"][1], "Industry") == "Changed by a person"
        assert _owner(runtime, cleared["industry"][1])["user"]["id"] != cleared["owner"]

        with httpx.Client(base_url=dep.stack.url("posthog")) as admin:
            admin.post("/_sandbox/stats/reset").raise_for_status()
            repair = full_sync(runtime, "full")
            stats = admin.get("/_sandbox/stats").json()
        assert all(r.status == "succeeded" for r in repair), [r.as_dict() for r in repair]
        for source, (record_id, account_id) in ((s, cleared[s]) for s in LINK_FIELDS):
            assert _holds(runtime, source, record_id) == account_id, source
            assert _total(repair, f"repaired_{source}") == 1, (source, [r.counts for r in repair])
        account_id, customer = cleared["posthog"]
        assert runtime.posthog.get_account(account_id).properties.payload()["stripe_customer_id"] == customer
        assert _total(repair, "repaired_posthog") == 2  # the cleared link; the owner (and the value) of another
        writes = [  # the query API's POST is a read (the change feed of the outbound passes)
            r for r in stats["requests"] if r["method"] in ("POST", "PATCH") and not r["route"].endswith("/query/")
        ]
        # the account whose link a person cleared, the value and the owner a person changed, nothing else
        assert sum(r["count"] for r in writes) == 3, writes
        assert _custom_value(runtime, cleared["industry"][1], "Industry") == cleared["industry"][2]
        assert _owner(runtime, cleared["industry"][1])["user"]["id"] == cleared["owner"]
        assert final_state(runtime) == clean

        again = full_sync(runtime, "full")  # nothing drifted: a full sync writes nothing anywhere
        assert _total(again, "pushed") + _total(again, "created") + _total(again, "updated") == 0
        assert sum(_total(again, f"repaired_{side}") for side in (*LINK_FIELDS, "posthog")) == 0
