"""Task leases on the real Redis: one delivery holds a task at a time, an ended task ignores late deliveries, a
retry keeps its lease while its worker holds it, and a lapsed lease is claimed for one re-send, by one sweep."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from sync.ledger import Ledger
from tests.support.waiting import wait_for
from workers.leases import MAX_RESENDS, TaskLeases, delivery_token

SPEC = {"task": "crmsync.write_plan", "args": ["p1", 0], "kwargs": {}, "queue": "bulk"}
TTL_MS = 300


@pytest.fixture
def leases(ledger: Ledger) -> Iterator[TaskLeases]:
    yield TaskLeases(ledger.redis, ledger.ns, TTL_MS)


def _lapsed(leases: TaskLeases) -> list[str]:
    return [task_id for task_id, _ in leases.claim_lapsed()]


def test_one_delivery_holds_a_task_and_a_finished_task_ignores_late_ones(leases: TaskLeases) -> None:
    first, second = delivery_token(), delivery_token()
    assert leases.start("t1", first, SPEC) == "held"
    assert leases.start("t1", second, SPEC) == "busy"  # the first is alive (this process) and renews
    assert leases.renew("t1", first) and not leases.renew("t1", second)
    leases.done("t1", first)
    assert leases.held() == {}
    assert leases.start("t1", second, SPEC) == "done"  # e.g. the broker's redelivery, two hours later


def test_a_killed_pool_process_is_taken_over_at_once(leases: TaskLeases) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = delivery_token().rsplit(":", 2)
    dead[1] = str(child.pid)  # a delivery token of a process of this host that no longer exists
    assert leases.start("t2", ":".join(dead), SPEC) == "held"
    assert leases.start("t2", delivery_token(), SPEC) == "held"


def test_a_lapsed_lease_is_claimed_once_with_what_it_takes_to_send_it_again(leases: TaskLeases) -> None:
    other_sweep = TaskLeases(leases.redis, leases.ns, TTL_MS)
    leases.start("t3", delivery_token(), SPEC)
    wait_for(lambda: _lapsed(leases) or None, 30, "the lease to lapse")  # claimed (and so not lapsed again)
    assert _lapsed(other_sweep) == [] and _lapsed(leases) == []  # claimed for one re-send: not twice


def test_the_claim_carries_the_spec(leases: TaskLeases) -> None:
    leases.start("t4", delivery_token(), SPEC)
    claimed = wait_for(lambda: leases.claim_lapsed() or None, 30, "the lease to lapse")
    assert claimed == [("t4", SPEC)]


def test_a_retry_held_by_a_live_worker_keeps_its_lease(leases: TaskLeases) -> None:
    token = delivery_token()
    leases.start("t5", token, SPEC)
    assert leases.waiting("t5", token, countdown_s=0)  # retries at once: its lease is one TTL, held by nobody
    assert leases.keep_waiting(["t5"]) == 1  # the worker's sweep renews what its worker holds
    assert leases.keep_waiting(["unknown"]) == 0
    assert leases.start("t5", delivery_token(), SPEC) == "held"  # the retry takes it
    assert leases.keep_waiting(["t5"]) == 0  # held by a delivery now: its own heartbeat renews it


def test_a_task_resent_without_ever_starting_is_given_up(leases: TaskLeases) -> None:
    leases.start("t6", delivery_token(), SPEC)
    claims: list[tuple[str, object]] = []
    fast = TaskLeases(leases.redis, leases.ns, TTL_MS)
    for _ in range(MAX_RESENDS + 1):
        leases.redis.zadd(f"{leases.ns}:lease:tasks", {"t6": 0})  # the re-send's grace ran out, again
        claims += fast.claim_lapsed()
    assert [spec is not None for _, spec in claims] == [True] * MAX_RESENDS + [False]
    assert leases.held() == {}
