"""Redis restarted in the middle of a run: the run ends cleanly, and the next run converges on a clean run's state.

The deployment's ledger lives on a private ``redis-server`` without persistence (never the shared one), so a
restart loses everything: record entries, account index, cursors, locks. PostHog answers slowly (``latency_ms``)
so the Salesforce full sync is still writing when the server is killed and started again on the same port. That
run must end with an error (or finish), not hang or crash the process; a full re-sync on the now-empty ledger must
find the accounts the first run created (by external id through the account index) instead of creating them
again, and end in exactly the clean run's PostHog and CRM state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from sync.errors import RetryableError
from sync.report import RunReport
from tests.faults.harness import deployment, diff, final_state, settle, sync_all
from workers.processes import RedisServer

SEED = 60
LATENCY_MS = 100  # slow enough that the run is still writing when Redis goes (a PATCH needs no GET now)
WRITES_BEFORE_RESTART = 20  # accounts created


@pytest.mark.timeout(150)
@pytest.mark.parametrize("outage", [False, True], ids=["restart", "outage"])
def test_redis_restart_mid_run_then_next_run_converges(
    outage: bool, clean_state: Callable[[int], dict[str, list[str]]]
) -> None:
    """``restart``: killed and started again at once (the client reconnects: the run may go on, on an empty
    ledger). ``outage``: killed, and started again only once the run has ended (it must end with an error)."""
    expected = clean_state(SEED)
    with RedisServer() as private_redis, deployment(SEED, redis_url=private_redis.url) as dep:
        dep.faults("posthog", latency_ms=LATENCY_MS)
        outcome: list[RunReport | BaseException] = []

        def first_run() -> None:
            try:
                outcome.append(dep.runtime.engine.run(dep.runtime.connector("salesforce"), "Account", "full"))
            except BaseException as exc:  # what the Celery task would see
                outcome.append(exc)

        with dep.admin("posthog") as http:
            http.post("/_sandbox/stats/reset").raise_for_status()
            thread = threading.Thread(target=first_run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            while _writes(http) < WRITES_BEFORE_RESTART and time.monotonic() < deadline:
                time.sleep(0.05)
            writes_before = _writes(http)
            if outage:
                private_redis.stop()
                thread.join(timeout=90)
                private_redis.start()
            else:
                private_redis.restart()
                thread.join(timeout=90)
            assert not thread.is_alive(), "the run hung after the Redis restart"
            accounts_after_first = len(list(dep.runtime.posthog.iter_accounts()))
        dep.faults("posthog")
        reports = sync_all(dep.runtime)
        settle(dep.runtime)
        faulty = final_state(dep.runtime)
    [result] = outcome
    assert writes_before >= WRITES_BEFORE_RESTART
    # the run failed with the connection error (a Celery retry) or, reconnected, finished: it never hung
    allowed = (redis.ConnectionError, RetryableError) if outage else (redis.ConnectionError, RetryableError, RunReport)
    assert isinstance(result, allowed), repr(result)
    assert accounts_after_first > SEED // 5  # the interrupted run had created accounts before the restart
    assert all(r.status == "succeeded" and not r.counts["failed"] for r in reports), [r.as_dict() for r in reports]
    assert faulty == expected, diff(expected, faulty)  # no duplicate account, nothing missing


def _writes(http: object) -> int:
    import httpx

    assert isinstance(http, httpx.Client)
    stats = http.get("/_sandbox/stats").json()
    # accounts created: on today's PostHog a batch also writes relationships and custom values, and writes the
    # accounts that exist before it creates the new ones
    return sum(
        r["count"]
        for r in stats["requests"]
        if r["method"] == "POST" and r["route"].endswith("/accounts/") and r["status"] < 300
    )
