"""Webhook refreshes lose nothing, on real processes: a ``crmsync worker`` (one pool process) on a private
``redis-server``, the four stand-ins, and record ids gathered in the coalescing set as the webhook receiver does.

- PostHog answers 503 (the stand-in's injected 5xx) to everything while a refresh runs: the task retries
  (Celery, same task id) and, once PostHog recovers, every id is applied and none is left pending or claimed.
  Before claims, the retry ran with the ids it had already ``SPOP``-ed gone.
- The pool process running a refresh is SIGKILLed halfway through: the redelivered task finds its claim and
  applies every id.
- Two workers started on one host without ``--hostname`` answer ``ping`` under two different node names.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from celery import Celery

from tests.faults.harness import REDIS_URL, Deployment, deployment, posthog_env, stack_config
from tests.support.waiting import active_pid, wait_for

SEED = 60


@dataclass
class Rig:
    dep: Deployment
    app: Celery
    config_path: Path
    env: dict[str, str]
    ids: list[str]
    log: Path

    @property
    def pending(self) -> str:
        return f"{self.dep.runtime.ledger.ns}:pending:salesforce:Account"

    def gather(self, ids: list[str]) -> None:
        """What the webhook receiver does with new events: add the ids to the coalescing set."""
        self.dep.runtime.redis.sadd(self.pending, *ids)

    def claimed(self) -> set[str]:
        redis = self.dep.runtime.redis
        claims = f"{self.dep.runtime.ledger.ns}:claim:salesforce:Account"
        return {i for task in redis.smembers(claims) for i in redis.smembers(f"{claims}:{task}")}

    def linked(self) -> set[str]:
        """Salesforce ids PostHog's accounts are linked to."""
        return {str(a.properties.sfdc_id) for a in self.dep.runtime.posthog.iter_accounts() if a.properties.sfdc_id}


def _writes(http: httpx.Client) -> int:
    stats = http.get("/_sandbox/stats").json()
    return sum(r["count"] for r in stats["requests"] if r["method"] in ("POST", "PATCH") and r["status"] < 300)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    from workers.celery_app import configure
    from workers.processes import RedisServer, start_worker, stop_process, wait_for_worker

    tmp_path = tmp_path_factory.mktemp("refresh-claims")
    with RedisServer() as private_redis, pytest.MonkeyPatch.context() as mp:
        for key, value in posthog_env().items():
            mp.setenv(key, value)
        mp.setenv("REDIS_URL", private_redis.url)  # the config's Redis: this process's runtime and the worker's
        app = configure(private_redis.url)
        with deployment(SEED, redis_url=private_redis.url) as dep:
            config_path = tmp_path / "crmsync.yaml"
            config_path.write_text(yaml.safe_dump(stack_config(dep.stack)))
            env = {**os.environ, "CRMSYNC_CONFIG": str(config_path), "REDIS_URL": private_redis.url}
            ids = sorted(
                r.id for page in dep.runtime.connector("salesforce").pull("Account", None) for r in page.records
            )
            app.control.purge()
            log = tmp_path / "worker.log"
            with log.open("wb") as out:
                worker = start_worker(config_path, env, out, concurrency=1)
                try:
                    wait_for_worker(app, worker)
                    yield Rig(dep, app, config_path, env, ids, log)
                finally:
                    stop_process(worker)
                    app.control.purge()
                    configure(REDIS_URL)


@pytest.mark.timeout(240)
def test_a_refresh_retried_after_posthog_5xx_applies_every_id(rig: Rig) -> None:
    from workers.tasks import refresh

    wanted = rig.ids[:20]
    rig.gather(wanted)
    rig.dep.faults(
        "posthog", rate_5xx=1.0, status_5xx=503
    )  # the members list (owner emails → roles) fails: the refresh raises retryable
    try:
        result = refresh.apply_async(("salesforce", "Account"), queue="realtime")
        wait_for(lambda: rig.dep.injected("posthog").get("503", 0) > 0, 60, "PostHog to answer 503")
        wait_for(lambda: result.state == "RETRY", 60, "the task to be retried")
        # between attempts the ids are neither pending nor lost: the retrying task holds them
        assert rig.dep.runtime.redis.scard(rig.pending) == 0
        assert rig.claimed() == set(wanted)
    finally:
        rig.dep.faults("posthog")
    runs = result.get(timeout=120)["runs"]
    assert [r["status"] for r in runs] == ["succeeded"] and runs[0]["counts"]["failed"] == 0, runs
    assert set(wanted) <= rig.linked()
    assert rig.dep.runtime.redis.scard(rig.pending) == 0 and rig.claimed() == set()


@pytest.mark.timeout(240)
def test_a_refresh_whose_worker_is_killed_loses_no_id(rig: Rig) -> None:
    from workers.tasks import refresh

    wanted = rig.ids[20:]
    rig.gather(wanted)
    rig.dep.faults("posthog", latency_ms=150)
    with rig.dep.admin("posthog") as http:
        before = _writes(http)
        result = refresh.apply_async(("salesforce", "Account"), queue="realtime")
        victim = wait_for(lambda: active_pid(rig.app, result.id), 60, "the refresh to start")
        wait_for(lambda: _writes(http) >= before + 5, 60, "the first writes")
        os.kill(victim, signal.SIGKILL)
        assert _writes(http) < before + len(wanted)  # killed halfway: most ids not applied yet
        assert rig.claimed() and rig.dep.runtime.redis.scard(rig.pending) == 0
        runs = result.get(timeout=180)["runs"]  # from the redelivered message
    rig.dep.faults("posthog")
    assert "WorkerLostError" in rig.log.read_text(errors="replace")
    assert [r["status"] for r in runs] == ["succeeded"], runs
    assert set(wanted) <= rig.linked()
    assert rig.dep.runtime.redis.scard(rig.pending) == 0 and rig.claimed() == set()


@pytest.mark.timeout(120)
def test_workers_on_one_host_get_distinct_node_names(rig: Rig, tmp_path: Path) -> None:
    from workers.processes import start_worker, stop_process

    second = start_worker(rig.config_path, rig.env, concurrency=1)
    try:
        names = wait_for(
            lambda: len(rig.app.control.ping(timeout=1.0)) >= 2 and rig.app.control.ping(timeout=1.0), 60, "2"
        )
    finally:
        stop_process(second)
    nodes = sorted(name for reply in names for name in reply)
    assert len(nodes) == 2 and nodes[0] != nodes[1], nodes
    assert all(name.startswith("crmsync-") and "@" in name for name in nodes)
    assert "DuplicateNodenameWarning" not in rig.log.read_text(errors="replace")
