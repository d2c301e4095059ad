"""A CSM reassigned in today's PostHog (a relationship, ``POST .../accounts/:id/relationships/``) reaches every CRM
that maps ``roles.csm`` outbound (examples/crmsync.yaml: Salesforce ``PostHog_CSM_Email__c``, HubSpot
``posthog_csm_email``, Stripe ``metadata.posthog_csm_email``) in one outbound run, as the ``crmsync.sync_outbound``
task runs its passes: one per source, sharing their change-feed reads. The four stand-ins over loopback, the
official SDKs, real Redis; costs asserted by counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from sandbox.identities import sales_rep_email
from sandbox.stack import SandboxStack
from sync.ledger import delete_keys
from sync.report import RunReport
from tests.conftest import REDIS_URL
from tests.support.roles import assign_in_posthog, role_holders
from workers.config import parse_config
from workers.runtime import Runtime

STREAMS = {"salesforce": "Account", "hubspot": "deals", "stripe": "customers"}
CSM_FIELDS = {
    "salesforce": "PostHog_CSM_Email__c",
    "hubspot": "posthog_csm_email",
    "stripe": "metadata.posthog_csm_email",
}
LINKS = {"salesforce": "sfdc_id", "hubspot": "hubspot_deal_id", "stripe": "stripe_customer_id"}


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTHOG_PERSONAL_API_KEY", "phx_sandbox")
        prefix = f"crmsync-csm-{uuid.uuid4().hex[:8]}"
        with SandboxStack(
            seed=15, redis_url=REDIS_URL, webhooks=False, ledger_prefix=prefix, posthog_generation="current"
        ) as stack:
            running = Runtime(parse_config(stack.config()))
            try:
                yield running
            finally:
                running.close()
                delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")


def outbound_run(runtime: Runtime) -> dict[str, RunReport]:
    """What ``crmsync.sync_outbound`` does: one pass per source and stream, the feed's reads shared."""
    engine = runtime.engine
    with engine.queries.sharing():
        return {s: engine.push_back_pass(runtime.connector(s), stream) for s, stream in STREAMS.items()}


def field(fields: dict[str, Any], path: str) -> Any:
    """A record's field by dotted path (Stripe's ``metadata.<key>`` is a key of its ``metadata``)."""
    if path in fields:
        return fields[path]
    head, _, rest = path.partition(".")
    nested = fields.get(head)
    return field(nested, rest) if rest and isinstance(nested, dict) else None


def query_posts(runtime: Runtime) -> int:
    rows = httpx.get(f"{runtime.posthog.base_url}/_sandbox/stats").json()["requests"]
    return sum(r["count"] for r in rows if r["method"] == "POST" and r["route"].endswith("/query/"))


def test_a_csm_reassigned_in_posthog_reaches_every_crm_mapping_it(runtime: Runtime) -> None:
    engine, ph = runtime.engine, runtime.posthog
    connectors = {s: runtime.connector(s) for s in STREAMS}
    reports = engine.run_planned(connectors, {s: [stream] for s, stream in STREAMS.items()}, "full")
    assert all(r.status == "succeeded" and r.errors == [] for r in reports), [r.as_dict() for r in reports]
    settle = outbound_run(runtime)  # the first run reads the feed from its start and sets the watermarks
    assert all(r.status == "succeeded" for r in settle.values()), {s: r.as_dict() for s, r in settle.items()}

    shared = [a for a in ph.iter_accounts() if all(getattr(a.properties, link) for link in LINKS.values())][:2]
    assert len(shared) == 2
    wanted: dict[str, str] = {}
    for account in shared:  # a person makes another sales rep the CSM, in PostHog
        held = role_holders(ph, account.id).get("csm")
        k = next(k for k in range(10) if sales_rep_email(k) != held)
        assign_in_posthog(ph, account.id, "csm", 101 + k)
        wanted[account.id] = sales_rep_email(k)

    queries = query_posts(runtime)
    run = outbound_run(runtime)
    failed = {s: r.as_dict() for s, r in run.items() if r.status != "succeeded" or r.errors}
    assert not failed, failed
    assert {s: r.counts["pushed"] for s, r in run.items()} == {s: 2 for s in STREAMS}  # the linked records, no more
    assert query_posts(runtime) == queries + 1  # one change-feed query for the whole run
    for source, stream in STREAMS.items():
        ids = {str(getattr(a.properties, LINKS[source])): a.id for a in shared}
        records = connectors[source].fetch(stream, list(ids))
        assert {r.id: field(r.fields, CSM_FIELDS[source]) for r in records} == {
            rid: wanted[account_id] for rid, account_id in ids.items()
        }, source

    again = outbound_run(runtime)  # nothing changed since: nothing pushed anywhere
    assert {s: r.counts["pushed"] for s, r in again.items()} == {s: 0 for s in STREAMS}
