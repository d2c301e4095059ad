"""End to end on a real worker: PostHog throttled far below what the sync needs, and a budget that gives up waiting
at once. Every chunk of the plan that meets the spent budget stops and is re-queued (Celery countdown) until the
plan is written; nothing is parked, nothing is lost, PostHog never has to refuse a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import yaml

from sandbox.posthog.throttle import ThrottleRate
from sandbox.stack import POSTHOG_KEY, SandboxStack
from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from workers.config import parse_config
from workers.processes import start_worker, stop_process, wait_for_worker
from workers.runtime import Runtime

OWN_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/11"  # Celery queues of this test's own


def test_a_throttled_first_sync_is_requeued_until_written_and_parks_nothing(tmp_path: Path) -> None:
    prefix = f"crmsync-thr-{uuid.uuid4().hex[:8]}"
    stack = SandboxStack(seed=24, redis_url=OWN_REDIS, webhooks=False, ledger_prefix=prefix)
    stack.posthog_throttle = (ThrottleRate(10, 1),)
    with stack:
        raw = stack.config()
        raw["posthog"]["budget_max_wait_s"] = 0.05  # give up waiting at once: runs stop and are re-queued
        config_path = tmp_path / "crmsync.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        env = {**os.environ, "CRMSYNC_CONFIG": str(config_path), "REDIS_URL": OWN_REDIS}
        env["POSTHOG_PERSONAL_API_KEY"] = POSTHOG_KEY
        runtime = Runtime(parse_config(raw))
        from workers.celery_app import configure

        app = configure(OWN_REDIS)
        app.control.purge()
        worker = start_worker(config_path, env, (tmp_path / "worker.log").open("wb"))
        try:
            wait_for_worker(app, worker)
            result = subprocess.run(
                [sys.executable, "-m", "workers.cli", "sync", "all", "--full", "--json"],
                capture_output=True,
                text=True,
                env=env,
                timeout=240,
            )
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            runs = json.loads(result.stdout)["runs"]
            written = [r for r in runs if r["source"] == "all"]
            assert written and written[-1]["status"] == "succeeded", runs
            counts = written[-1]["counts"]
            assert counts["throttled"] > 0  # chunks did meet the spent budget and were re-queued
            assert counts["failed"] == 0 and counts["created"] > 0
            assert runtime.ledger.dlq_size() == 0  # nothing parked because of a throttle
            stats = httpx.get(f"{stack.url('posthog')}/_sandbox/stats").json()
            assert stats["throttled"] == 0  # the budget kept every request inside PostHog's limit
            accounts = list(runtime.posthog.iter_accounts(page_size=1000))
            assert len({a.external_id for a in accounts if a.external_id}) == sum(1 for a in accounts if a.external_id)
            for source in ("salesforce", "hubspot", "stripe"):  # cursors committed once the plan was written
                for stream in runtime.streams(source):
                    assert runtime.ledger.get_cursor(source, stream) is not None
        finally:
            stop_process(worker)
            app.control.purge()
            delete_keys(runtime.redis, f"{prefix}:*")
            runtime.close()
