"""The shared token bucket on the real Redis: two "workers" (two clients) share one budget."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from sync.ratelimit import BudgetExhausted, TokenBucket
from tests.conftest import REDIS_URL


@pytest.fixture
def key() -> str:
    return f"crmsync-test-bucket-{uuid.uuid4().hex[:10]}"


def test_two_workers_share_one_budget(key: str) -> None:
    a = TokenBucket(redis.Redis.from_url(REDIS_URL), key, capacity=10, refill_per_s=0.001)
    b = TokenBucket(redis.Redis.from_url(REDIS_URL), key, capacity=10, refill_per_s=0.001)
    granted = sum(1 for n in range(30) if (a if n % 2 else b).try_take() == 0.0)
    assert granted == 10  # not 20: the budget is one, whichever process asks
    assert a.try_take() > 0


def test_take_waits_for_refill_and_gives_up_past_patience(key: str) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    bucket = TokenBucket(redis.Redis.from_url(REDIS_URL), key, capacity=2, refill_per_s=5, sleep=sleep)
    bucket.take()
    bucket.take()
    bucket.take()  # the third waits for a refill: about 0.2 s at 5 tokens/s
    assert slept and 0 < sum(slept) <= 0.25
    slow = TokenBucket(redis.Redis.from_url(REDIS_URL), key + "-slow", capacity=1, refill_per_s=0.01)
    slow.take()
    with pytest.raises(BudgetExhausted) as exc:
        slow.take(max_wait_s=1)
    assert exc.value.retry_after is not None and exc.value.retry_after > 1


def test_drain_spends_the_window(key: str) -> None:
    bucket = TokenBucket(redis.Redis.from_url(REDIS_URL), key, capacity=5, refill_per_s=0.001)
    bucket.drain()
    assert bucket.try_take() > 0
