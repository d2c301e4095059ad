"""Custom properties end to end, through the official SDKs against the four stand-ins and the real Redis, with the
example mapping: Stripe MRR (currency), HubSpot deal stage and Salesforce Industry (text) land typed in PostHog; a
second sync writes nothing; a health score a CSM sets in PostHog reaches Salesforce and HubSpot with one query per
run, whatever the number of accounts and streams."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from sandbox.salesforce.schema import INDUSTRIES
from sandbox.stack import SandboxStack
from sync.ledger import delete_keys
from sync.posthog import PostHogClient
from sync.posthog.custom_properties import list_definitions, set_value
from tests.conftest import REDIS_URL
from workers import demo_custom
from workers.config import parse_config
from workers.runtime import Runtime

STREAMS = {"salesforce": "Account", "hubspot": "deals", "stripe": "customers"}


@pytest.fixture(scope="module")
def stack() -> Iterator[SandboxStack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTHOG_PERSONAL_API_KEY", "phx_sandbox")
        prefix = f"crmsync-custom-{uuid.uuid4().hex[:8]}"
        with SandboxStack(
            seed=9, redis_url=REDIS_URL, webhooks=False, ledger_prefix=prefix, posthog_generation="current"
        ) as running:
            yield running
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")


def posthog_posts(stack: SandboxStack, suffix: str) -> int:
    rows = httpx.get(f"{stack.url('posthog')}/_sandbox/stats").json()["requests"]
    return sum(r["count"] for r in rows if r["method"] == "POST" and r["route"].endswith(suffix))


def values(ph: PostHogClient) -> dict[str, dict[str, Any]]:
    names = {d.id: d.name for d in list_definitions(ph) or []}
    out: dict[str, dict[str, Any]] = {}
    for account in ph.iter_accounts():
        rows = ph.call("GET", f"{ph.projects_path}/accounts/{account.id}/custom_property_values/")
        out[account.id] = {names[r["definition_id"]]: r["value"] for r in rows}
    return out


def without_roles(config: dict[str, Any]) -> dict[str, Any]:
    """The stack's config without role fields: roles on the current generation are the roles work's (issue 19,
    item 2); this test is about custom properties alone."""
    for objects in config["mappings"].values():
        for om in objects.values():
            om["fields"] = [f for f in om["fields"] if not str(f["target"]).startswith("roles.")]
    config["ownership"] = {k: v for k, v in config["ownership"].items() if not k.startswith("roles.")}
    return config


def test_custom_properties_both_ways(stack: SandboxStack) -> None:
    runtime = Runtime(parse_config(without_roles(stack.config())))
    try:
        runtime.check_custom_properties()  # the stack set PostHog up as `crmsync setup posthog` does
        engine, ph = runtime.engine, runtime.posthog
        for source, stream in STREAMS.items():
            report = engine.run(runtime.connector(source), stream, mode="full")
            assert report.status == "succeeded" and report.errors == [], report.as_dict()
        accounts = {a.id: a for a in ph.iter_accounts()}
        held = values(ph)
        industries = [v["Industry"] for v in held.values() if "Industry" in v]
        stages = [v["Deal stage"] for v in held.values() if "Deal stage" in v]
        mrr = [v["MRR"] for v in held.values() if "MRR" in v]
        assert industries and set(industries) <= set(INDUSTRIES)
        assert stages and all(isinstance(s, str) for s in stages)
        assert mrr and all(isinstance(m, float) and m > 0 for m in mrr)
        linked_sf = [a for a in accounts.values() if a.properties.sfdc_id]
        assert len(industries) == sum(1 for a in linked_sf if "Industry" in held[a.id])
        line = demo_custom.values_line(runtime)  # what `make demo` prints after its full sync
        assert f"MRR on {len(mrr)} accounts" in line and f"Industry on {len(industries)} accounts" in line
        written = posthog_posts(stack, "/custom_property_values/")
        assert written == len(industries) + len(stages) + len(mrr)  # one request per value: the floor

        for source, stream in STREAMS.items():  # again: nothing changed, nothing written
            engine.run(runtime.connector(source), stream, mode="full")
        assert posthog_posts(stack, "/custom_property_values/") == written

        health = {d.name: d for d in list_definitions(ph) or []}["Health score"]
        both = [a for a in accounts.values() if a.properties.sfdc_id and a.properties.hubspot_deal_id][:2]
        assert len(both) == 2
        for score, account in zip((72, 41.5), both, strict=True):
            set_value(ph, account.id, health.id, score)  # a CSM sets the score in PostHog
        queries = posthog_posts(stack, "/query/")
        with engine.queries.sharing():  # as the crmsync.sync_outbound task runs its passes
            sf = engine.push_back_pass(runtime.connector("salesforce"), "Account")
            hs = engine.push_back_pass(runtime.connector("hubspot"), "deals")
        assert sf.status == hs.status == "succeeded"
        # one query for both passes (their reads are shared), not one request per account
        assert posthog_posts(stack, "/query/") == queries + 1
        sf_records = {
            r.id: r for r in runtime.connector("salesforce").fetch("Account", [str(a.properties.sfdc_id) for a in both])
        }
        hs_records = {
            r.id: r
            for r in runtime.connector("hubspot").fetch("deals", [str(a.properties.hubspot_deal_id) for a in both])
        }
        for score, account in zip(("72", "41.5"), both, strict=True):
            assert sf_records[str(account.properties.sfdc_id)].fields["PostHog_Health_Score__c"] == score
            assert hs_records[str(account.properties.hubspot_deal_id)].fields["posthog_health_score"] == score
    finally:
        runtime.close()
