"""PostHog's budget is never a record's fault: throttled runs stop, park nothing, and converge when re-run.

And a PATCH starts from the account as PostHog last showed it (our last write, or the per-batch walk of accounts
changed since the watermark), so it needs no GET, yet people's edits made between runs survive.
"""

from __future__ import annotations

import pytest

from sync.engine import THROTTLES, SyncEngine
from sync.errors import RetryableError
from sync.ledger import Ledger
from sync.mapping import MappingConfig
from sync.posthog import PostHogClient
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import detail_gets, seed


def test_a_patch_needs_no_get_and_people_edits_made_between_runs_survive(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    seed(crm, 10)
    engine.run(conn, "accounts", mode="full")
    target = next(a for a in ph.iter_accounts() if a.external_id == "acct-4")
    props = {**target.properties.payload(), "zendesk_id": "z-4", "slack_channel_id": "C4"}
    ph.update_account(target.id, properties=props, tags=[*target.tags, "vip"])  # a person, between runs
    crm.put("00100004", name="Renamed 4", plan="pro")
    crm.put("00100007", name="Renamed 7")
    posthog.reset_counters()

    report = engine.run(conn, "accounts")
    assert report.counts["updated"] == 2
    assert detail_gets(posthog) == 0 and posthog.count("PATCH") == 2
    after = ph.get_account(target.id)
    assert after.name == "Renamed 4" and sorted(after.tags) == ["plan-pro", "vip"]
    assert after.properties.payload() == {"sfdc_id": "00100004", "zendesk_id": "z-4", "slack_channel_id": "C4"}


def test_an_account_never_seen_is_read_once_before_its_patch(
    engine: SyncEngine,
    conn: MemoryConnector,
    crm: MemoryCrm,
    posthog: PostHogSandbox,
    ph: PostHogClient,
    ledger: Ledger,
) -> None:
    seed(crm, 3)
    engine.run(conn, "accounts", mode="full")
    (account,) = [a for a in ph.iter_accounts() if a.external_id == "acct-1"]
    ledger.forget_seen([account.id])  # e.g. state written before crmsync kept it
    ledger.set_index_watermark("9999")  # and no walk to learn it from
    crm.put("00100001", name="Renamed 1")
    posthog.reset_counters()
    assert engine.run(conn, "accounts").counts["updated"] == 1
    assert detail_gets(posthog) == 1 and posthog.count("PATCH") == 1


@pytest.mark.parametrize("seed_no", [1, 2, 3])
def test_throttled_runs_park_nothing_and_converge(
    posthog: PostHogSandbox, ledger: Ledger, mapping: MappingConfig, seed_no: int
) -> None:
    """PostHog answers 429 to a third of all requests and the client does not retry: every run stops at its
    first 429, parks nothing, keeps its cursor before what it did not apply, and re-runs finish the work."""
    crm = MemoryCrm()
    conn = MemoryConnector(crm, page_size=7)
    seed(crm, 40)
    with posthog.client(max_retries=0) as client:
        engine = SyncEngine(client, ledger, mapping)
        posthog.faults(rate_429=0.34, retry_after_s=1, seed=seed_no)
        statuses = []
        for _ in range(200):
            try:
                report = engine.run(conn, "accounts")
            except THROTTLES:
                statuses.append("throttled")
                assert ledger.dlq_size() == 0
                continue
            except RetryableError as exc:  # pragma: no cover - a failure to explain
                pytest.fail(f"only throttles expected, got {exc!r}")
            statuses.append(report.status)
            if report.status == "succeeded":
                break
        posthog.faults()
    assert statuses[-1] == "succeeded" and "throttled" in statuses
    assert ledger.dlq_size() == 0
    runs = ledger.recent_runs(500)
    assert {r["status"] for r in runs} == {"throttled", "succeeded"}
    with posthog.client() as ph:
        accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert sorted(accounts) == sorted(f"acct-{i}" for i in range(40))  # nothing lost, nothing doubled
    assert all(a.properties.sfdc_id == f"001{int(e[5:]):05d}" for e, a in accounts.items())
