"""Run and plan locks are short leases kept alive by a heartbeat: a live run keeps its lock through a page slower
than the lease, a dead holder's lock lapses on its own, and a plan chunk takes back its plan's lapsed leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from sync.connector import Cursor, Page
from sync.engine import SyncEngine
from sync.lease import Heartbeat
from sync.ledger import Ledger
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.support.waiting import wait_for
from tests.sync.test_engine import OtherConnector, seed

LEASE_MS = 1500
STREAMS = {"memcrm": ["accounts"], "othercrm": ["accounts"]}


class SlowConnector(MemoryConnector):
    """Pauses before each page for longer than the lease (a PostHog budget wait, a slow CRM), and says when."""

    def __init__(self, crm: MemoryCrm, pause_s: float) -> None:
        super().__init__(crm)
        self.page_size = 2
        self.pause_s = pause_s
        self.pausing = threading.Event()

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        for page in super().pull(stream, cursor):
            self.pausing.set()
            time.sleep(self.pause_s)
            yield page


def test_a_run_lock_is_a_lease_renewed_through_a_slow_page(engine: SyncEngine, crm: MemoryCrm, ledger: Ledger) -> None:
    seed(crm, 4)
    leased = SyncEngine(engine.posthog, ledger, engine.mapping, lease_ms=LEASE_MS)
    slow = SlowConnector(crm, pause_s=2 * LEASE_MS / 1000)  # each page outlasts the lease twice
    key = f"{ledger.ns}:lock:run:memcrm:accounts"
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(leased.run(slow, "accounts").status))
    thread.start()
    try:
        slow.pausing.wait(30)
        assert 0 < ledger.redis.pttl(key) <= LEASE_MS  # a short lease, not a lock of hours
        time.sleep(2 * LEASE_MS / 1000)  # longer than the lease, within one page
        assert leased.run(MemoryConnector(crm), "accounts").status == "skipped"  # still held: renewed
    finally:
        thread.join(60)
    assert outcome == ["succeeded"]
    assert not ledger.redis.exists(key)


def test_a_dead_holders_run_lease_lapses_and_the_run_is_re_runnable(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ledger: Ledger
) -> None:
    seed(crm, 2)
    leased = SyncEngine(engine.posthog, ledger, engine.mapping, lease_ms=LEASE_MS)
    ledger.try_lock(["run:memcrm:accounts"], LEASE_MS)  # a holder that dies at once: nobody renews it
    assert leased.run(conn, "accounts").status == "skipped"
    wait_for(lambda: not ledger.redis.exists(f"{ledger.ns}:lock:run:memcrm:accounts"), 30, "the lease to lapse")
    assert leased.run(conn, "accounts").status == "succeeded"


def test_a_chunk_takes_back_its_plans_lapsed_leases(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, other: OtherConnector, ledger: Ledger
) -> None:
    seed(crm, 6)
    leased = SyncEngine(engine.posthog, ledger, engine.mapping, lease_ms=LEASE_MS)
    connectors = {"memcrm": conn, "othercrm": other}
    store, _ = leased.stage_plan(connectors, STREAMS, "full", chunk_size=4)
    assert store is not None and store.chunks == 2
    keys = [f"{ledger.ns}:lock:{name}" for name in store.locks()]
    assert all(0 < ledger.redis.pttl(k) <= LEASE_MS for k in keys)
    # the staging worker died: nobody renews the plan's leases, they lapse (no two-hour wait)
    wait_for(lambda: not any(ledger.redis.exists(k) for k in keys), 30, "the plan's leases to lapse")
    assert leased.write_plan_chunk(store, 0, connectors) is False
    assert [ledger.redis.get(k) for k in keys] == [store.id] * len(keys)  # taken back by the chunk
    assert leased.write_plan_chunk(store, 1, connectors) is True
    assert leased.finish_plan(store, connectors) is not None
    assert not any(ledger.redis.exists(k) for k in keys)


def test_a_heartbeat_reports_a_lease_taken_by_another(ledger: Ledger) -> None:
    held = ledger.try_lock(["run:x:y"], 200)
    with Heartbeat(lambda: ledger.extend("run:x:y", held["run:x:y"], 200), 200, "run:x:y") as beat:
        wait_for(lambda: beat.beats >= 2, 30, "two beats")
        assert not beat.lost
        ledger.redis.set(f"{ledger.ns}:lock:run:x:y", "someone-else")
        wait_for(lambda: beat.lost, 30, "the heartbeat to see the lease lost")
    assert ledger.redis.get(f"{ledger.ns}:lock:run:x:y") == "someone-else"  # never extended for its old holder
