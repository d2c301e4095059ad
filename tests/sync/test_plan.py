"""Plan before write: several sources read first, each account written once (one POST), cursors after the writes.

Counted against the PostHog stand-in: the floor of a first sync is one request per account.
"""

from __future__ import annotations

import pytest

from sync.engine import THROTTLES, SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig
from sync.plan import PlanStore
from sync.posthog import PostHogClient
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import OtherConnector, detail_gets, seed, writes

STREAMS = {"memcrm": ["accounts"], "othercrm": ["accounts"]}


def both(crm: MemoryCrm, other: OtherConnector, n: int, shared: int) -> None:
    """``n`` accounts in memcrm; the first ``shared`` of them also in othercrm (same external id), plus 3 of its own."""
    seed(crm, n)
    for i in range(shared):
        other.crm.put(f"d-{i}", title=f"Deal {i}", ext=f"acct-{i}")
    for i in range(3):
        other.crm.put(f"solo-{i}", title=f"Solo {i}", ext=f"solo-{i}")


def test_first_sync_of_two_sources_writes_each_account_once(
    engine: SyncEngine,
    conn: MemoryConnector,
    crm: MemoryCrm,
    other: OtherConnector,
    posthog: PostHogSandbox,
    ph: PostHogClient,
    ledger: Ledger,
) -> None:
    both(crm, other, 30, 20)
    connectors = {"memcrm": conn, "othercrm": other}
    reports = engine.run_planned(connectors, STREAMS, "full", chunk_size=7)
    assert [r.status for r in reports] == ["succeeded"] * 3, [r.as_dict() for r in reports]
    written = reports[-1]
    assert written.source == "all" and written.counts["created"] == 33 and written.counts["failed"] == 0
    assert posthog.count("POST") == 33 and posthog.count("PATCH") == 0 and detail_gets(posthog) == 0
    accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert len(accounts) == 33
    shared = accounts["acct-5"]
    assert shared.name == "Company 5"  # memcrm comes first in the name's precedence
    assert shared.properties.sfdc_id == "00100005" and shared.properties.hubspot_deal_id == "d-5"
    assert crm.records["00100005"]["posthog_account_id"] == shared.id  # pushed back to both
    assert other.crm.records["d-5"]["posthog_id"] == shared.id
    assert ledger.get_cursor("memcrm", "accounts") and ledger.get_cursor("othercrm", "accounts")
    assert not list(ledger.redis.scan_iter(f"{ledger.ns}:plan:*"))  # the plan cleans up after itself

    posthog.reset_counters()
    again = engine.run_planned(connectors, STREAMS, "full", chunk_size=7)
    assert writes(posthog) == 0 and detail_gets(posthog) == 0
    assert sum(r.counts["unchanged"] for r in again) == 30 + 23


def test_cursors_move_only_when_every_chunk_is_written(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, other: OtherConnector, ledger: Ledger
) -> None:
    both(crm, other, 10, 5)
    connectors = {"memcrm": conn, "othercrm": other}
    store, _ = engine.stage_plan(connectors, STREAMS, "full", chunk_size=4)
    assert store is not None and store.chunks == 4  # 13 accounts in chunks of 4
    assert engine.write_plan_chunk(store, 2, connectors) is False
    assert ledger.get_cursor("memcrm", "accounts") is None
    # while the plan lives, per-source runs of its streams stand aside
    assert engine.run(conn, "accounts").status == "skipped"
    assert engine.write_plan_chunk(store, 2, connectors) is False  # repeated: nothing written twice
    for n in (0, 1):
        assert engine.write_plan_chunk(store, n, connectors) is False
    assert engine.write_plan_chunk(store, 3, connectors) is True
    assert ledger.get_cursor("memcrm", "accounts") is None
    finished = engine.finish_plan(store, connectors)
    assert finished is not None and finished.counts["created"] == 13
    assert engine.finish_plan(PlanStore(ledger, store.id), connectors) is None  # once
    assert ledger.get_cursor("memcrm", "accounts") is not None
    assert engine.run(conn, "accounts").status == "succeeded"  # run locks released


@pytest.mark.parametrize("seed_no", [4, 5])
def test_a_throttled_plan_parks_nothing_and_resumes(
    posthog: PostHogSandbox, ledger: Ledger, mapping: MappingConfig, seed_no: int
) -> None:
    crm, other = MemoryCrm(), OtherConnector(MemoryCrm(source="othercrm"))
    conn = MemoryConnector(crm)
    both(crm, other, 25, 10)
    connectors = {"memcrm": conn, "othercrm": other}
    with posthog.client(max_retries=0) as client:
        engine = SyncEngine(client, ledger, mapping)
        store, _ = engine.stage_plan(connectors, STREAMS, "full", chunk_size=5)
        assert store is not None
        posthog.faults(rate_429=0.3, retry_after_s=1, seed=seed_no)
        pending, throttled = list(range(store.chunks)), 0
        for _ in range(300):
            if not pending:
                break
            try:
                engine.write_plan_chunk(store, pending[0], connectors)
                pending.pop(0)
            except THROTTLES:
                throttled += 1
                assert ledger.dlq_size() == 0 and ledger.get_cursor("memcrm", "accounts") is None
        posthog.faults()
        finished = engine.finish_plan(store, connectors)
    assert throttled > 0 and not pending and finished is not None
    assert finished.counts["created"] == 28 and finished.counts["failed"] == 0
    assert ledger.dlq_size() == 0
    with posthog.client() as ph:
        accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert len(accounts) == 28  # nothing lost, nothing doubled
    assert accounts["acct-3"].properties.hubspot_deal_id == "d-3"
