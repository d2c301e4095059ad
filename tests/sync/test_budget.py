"""PostHog's request budget on the real Redis, shared by "workers" (separate budget objects and connections),
and the PostHog client spending it against the stand-in throttled like PostHog. Counts, never durations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from sync.budget import POSTHOG_WINDOWS, RequestBudget, Window, parse_window, posthog_budget_key
from sync.errors import ConfigError
from sync.posthog import PostHogClient
from sync.posthog.errors import PostHogRateLimited
from sync.ratelimit import BudgetExhausted
from sync.retry import RetryPolicy
from sync.settings import PostHogSettings, load_posthog_settings
from tests.conftest import POSTHOG_KEY, REDIS_URL, PostHogSandbox
from tests.support.redis_counting import CountingConnection, counting_client


def budget(key: str, *windows: str, **options: Any) -> RequestBudget:
    """A budget on a connection of its own, as another worker process would have."""
    options.setdefault("margin_s", 0.0)
    return RequestBudget(redis.Redis.from_url(REDIS_URL), key, [parse_window(w) for w in windows], **options)


def test_two_workers_share_every_window_exactly(key: str) -> None:
    a = budget(key, "5/60", "7/3600")
    b = budget(key, "5/60", "7/3600")
    granted = sum(1 for n in range(12) if (a if n % 2 else b).try_acquire() == 0.0)
    assert granted == 5  # one minute window for both, not five each
    assert 0 < a.try_acquire() <= 60 and 0 < b.try_acquire() <= 60
    usage = a.usage()
    assert [(str(u.window), u.used, u.left) for u in usage.windows] == [("5/60", 5, 0), ("7/3600", 5, 2)]
    assert usage.waits == 7 + 2 and usage.blocks == 0 and usage.blocked_for_s == 0


def test_all_or_nothing_across_windows(key: str) -> None:
    a = budget(key, "10/60", "3/3600")
    assert [a.try_acquire() == 0.0 for _ in range(5)] == [True, True, True, False, False]
    assert [u.used for u in a.usage().windows] == [3, 3]  # a refusal by the hour window spends no minute slot


def test_usage_is_one_round_trip(key: str) -> None:
    client = counting_client(REDIS_URL)
    shared = RequestBudget(client, key, POSTHOG_WINDOWS)
    shared.try_acquire()
    before = CountingConnection.round_trips
    usage = shared.usage()
    assert CountingConnection.round_trips - before == 1
    assert [(u.used, u.left) for u in usage.windows] == [(1, 479), (1, 4799)]


def test_a_429_blocks_the_budget_for_everyone(key: str) -> None:
    a = budget(key, "100/60")
    b = budget(key, "100/60")
    a.block(90)
    wait = b.try_acquire()
    assert 85 < wait <= 90
    a.block(5)  # a shorter block never shortens a longer one
    assert 85 < b.try_acquire() <= 90
    usage = b.usage()
    assert usage.blocked_for_s > 85 and usage.blocked_until is not None and usage.blocks == 2
    assert [u.used for u in usage.windows] == [0]  # blocked attempts took nothing
    with pytest.raises(BudgetExhausted) as exc:
        budget(key, "100/60", max_wait_s=60).acquire()
    assert exc.value.retry_after is not None and exc.value.retry_after > 85  # the true wait, not capped


def test_acquire_waits_and_gives_up_past_max_wait(key: str) -> None:
    slept: list[float] = []
    patient = budget(key, "2/60", max_wait_s=130, sleep=slept.append)  # a sleep that lets no time pass
    patient.acquire()
    patient.acquire()
    with pytest.raises(BudgetExhausted) as exc:
        patient.acquire()
    assert len(slept) == 2  # waited twice (about 60 s each, as far as it knows), then a third wait was too long
    assert patient.taken == 2 and patient.waits == 2
    assert exc.value.retry_after is not None and 55 < exc.value.retry_after <= 60
    with pytest.raises(BudgetExhausted):
        budget(key, "2/60", max_wait_s=0).acquire()  # no patience: raised at once, nothing slept


def test_waiting_for_a_small_real_window_takes_every_request(key: str) -> None:
    small = budget(key, "5/1", max_wait_s=10)
    for _ in range(12):
        small.acquire()
    assert small.taken == 12
    assert small.waits >= 2  # 12 requests through 5-per-second windows: at least two waits, never a failure


def test_windows_parse_and_the_key_hides_the_secret() -> None:
    assert parse_window("480/60") == Window(480, 60.0)
    for bad in ("480", "0/60", "480/0", "480/minute"):
        with pytest.raises(ValueError):
            parse_window(bad)
    key = posthog_budget_key("crmsync", "https://us.posthog.com", "phx_secret_value")
    assert key.startswith("crmsync:budget:posthog:us.posthog.com:") and "phx_secret_value" not in key
    assert key == posthog_budget_key("crmsync", "https://us.posthog.com/", "phx_secret_value")


def test_settings_default_to_posthogs_budget_and_name_a_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_x")
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "1")
    assert load_posthog_settings().budget_windows == POSTHOG_WINDOWS
    assert load_posthog_settings(budget=[]).budget_windows == ()
    with pytest.raises(ConfigError) as exc:
        load_posthog_settings(budget=["480 a minute"])
    assert exc.value.key.startswith("POSTHOG_BUDGET")
    with pytest.raises(ConfigError):
        load_posthog_settings(budget=["480/60", "100/60"])


# -- end to end: the client spends the budget against the stand-in throttled like PostHog ------------------


def client(posthog: PostHogSandbox, shared: RequestBudget | None, **retry: Any) -> PostHogClient:
    settings = PostHogSettings(host=posthog.url, personal_api_key=SecretStr(POSTHOG_KEY), project_id=1)
    policy = RetryPolicy(**{"max_retries": 3, "sleep": lambda _s: None, **retry})
    return PostHogClient(settings, retry=policy, budget=shared)


def test_with_the_budget_the_server_never_throttles(
    posthog: PostHogSandbox, throttle: Callable[..., None], key: str
) -> None:
    throttle("20/2")
    shared = budget(key, "20/2", margin_s=0.25, max_wait_s=30)
    with client(posthog, shared) as ph:
        for n in range(30):
            ph.create_account(f"Acme {n}", f"ext-{n}")
    assert posthog.stats()["throttled"] == 0
    assert posthog.count("POST", status=201) == 30
    assert shared.taken == 30 and shared.waits >= 1  # it waited for budget rather than be refused


def test_without_the_budget_the_same_work_is_throttled(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    throttle("20/2")
    with client(posthog, None, max_retries=0) as ph, pytest.raises(PostHogRateLimited) as exc:
        for n in range(30):
            ph.create_account(f"Acme {n}", f"ext-{n}")
    assert posthog.stats()["throttled"] == 1
    assert posthog.count("POST", status=201) == 20
    assert exc.value.retry_after is not None and exc.value.retry_after >= 1


def test_a_429_drains_the_budget_and_its_long_retry_after_is_honoured(
    posthog: PostHogSandbox, throttle: Callable[..., None], key: str
) -> None:
    """The server is stricter than the config says (another tool spends the same key): the one 429 blocks
    every worker for its whole Retry-After; no retry goes out early, the caller gets the true wait."""
    throttle("3/120")
    with client(posthog, budget(key, "100/60", max_wait_s=5)) as ph:
        for n in range(3):
            ph.create_account(f"Acme {n}")
        with pytest.raises(BudgetExhausted) as exc:
            ph.create_account("Acme 3")
    assert exc.value.retry_after is not None and exc.value.retry_after > 100  # not capped at 30 s
    assert posthog.stats()["throttled"] == 1  # the one refusal; nothing was retried into the block
    other_worker = budget(key, "100/60")
    assert other_worker.try_acquire() > 100
    assert other_worker.usage().blocked_for_s > 100


def test_without_a_budget_a_long_retry_after_is_raised_not_cut_short(posthog: PostHogSandbox) -> None:
    posthog.faults(rate_429=1.0, retry_after_s=100)
    waits: list[float] = []
    with client(posthog, None, sleep=waits.append) as ph, pytest.raises(PostHogRateLimited) as exc:
        ph.list_accounts()
    assert exc.value.retry_after == 100
    assert waits == [] and posthog.stats()["faults_injected"] == {"429": 1}


def test_history_counts_each_minute_in_the_same_round_trips(key: str) -> None:
    """Requests, waits and 429 blocks land in a per-minute history inside the scripts that already run: taking a
    slot stays one round trip, and reading a day back is one more."""
    client = counting_client(REDIS_URL)
    shared = RequestBudget(client, key, [parse_window("3/60")])
    shared.try_acquire()  # registers the script (EVALSHA, then EVAL on NOSCRIPT): not what is counted
    before = CountingConnection.round_trips
    waits = [shared.try_acquire() for _ in range(4)]
    assert CountingConnection.round_trips - before == 4 and sum(1 for w in waits if w > 0) == 2
    shared.block(5)
    before = CountingConnection.round_trips
    history = shared.history()
    assert CountingConnection.round_trips - before == 1
    assert sum(m.requests for m in history.values()) == 3
    assert sum(m.waits for m in history.values()) == 2 and sum(m.blocks for m in history.values()) == 1
    assert shared.history(span_s=60, now=time.time() + 7200) == {}  # two hours on: nothing in the last minute
    (hour_key,) = [k for k in client.scan_iter(match=f"{key}:history:*")]
    assert 0 < client.ttl(hour_key) <= 26 * 3600  # bounded: each hour expires a day after its last write
