"""Rate limits, retries, timeouts and error translation, against the stand-in's budgets and injected faults.

Asserted by counts (stand-in request counters, the client's counters, the waits it asked for), never by time.
"""

from __future__ import annotations

import threading

import pytest
import redis

from connectors.hubspot import HubSpotConnector
from connectors.hubspot.client import HubSpotClient, SearchFilter
from connectors.hubspot.errors import (
    HubSpotAuthError,
    HubSpotDailyLimit,
    HubSpotRateLimited,
    HubSpotUnavailable,
)
from connectors.hubspot.limits import bucket_shape
from connectors.hubspot.search import MODIFIED
from sync.engine import SyncEngine
from sync.errors import FatalError, RetryableError
from sync.posthog import PostHogClient
from tests.connectors.hubspot.conftest import HubSpotSandbox, make_config


class Sleeps:
    """A ``sleep`` that records what it was asked to wait, without waiting."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def client_for(
    hubspot: HubSpotSandbox, namespace: str, r: redis.Redis | None = None, **overrides: object
) -> HubSpotClient:
    return HubSpotClient(make_config(hubspot.url, namespace, **overrides), r, sleep=Sleeps())


def one_search(client: HubSpotClient) -> None:
    client.search("deals", [SearchFilter(MODIFIED, "GTE", "0")], MODIFIED, 0, 1, [MODIFIED])


def test_429_storm_delays_but_loses_nothing(
    hubspot: HubSpotSandbox,
    redis_client: redis.Redis,
    budget_namespace: str,
    engine: SyncEngine,
    ph_reps: PostHogClient,
) -> None:
    ids = hubspot.seed(30)  # 35 deals of 30 companies
    hubspot.faults(rate_429=0.3, seed=7)
    config = make_config(hubspot.url, budget_namespace, page_size=5, batch_size=10, max_retries=10)
    connector = HubSpotConnector(config, redis_client)

    report = engine.run(connector, "deals", "full")

    hubspot.faults()
    injected = hubspot.stats()["faults_injected"].get("429", 0)
    assert report.status == "succeeded", report.reason
    assert injected > 5
    assert connector.client.stats.throttled == connector.client.stats.retries == injected
    assert report.counts["created"] == 30 and report.counts["superseded"] == 5 and report.counts["failed"] == 0
    assert len(list(ph_reps.iter_accounts())) == 30
    assert all(hubspot.property_value(rid, "posthog_account_id") for rid in ids)


def test_retry_after_is_honoured_and_exhausted_retries_are_retryable(
    hubspot: HubSpotSandbox, budget_namespace: str
) -> None:
    hubspot.seed(2)
    hubspot.faults(rate_429=1.0, retry_after_s=0.25)
    client = client_for(hubspot, budget_namespace, max_retries=3, max_backoff_s=1.0)

    with pytest.raises(HubSpotRateLimited) as caught:
        client.list_deals(None, ["dealname"])

    assert isinstance(caught.value, RetryableError) and caught.value.retry_after == 0.25
    assert isinstance(client.calls.policy.sleep, Sleeps) and client.calls.policy.sleep.asked == [0.25, 0.25, 0.25]
    assert hubspot.count("<fault>", status=429) == 4 and client.stats.throttled == 4

    # A wait longer than the client's own backoff is handed up at once, for the job to retry later.
    hubspot.reset_counters()
    hubspot.faults(rate_429=1.0, retry_after_s=120)
    with pytest.raises(HubSpotRateLimited) as long_wait:
        client.list_deals(None, ["dealname"])
    assert long_wait.value.retry_after == 120 and client.calls.policy.sleep.asked == [0.25, 0.25, 0.25]
    assert hubspot.count("<fault>", status=429) == 1


def test_without_retry_after_the_backoff_grows_and_is_capped(hubspot: HubSpotSandbox, budget_namespace: str) -> None:
    hubspot.faults(rate_5xx=1.0)
    client = client_for(hubspot, budget_namespace, max_retries=5, backoff_s=1.0, max_backoff_s=4.0)

    with pytest.raises(HubSpotUnavailable):
        client.list_deals(None, ["dealname"])

    assert isinstance(client.calls.policy.sleep, Sleeps)
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert [
        ceiling / 2 <= asked <= ceiling
        for asked, ceiling in zip(client.calls.policy.sleep.asked, ceilings, strict=True)
    ] == [True] * 5
    assert hubspot.count("<fault>", status=500) == 6


def test_a_timeout_is_retried_then_reported_as_retryable(hubspot: HubSpotSandbox, budget_namespace: str) -> None:
    hubspot.faults(latency_ms=400)
    client = client_for(hubspot, budget_namespace, max_retries=1, read_timeout_s=0.1)

    with pytest.raises(HubSpotUnavailable, match="ReadTimeoutError"):
        client.list_deals(None, ["dealname"])

    assert client.stats.requests == 2 and client.stats.retries == 1


def test_daily_limit_and_bad_token_are_fatal_without_retries(hubspot: HubSpotSandbox, budget_namespace: str) -> None:
    hubspot.rate_limits(daily_limit=2)
    client = client_for(hubspot, budget_namespace)
    client.list_deals(None, ["dealname"])
    client.list_deals(None, ["dealname"])
    with pytest.raises(HubSpotDailyLimit) as daily:
        client.list_deals(None, ["dealname"])
    assert isinstance(daily.value, FatalError) and client.stats.requests == 3
    assert client.limits.daily == 2 and client.limits.daily_remaining == 0

    wrong = client_for(hubspot, budget_namespace, access_token="pat-wrong")
    with pytest.raises(HubSpotAuthError) as auth:
        wrong.list_deals(None, ["dealname"])
    assert wrong.stats.requests == 1
    assert "pat-wrong" not in str(auth.value) and "Bearer" not in str(auth.value)


def run_workers(workers: list[HubSpotClient], searches: int) -> list[BaseException]:
    """Each worker runs ``searches`` searches in its own thread; returns what they raised."""
    errors: list[BaseException] = []

    def work(client: HubSpotClient) -> None:
        try:
            for _ in range(searches):
                one_search(client)
        except RetryableError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_workers_sharing_the_search_budget_stay_under_the_window(
    hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str
) -> None:
    hubspot.seed(1)
    hubspot.rate_limits(search_limit_per_s=30)
    settings = {"search_limit_per_s": 30, "budget_name": "one-app", "max_retries": 0}
    workers = [client_for(hubspot, budget_namespace, redis_client, **settings) for _ in range(2)]

    assert run_workers(workers, 45) == []

    assert hubspot.count("/deals/search", status=200) == 90
    assert hubspot.count("/deals/search", status=429) == 0  # 90 searches, 30 a second allowed: none refused
    assert sum(w.budgets.search.taken for w in workers if w.budgets.search) == 90


def test_without_a_shared_budget_the_same_load_is_refused(
    hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str
) -> None:
    """The control for the test above: two budgets (one per worker) overspend and HubSpot answers 429."""
    hubspot.seed(1)
    hubspot.rate_limits(search_limit_per_s=30)
    workers = [
        client_for(hubspot, budget_namespace, redis_client, search_limit_per_s=30, budget_name=f"app-{n}")
        for n in range(2)
    ]
    errors = run_workers(workers, 45)
    assert all(isinstance(e, HubSpotRateLimited) for e in errors)
    assert hubspot.count("/deals/search", status=429) > 0


def test_a_budget_hubspot_reports_spent_is_drained_for_every_worker(
    hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str
) -> None:
    hubspot.rate_limits(app_limit_per_10s=2)  # another integration on the same app spends the rest
    client = client_for(hubspot, budget_namespace, redis_client)
    client.list_deals(None, ["dealname"])
    client.list_deals(None, ["dealname"])
    assert client.limits.max == 2 and client.limits.remaining == 0
    assert client.budgets.app is not None
    assert float(redis_client.hget(client.budgets.app.key, "tokens") or -1) < 1  # type: ignore[arg-type]


@pytest.mark.parametrize(("limit", "interval"), [(190, 10.0), (100, 10.0), (5, 1.0), (30, 1.0)])
def test_bucket_never_exceeds_the_share_of_a_window(limit: int, interval: float) -> None:
    capacity, refill = bucket_shape(limit, interval, share=0.9, burst=0.1)
    assert capacity >= 1
    assert capacity + refill * interval == pytest.approx(limit * 0.9)
