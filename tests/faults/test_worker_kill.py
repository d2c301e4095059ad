"""A Celery pool process SIGKILLed in the middle of a sync: the task is redelivered and nothing is lost or doubled.

A real worker (``crmsync worker``, one pool process) runs against a private ``redis-server`` (queues, results and
ledger), so no other worker can take the task. PostHog answers slowly (``latency_ms``), the Salesforce full sync
is enqueued, and once it has written some accounts the pool child running it (``inspect().active()`` →
``worker_pid``) is killed with SIGKILL: no ``finally`` runs, no lock is released. ``acks_late`` +
``task_reject_on_worker_lost`` put the message back on the queue; the worker's new pool child runs it again. The
remaining syncs then run on the worker as usual, and the final PostHog and CRM state must equal a clean run's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from celery import Celery

from tests.faults.harness import (
    REDIS_URL,
    SOURCES,
    Deployment,
    deployment,
    diff,
    final_state,
    posthog_env,
    settle,
    stack_config,
)
from tests.support.waiting import active_pid, wait_for

SEED = 60
LATENCY_MS = 100
WRITES_BEFORE_KILL = 25
"""PostHog writes (account creates and updates) the first attempt makes before its process is killed."""


def _posthog_writes(http: httpx.Client) -> int:
    stats = http.get("/_sandbox/stats").json()
    return sum(int(n) for method, n in stats.get("by_method", {}).items() if method in ("POST", "PATCH"))


@dataclass
class Killed:
    """The deployment after the kill: the worker still running, and what the redelivered task reported."""

    dep: Deployment
    app: Celery
    writes_at_kill: int
    redelivered: list[dict[str, Any]]


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killed]:
    """Start a private Redis, a stack and a worker; kill the pool process mid-sync; yield; stop it all."""
    from workers.celery_app import configure
    from workers.processes import RedisServer, start_worker, stop_process, wait_for_worker
    from workers.tasks import sync_source

    tmp_path = tmp_path_factory.mktemp("worker-kill")
    with RedisServer() as private_redis, pytest.MonkeyPatch.context() as mp:
        for key, value in posthog_env().items():
            mp.setenv(key, value)
        app = configure(private_redis.url)
        with deployment(SEED, redis_url=private_redis.url) as dep:
            config_path = tmp_path / "crmsync.yaml"
            config_path.write_text(yaml.safe_dump(stack_config(dep.stack)))
            env = {**os.environ, "CRMSYNC_CONFIG": str(config_path), "REDIS_URL": private_redis.url}
            app.control.purge()
            log = (tmp_path / "worker.log").open("wb")
            worker = start_worker(config_path, env, log, concurrency=1)
            try:
                wait_for_worker(app, worker)
                dep.faults("posthog", latency_ms=LATENCY_MS)
                with dep.admin("posthog") as http:
                    http.post("/_sandbox/stats/reset").raise_for_status()
                    first = sync_source.apply_async(("salesforce",), {"mode": "full"}, queue="bulk")
                    victim = wait_for(lambda: active_pid(app, first.id), 60, "the task to start")
                    wait_for(lambda: _posthog_writes(http) >= WRITES_BEFORE_KILL, 60, "the first writes")
                    os.kill(victim, signal.SIGKILL)
                    writes_at_kill = _posthog_writes(http)
                    # the killed attempt stores no result: what arrives comes from the redelivered message
                    redelivered = first.get(timeout=120)["runs"]
                dep.faults("posthog")
                log.flush()
                # the kill hit the running task (not one that had just finished): the worker saw it lost
                assert "WorkerLostError" in (tmp_path / "worker.log").read_text(errors="replace")
                yield Killed(dep, app, writes_at_kill, redelivered)
            finally:
                stop_process(worker)
                log.close()
                app.control.purge()
                configure(REDIS_URL)


@pytest.mark.timeout(180)
def test_redelivered_task_does_the_work(killed: Killed) -> None:
    """The redelivery is the whole point of ``acks_late``: it must run the sync, not skip it."""
    assert [r["status"] for r in killed.redelivered] == ["succeeded"], killed.redelivered


@pytest.mark.timeout(180)
def test_sigkilled_sync_converges_to_a_clean_run(
    killed: Killed, clean_state: Callable[[int], dict[str, list[str]]]
) -> None:
    """Half a run's writes, the redelivery, then full runs of every CRM: no duplicate account, nothing missing,
    no double push. The redelivered task took over the locks its killed first delivery held (they carry the task
    id) and released them: none is left behind to block the runs that follow."""
    from workers.tasks import sync_outbound, sync_source

    dep = killed.dep
    expected = clean_state(SEED)
    stale = list(dep.runtime.redis.scan_iter(match=f"{dep.runtime.ledger.ns}:lock:*", count=1000))
    assert stale == []
    runs: list[dict[str, Any]] = []
    for source in SOURCES:
        runs += sync_source.apply_async((source,), {"mode": "full"}, queue="bulk").get(timeout=120)["runs"]
    runs += sync_outbound.apply_async(queue="bulk").get(timeout=120)["runs"]
    settle(dep.runtime)
    faulty = final_state(dep.runtime)
    pushed = sum(r["counts"]["pushed"] for r in runs)
    again = sync_outbound.apply_async(queue="bulk").get(timeout=120)["runs"]
    assert killed.writes_at_kill >= WRITES_BEFORE_KILL
    assert [(r["status"], r["counts"]["failed"]) for r in runs] == [("succeeded", 0)] * len(runs), runs
    assert faulty == expected, diff(expected, faulty)
    assert pushed > 0 and sum(r["counts"]["pushed"] for r in again) == 0  # pushed once, and not again
