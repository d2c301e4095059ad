"""Zendesk end to end over loopback: the four CRM stand-ins and PostHog's (``sandbox/stack.py``), the real Redis, the
example mapping. A full sync links every Zendesk organization, joins the organizations of companies other CRMs know
to the accounts those made (by ``external_id``; and by domain for an organization without one, with
``identity.match_domain``), pushes each account id back into the organization's ``posthog_account_id`` field (in
``update_many`` jobs followed through their status); a second sync writes nothing. Counts, never time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from connectors.registry import CONNECTORS
from sandbox.identities import company
from sandbox.stack import Credentials, SandboxStack, ranges
from sandbox.zendesk.store import ORG_BASE
from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from workers.config import parse_config
from workers.runtime import Runtime

SEED = 30
TAG = uuid.uuid4().hex
TOKEN = f"zd-token-LEAKCHECK-{TAG}"
HOOK_SECRET = f"zd-hook-LEAKCHECK-{TAG}"


@pytest.fixture(scope="module")
def stack() -> Iterator[SandboxStack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTHOG_PERSONAL_API_KEY", "phx_sandbox")
        prefix = f"crmsync-zendesk-{uuid.uuid4().hex[:8]}"
        credentials = Credentials(more={"zendesk": {"token": TOKEN, "webhook_secret": HOOK_SECRET}})
        with SandboxStack(
            seed=SEED, redis_url=REDIS_URL, webhooks=False, ledger_prefix=prefix, credentials=credentials
        ) as running:
            yield running
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")


def stats(stack: SandboxStack, name: str) -> list[dict[str, Any]]:
    verify = str(stack.ca_file) if stack.ca_file else True
    rows: list[dict[str, Any]] = httpx.get(f"{stack.url(name)}/_sandbox/stats", verify=verify).json()["requests"]
    return rows


READS = ("/search", "/batch/read", "/query", "/oauth2/token")
"""POST routes that read (HubSpot's searches and batch reads, Salesforce's login) or log in."""


def writes(stack: SandboxStack, name: str) -> int:
    """Requests to ``name`` that may change something (every POST, PUT, PATCH and DELETE but the reads above)."""
    return sum(
        r["count"]
        for r in stats(stack, name)
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and not r["route"].endswith(READS)
    )


def count(stack: SandboxStack, name: str, method: str, route: str) -> int:
    return sum(r["count"] for r in stats(stack, name) if r["method"] == method and r["route"] == route)


def organizations(stack: SandboxStack) -> dict[str, dict[str, Any]]:
    auth = ("admin@sandbox.example/token", TOKEN)
    orgs: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"page[size]": 100}
    while True:
        body = httpx.get(f"{stack.url('zendesk')}/api/v2/organizations", params=params, auth=auth).json()
        orgs.update({str(o["id"]): o for o in body["organizations"]})
        if not body["meta"]["has_more"]:
            return orgs
        params["page[after]"] = body["meta"]["after_cursor"]


def known_elsewhere(i: int) -> bool:
    """Identity ``i`` is a record with an external id in another CRM (the Stripe stand-in seeds every fifth
    customer without one: nothing links those)."""
    at = ranges(SEED)
    in_range = {name: start <= i < start + n for name, (start, n) in at.items() if name not in ("zendesk", "posthog")}
    return in_range["salesforce"] or in_range["hubspot"] or (in_range["stripe"] and i % 5 != 4)


def test_a_full_sync_over_four_stand_ins_links_joins_and_pushes_back_then_writes_nothing(
    stack: SandboxStack,
) -> None:
    config = stack.config()
    config["identity"] = {**config.get("identity", {}), "match_domain": True}
    runtime = Runtime(parse_config(config))
    try:
        assert set(runtime.config.sources) == set(CONNECTORS) and "zendesk" in CONNECTORS
        connectors = {s: runtime.connector(s) for s in CONNECTORS}
        reports = runtime.engine.run_planned(connectors, {s: runtime.streams(s) for s in CONNECTORS}, "full")
        assert all(r.status == "succeeded" and r.counts["failed"] == 0 for r in reports), [r.as_dict() for r in reports]

        start, n = ranges(SEED)["zendesk"]
        accounts = list(runtime.posthog.iter_accounts())
        by_zendesk = {a.properties.payload().get("zendesk_id"): a for a in accounts}
        orgs = organizations(stack)
        assert len(orgs) == n
        for i in range(start, start + n):  # every organization is linked to the account of its company
            account = by_zendesk[str(ORG_BASE + i)]
            assert account.external_id == company(i).external_id
            others = [
                k for k in ("sfdc_id", "hubspot_deal_id", "stripe_customer_id") if account.properties.payload().get(k)
            ]
            if known_elsewhere(i):
                assert others, account.name  # joined to the account another CRM made, not a new one
            assert orgs[str(ORG_BASE + i)]["organization_fields"]["posthog_account_id"] == account.id  # pushed back
            assert f"support-tier-{i % 3 + 1}" in account.tags
        assert sum(known_elsewhere(i) for i in range(start, start + n)) > n // 2  # most of them joined
        external = [a.external_id for a in accounts if a.external_id]
        assert len(set(external)) == len(external)  # no duplicate account
        # the account ids went back in update_many jobs of up to 100 (n/100, rounded up), followed to their end
        jobs = count(stack, "zendesk", "PUT", "/api/v2/organizations/update_many")
        assert jobs == -(-n // 100)
        assert count(stack, "zendesk", "GET", "/api/v2/job_statuses/{job_id}") >= jobs
        assert count(stack, "zendesk", "PUT", "/api/v2/organizations/{raw_id}") == 0

        # an organization without an external id, created later, joins an account by its domain
        sf_only = company(3)  # Salesforce's and PostHog's only
        created = httpx.post(
            f"{stack.url('zendesk')}/_sandbox/organizations",
            json={"name": "Help desk of a Salesforce customer", "domain_names": [sf_only.domain]},
        ).json()
        report = runtime.engine.run(connectors["zendesk"], "organizations", "incremental")
        assert report.counts["created"] == 0 and report.counts["updated"] == 1, report.as_dict()
        joined = next(a for a in runtime.posthog.iter_accounts() if a.external_id == sf_only.external_id)
        assert joined.properties.payload().get("zendesk_id") == str(created["id"])
        assert joined.properties.payload().get("sfdc_id")
        org = organizations(stack)[str(created["id"])]
        assert org["organization_fields"]["posthog_account_id"] == joined.id  # one organization: one PUT
        assert count(stack, "zendesk", "PUT", "/api/v2/organizations/{raw_id}") == 1

        before = {name: writes(stack, name) for name in ("posthog", *CONNECTORS)}
        again = runtime.engine.run_planned(connectors, {s: runtime.streams(s) for s in CONNECTORS}, "full")
        assert all(r.status == "succeeded" for r in again)
        assert {name: writes(stack, name) for name in ("posthog", *CONNECTORS)} == before  # nothing written anywhere
    finally:
        runtime.close()


def test_the_token_and_the_webhook_secret_never_reach_logs_or_reports(
    stack: SandboxStack, capfd: pytest.CaptureFixture[str]
) -> None:
    from workers.logs import configure_logging

    configure_logging("DEBUG", json=True)
    config = stack.config()
    assert config["sources"]["zendesk"]["config"]["api_token"] == TOKEN  # the stack hands its own secrets over
    runtime = Runtime(parse_config(config))
    wrong_config = stack.config()
    wrong_config["sources"]["zendesk"]["config"]["api_token"] = f"wrong-{TOKEN}"
    wrong = Runtime(parse_config(wrong_config))
    try:
        report = runtime.engine.run(runtime.connector("zendesk"), "organizations", "full")
        refused = wrong.engine.run(wrong.connector("zendesk"), "organizations", "full")
        assert report.status == "succeeded" and refused.status == "failed" and "401" in str(refused.as_dict())
        seen = capfd.readouterr()
        text = " ".join([seen.out, seen.err, str(report.as_dict()), str(refused.as_dict())])
        assert TAG not in text  # neither the token, the wrong token nor the webhook secret
    finally:
        wrong.close()
        runtime.close()
