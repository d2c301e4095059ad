"""The Redis ledger on the real server: batch costs, locks with tokens and expiry, streams, events."""

from __future__ import annotations

import time

import pytest

from sync.ledger import AccountEntry, Ledger, LockNotAcquired, RecordEntry, RecordKey
from tests.support.redis_counting import CountingConnection


def test_batch_reads_and_commit_are_one_round_trip_each(ledger: Ledger) -> None:
    keys = [RecordKey("hubspot", "deals", str(i)) for i in range(100)]
    ledger.ready()  # once per namespace and process: the layout version, the scripts loaded
    CountingConnection.round_trips = 0
    assert ledger.get_records(keys) == [None] * 100
    ledger.commit(
        records={k: RecordEntry(f"fp{k.id}", f"acct-{k.id}") for k in keys},
        accounts={f"acct-{k.id}": AccountEntry(written_fp="w") for k in keys},
        index={("hubspot_deal_id", k.id): f"acct-{k.id}" for k in keys},
    )
    entries = ledger.get_records(keys)
    found = ledger.lookup([("hubspot_deal_id", k.id) for k in keys])
    assert CountingConnection.round_trips == 4
    assert entries[5] == RecordEntry("fp5", "acct-5") and found[7] == "acct-7"


def test_locks_have_tokens_and_expire(ledger: Ledger) -> None:
    held = ledger.try_lock(["acct:1", "acct:2"], ttl_ms=100_000)
    assert set(held) == {"acct:1", "acct:2"}
    assert ledger.try_lock(["acct:1", "acct:3"], ttl_ms=100_000).keys() == {"acct:3"}
    assert ledger.release({"acct:1": "not-my-token"}) == 0  # another worker's token releases nothing
    assert ledger.release(held) == 2
    short = ledger.try_lock(["acct:9"], ttl_ms=50)  # a worker that died holding it...
    assert short
    time.sleep(0.1)
    assert ledger.try_lock(["acct:9"], ttl_ms=1000)  # ...does not block forever
    assert ledger.release(short) == 0  # and its stale token cannot release the new holder's lock


def test_locks_context_waits_bounded(ledger: Ledger) -> None:
    ledger.try_lock(["acct:busy"], ttl_ms=100_000)
    with pytest.raises(LockNotAcquired), ledger.locks(["acct:free", "acct:busy"], wait_s=0.05):
        pass
    assert ledger.try_lock(["acct:free"], ttl_ms=1000)  # the partial acquisition was released


def test_event_ids_are_seen_once(ledger: Ledger) -> None:
    assert ledger.first_sightings("stripe", ["evt_1", "evt_1", "evt_2"]) == [True, False, True]
    assert ledger.first_sightings("stripe", ["evt_2"]) == [False]
    assert ledger.first_sightings("hubspot", ["evt_2"]) == [True]  # namespaced by source


def test_runs_and_dead_letters(ledger: Ledger) -> None:
    ledger.append_run({"source": "hubspot", "status": "succeeded"})
    ledger.append_run({"source": "stripe", "status": "failed"})
    assert [r["source"] for r in ledger.recent_runs()] == ["stripe", "hubspot"]
    ids = ledger.park(
        [{"source": "hubspot", "id": "1", "reason": "x"}, {"source": "hubspot", "id": "2", "reason": "y"}]
    )
    assert ledger.dlq_size() == 2
    assert [e["id"] for _, e in ledger.dead_letters()] == ["1", "2"]
    assert ledger.drop_dead_letters(ids[:1]) == 1 and ledger.dlq_size() == 1


def test_cursor_and_namespaces(ledger: Ledger) -> None:
    other = Ledger(ledger.redis, project_id=2, prefix=ledger.ns.split(":")[0])
    ledger.set_cursor("hubspot", "deals", "123")
    assert ledger.get_cursor("hubspot", "deals") == "123"
    assert other.get_cursor("hubspot", "deals") is None  # one namespace per PostHog project
    ledger.clear_cursor("hubspot", "deals")
    assert ledger.get_cursor("hubspot", "deals") is None


def test_a_redelivered_task_takes_over_its_own_locks(ledger: Ledger) -> None:
    from sync.ledger import lock_owner

    token = lock_owner.set("celery-task-1")
    try:
        assert ledger.try_lock(["run:hubspot:deals", "acct:1"], ttl_ms=600_000)  # then the worker is SIGKILLed
        again = ledger.try_lock(["run:hubspot:deals", "acct:1"], ttl_ms=600_000)  # the same task, redelivered
        assert again == {"run:hubspot:deals": "celery-task-1", "acct:1": "celery-task-1"}
    finally:
        lock_owner.reset(token)
    assert ledger.try_lock(["run:hubspot:deals"], ttl_ms=1000) == {}  # any other trigger still waits
    other = lock_owner.set("celery-task-2")
    try:
        assert ledger.try_lock(["acct:1"], ttl_ms=1000) == {}
        assert ledger.try_lock(["acct:2"], ttl_ms=600_000)
    finally:
        lock_owner.reset(other)
    assert ledger.release_owned("celery-task-1") == 2  # what the task held, and only that
    assert ledger.try_lock(["acct:1"], ttl_ms=1000) and not ledger.try_lock(["acct:2"], ttl_ms=1000)
