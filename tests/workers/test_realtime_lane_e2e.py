"""End to end on a real ``crmsync worker`` at its default layout: a webhook refresh is not stuck behind a backfill.

PostHog's stand-in throttled at 8 requests a second, a full sync of 300 records per CRM writing its plan (both bulk pool
processes busy with ``write_plan`` chunks, the budget saturated), then a Stripe customer renamed and its refresh
enqueued. Counted in the stand-in's own request log (arrival order): the PostHog requests between the enqueue and
the refresh's write. Without the realtime node and the budget's realtime lane, the refresh waits for a chunk of up
to 200 accounts to finish (issue 20: 52 s at this rate).
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from bench.harness import install_recorders
from sandbox.posthog.throttle import ThrottleRate
from sandbox.stack import POSTHOG_KEY, SandboxStack
from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from tests.support.waiting import wait_for
from workers.config import parse_config
from workers.processes import start_worker, stop_process, wait_for_worker
from workers.runtime import Runtime

OWN_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/14"  # Celery queues of this test's own
REQUESTS_BOUND = 16  # two seconds of the budget: the next free slots, not a place behind a chunk
WRITES = ("POST", "PATCH")


@pytest.mark.timeout(300)
def test_a_refresh_reaches_posthog_within_a_few_requests_while_a_backfill_saturates_the_budget(tmp_path: Path) -> None:
    from workers.celery_app import configure
    from workers.tasks import refresh, sync_all

    prefix = f"crmsync-lane-{uuid.uuid4().hex[:8]}"
    stack = SandboxStack(seed=300, redis_url=OWN_REDIS, webhooks=False, ledger_prefix=prefix)
    stack.posthog_throttle = (ThrottleRate(8, 1),)
    with stack:
        posthog_log = install_recorders(stack)["posthog"]
        raw = stack.config()
        raw["posthog"]["budget_margin_s"] = 0.05
        config_path = tmp_path / "crmsync.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        env = {**os.environ, "CRMSYNC_CONFIG": str(config_path), "REDIS_URL": OWN_REDIS}
        env["POSTHOG_PERSONAL_API_KEY"] = POSTHOG_KEY
        runtime = Runtime(parse_config(raw))
        app = configure(OWN_REDIS)
        app.control.purge()
        worker = start_worker(config_path, env, (tmp_path / "worker.log").open("wb"))  # the default layout
        try:
            wait_for_worker(app, worker)
            customers = [r.id for r in next(iter(runtime.connector("stripe").pull("customers", None))).records]
            refresh.apply_async(("stripe", "customers", customers[:1]), queue="realtime").get(timeout=120)  # warm

            posthog_log.on = True
            sync_all.apply_async((), {"mode": "full"}, queue="bulk")
            wait_for(lambda: _writes(posthog_log.requests) >= 40, 180, "the backfill to saturate the budget")

            marker = f"Renamed {uuid.uuid4().hex[:8]}"
            with httpx.Client(verify=str(stack.ca_file), timeout=30) as http:
                renamed = http.post(f"{stack.url('stripe')}/_sandbox/customers/{customers[1]}", json={"name": marker})
                renamed.raise_for_status()
            enqueued_at = len(posthog_log.requests)
            refresh.apply_async(("stripe", "customers", customers[1:2]), queue="realtime")
            written_at = wait_for(lambda: _first_with(posthog_log.requests, marker), 120, "the refresh's write")
            wait_for(lambda: _writes(posthog_log.requests[written_at:]) >= 8, 120, "the backfill to go on")
        finally:
            posthog_log.on = False
            app.control.purge()
            worker.send_signal(signal.SIGQUIT)  # cold shutdown: the backfill's chunks are not waited for
            stop_process(worker)
            app.control.purge()
            delete_keys(runtime.redis, f"{prefix}:*")
            runtime.close()
            configure(REDIS_URL)
    between = written_at - enqueued_at
    print(f"PostHog requests between the refresh's enqueue and its write: {between}")
    assert between <= REQUESTS_BOUND, between


def _writes(requests: list[object]) -> int:
    return sum(1 for r in requests if getattr(r, "method", "") in WRITES)


def _first_with(requests: list[object], marker: str) -> int | None:
    """Index (1-based) of the first request whose body carries ``marker``."""
    needle = marker.encode()
    for index, request in enumerate(list(requests), start=1):
        if getattr(request, "method", "") in WRITES and needle in getattr(request, "body", b""):
            return index
    return None
