"""Redis Sentinel: broker, results and ledger follow a forced failover in the middle of a sync.

A master, one replica and three sentinels on loopback (``tests/support/sentinel.py``), ``REDIS_URL`` in Celery's
form (``sentinel://127.0.0.1:26406/0;sentinel://...``) and ``REDIS_SENTINEL_MASTER``. A real worker runs ``sync
all --full`` against the stand-ins, PostHog slowed so it is still writing when ``SENTINEL FAILOVER`` promotes the
replica. Commands sent to the old master fail (a connection error, or redis-py's "previous master is now a
replica"); the task retries as after a Redis restart (``tests/faults/test_redis_restart.py``), every client asks the
sentinels for the new master, and the sync finishes. A later sync succeeds, the PostHog accounts equal a clean
run's, every account was created once, nothing is parked. Every server and worker is killed at the end.
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
import redis
import yaml

from sync.plan import PlanStore
from tests.faults.harness import REDIS_URL, deployment, diff, final_state, posthog_env, stack_config
from tests.support.sentinel import MASTER_NAME, SentinelGroup
from tests.support.waiting import wait_for

SEED = 60
LATENCY_MS = 150
WRITES_BEFORE_FAILOVER = 15
PORTS = (6416, 6417)  # master, replica
SENTINEL_PORTS = (26406, 26407, 26408)


def _stats(http: httpx.Client) -> list[dict[str, Any]]:
    return list(http.get("/_sandbox/stats").json()["requests"])


def _writes(http: httpx.Client) -> int:
    return sum(r["count"] for r in _stats(http) if r["method"] in ("POST", "PATCH") and r["status"] < 300)


def _creates(http: httpx.Client) -> int:
    posts = [r for r in _stats(http) if r["method"] == "POST" and r["route"].endswith("/accounts/")]
    return sum(r["count"] for r in posts if r["status"] < 300)


@contextlib.contextmanager
def _workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for worker in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=20)


def _finished(ledger: Any) -> bool:
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
        return not PlanStore.live(ledger)
    return False


@pytest.mark.timeout(400)
def test_a_sentinel_failover_during_a_sync(tmp_path: Path, clean_state: Callable[[int], dict[str, list[str]]]) -> None:
    from workers.celery_app import configure
    from workers.processes import start_worker, wait_for_worker
    from workers.tasks import sync_all

    expected = clean_state(SEED)
    with (
        SentinelGroup(tmp_path, PORTS, SENTINEL_PORTS) as group,
        pytest.MonkeyPatch.context() as mp,
        _workers() as workers,
    ):
        for key, value in {**posthog_env(), "REDIS_URL": group.url, "REDIS_SENTINEL_MASTER": MASTER_NAME}.items():
            mp.setenv(key, value)
        app = configure(group.url, sentinel_master=MASTER_NAME)
        try:
            with deployment(SEED, redis_url=group.url) as dep:
                config_path = tmp_path / "crmsync.yaml"
                raw = {**stack_config(dep.stack), "redis_sentinel_master": MASTER_NAME}
                config_path.write_text(yaml.safe_dump(raw))
                env = {**os.environ, "CRMSYNC_CONFIG": str(config_path)}
                ledger = dep.runtime.ledger
                with (tmp_path / "worker.log").open("wb") as out:
                    workers.append(start_worker(config_path, env, out, concurrency=1))
                wait_for_worker(app, workers[0])
                dep.faults("posthog", latency_ms=LATENCY_MS)
                with dep.admin("posthog") as http:
                    http.post("/_sandbox/stats/reset").raise_for_status()
                    seeded = len(list(dep.runtime.posthog.iter_accounts()))
                    first = sync_all.apply_async((), {"mode": "full"}, queue="bulk").get(timeout=120)
                    assert first["chunks"], first
                    wait_for(lambda: _writes(http) >= WRITES_BEFORE_FAILOVER, 60, "the first writes")
                    old_master = group.failover()
                    writes_at_failover = _writes(http)
                    wait_for(lambda: _finished(ledger), 240, "the plan to finish after the failover")
                    dep.faults("posthog")
                    creates = _creates(http)
                runs = ledger.recent_runs(50)
                again = sync_all.apply_async((), {"mode": "full"}, queue="bulk").get(timeout=120)["runs"]
                accounts = list(dep.runtime.posthog.iter_accounts())
                state = final_state(dep.runtime)
                parked = ledger.dlq_size()
                master_now = group.master_port()
        finally:
            configure(REDIS_URL)
    plan = next((r for r in runs if r["source"] == "all" and r["stream"] == "plan"), None)
    assert master_now != old_master  # the failover did happen, during the plan
    assert writes_at_failover < len(accounts) - seeded
    assert plan is not None and plan["status"] == "succeeded", runs[:5]
    assert [r["status"] for r in again] and {r["status"] for r in again} == {"succeeded"}, again
    assert state["posthog"] == expected["posthog"], diff(expected, state)
    assert creates == len(accounts) - seeded  # none created twice
    assert parked == 0
