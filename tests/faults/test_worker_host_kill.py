"""A whole worker host dies mid-plan: its leases lapse and a new worker takes the work up, whatever the broker does.

A real ``crmsync worker`` (own process group, one pool process) on a private ``redis-server`` runs ``sync all
--full`` (``crmsync.sync_all``: stage, then write chunks) against the stand-ins, PostHog slowed (``latency_ms``)
so it is still writing when the worker's *whole process group* is SIGKILLed: main process and pool, as when a
host dies. Nothing runs a ``finally``; the chunk's message stays in the transport's ``unacked`` set for the
2-hour visibility timeout, and before leases the plan's run locks stayed held for 2 hours as well.

A second worker is started. With leases (``sync/lease.py``, ``workers/leases.py``; this test shortens them through
the config to ``ttl_s: 2``) the dead worker's task lease lapses, the new worker's sweep sends the chunk again under
its own id, and the plan completes: every account written, none twice (one successful POST per account: PostHog
refuses a second account with the same ``external_id``), nothing parked, and a later ``sync all`` is not
"skipped: run lock held by another worker". Both workers' groups are killed at the end, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sync.plan import PlanStore
from tests.faults.harness import REDIS_URL, deployment, diff, final_state, posthog_env, stack_config
from tests.support.waiting import active_pid, wait_for

SEED = 60
LATENCY_MS = 150
WRITES_BEFORE_KILL = 15
LEASES = {"ttl_s": 2, "sweep_every_s": 0.5}


def _creates(http: httpx.Client) -> int:
    """Accounts PostHog created (successful POSTs to the accounts list route)."""
    stats = http.get("/_sandbox/stats").json()
    posts = [r for r in stats["requests"] if r["method"] == "POST" and r["route"].endswith("/accounts/")]
    return sum(r["count"] for r in posts if r["status"] < 300)


def _writes(http: httpx.Client) -> int:
    stats = http.get("/_sandbox/stats").json()
    return sum(r["count"] for r in stats["requests"] if r["method"] in ("POST", "PATCH") and r["status"] < 300)


def _kill_group(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=20)


@contextlib.contextmanager
def _workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every worker a test starts, each in its own process group: all killed at the end, pass or fail."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for worker in started:
            _kill_group(worker)


def _plan_report(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in runs if r["source"] == "all" and r["stream"] == "plan"), None)


@pytest.mark.timeout(300)
def test_a_killed_worker_host_is_taken_over_within_the_lease(
    tmp_path: Path, clean_state: Callable[[int], dict[str, list[str]]]
) -> None:
    from workers.celery_app import configure
    from workers.processes import RedisServer, start_worker, wait_for_worker
    from workers.tasks import sync_all

    expected = clean_state(SEED)
    with RedisServer() as private_redis, pytest.MonkeyPatch.context() as mp, _workers() as workers:
        for key, value in posthog_env().items():
            mp.setenv(key, value)
        mp.setenv("REDIS_URL", private_redis.url)
        app = configure(private_redis.url)
        try:
            with deployment(SEED, redis_url=private_redis.url) as dep:
                config_path = tmp_path / "crmsync.yaml"
                config_path.write_text(yaml.safe_dump({**stack_config(dep.stack), "leases": LEASES}))
                env = {**os.environ, "CRMSYNC_CONFIG": str(config_path), "REDIS_URL": private_redis.url}
                ledger = dep.runtime.ledger
                logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
                with logs[0].open("wb") as out:
                    workers.append(start_worker(config_path, env, out, concurrency=1))
                wait_for_worker(app, workers[0])
                dep.faults("posthog", latency_ms=LATENCY_MS)
                with dep.admin("posthog") as http:
                    http.post("/_sandbox/stats/reset").raise_for_status()
                    seeded = len(list(dep.runtime.posthog.iter_accounts()))  # the stand-in's own, before the sync
                    staged = sync_all.apply_async((), {"mode": "full"}, queue="bulk").get(timeout=120)
                    [chunk_id] = staged["chunks"]
                    wait_for(lambda: active_pid(app, chunk_id), 60, "the chunk to start")
                    wait_for(lambda: _writes(http) >= WRITES_BEFORE_KILL, 60, "the first writes")
                    _kill_group(workers[0])  # the host dies: main process and pool, no finally, no ack
                    writes_at_kill = _writes(http)
                    assert [p.id for p in PlanStore.live(ledger)]  # mid-plan: staged, not finished

                    with logs[1].open("wb") as out:
                        workers.append(start_worker(config_path, env, out, concurrency=1))
                    wait_for_worker(app, workers[1])
                    wait_for(lambda: not PlanStore.live(ledger), 120, "the plan to be finished by the new worker")
                    dep.faults("posthog")
                    creates = _creates(http)
                plan = _plan_report(ledger.recent_runs(50))
                again = sync_all.apply_async((), {"mode": "full"}, queue="bulk").get(timeout=120)["runs"]
                accounts = list(dep.runtime.posthog.iter_accounts())
                state = final_state(dep.runtime)
                parked = ledger.dlq_size()
                stale_locks = list(ledger.redis.scan_iter(match=f"{ledger.ns}:lock:*", count=1000))
        finally:
            configure(REDIS_URL)
        taken_up = [log.read_text(errors="replace").count("task taken up again") for log in logs]
    assert writes_at_kill < len(accounts) - seeded  # killed mid-plan: work was left for the new worker
    # the new worker's sweep (not the broker's visibility timeout) sent the dead worker's chunk again, once; no live
    # task was ever taken for a dead one (their heartbeats renewed their leases)
    assert taken_up == [0, 1]
    assert plan is not None and plan["status"] == "succeeded", plan
    assert state["posthog"] == expected["posthog"], diff(expected, state)  # every account, as a clean run has it
    assert creates == len(accounts) - seeded  # every account created once: none twice
    assert parked == 0
    assert [r["status"] for r in again] and {r["status"] for r in again} == {"succeeded"}, again
    assert stale_locks == []
