"""Vendor rate budgets shared by every worker process and host, through Redis (a token bucket).

Celery's ``rate_limit`` is per worker; a vendor's budget is per app or per account. So each vendor call first
takes a token from a bucket kept in Redis: ``capacity`` tokens, refilled continuously at ``refill_per_s``. The
arithmetic runs in one Lua script on the Redis server, with the server's clock, so concurrent workers on
different machines never overspend and never disagree about time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from sync.errors import RetryableError

_TAKE = """
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
else
  wait = (wanted - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""


class BudgetExhausted(RetryableError):
    """No token came free within the caller's patience; try the whole operation later."""


@dataclass
class TokenBucket:
    """One shared budget, e.g. HubSpot's 190 requests per 10 s: ``TokenBucket(r, key, 190, 19.0)``."""

    client: redis.Redis
    key: str
    capacity: float
    refill_per_s: float
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.refill_per_s <= 0:
            raise ValueError("capacity and refill_per_s must be positive")
        self._take = self.client.register_script(_TAKE)
        self.waited_s = 0.0
        self.taken = 0

    def try_take(self, n: float = 1) -> float:
        """Take ``n`` tokens if available (returns 0.0), else take none and return the seconds to wait."""
        return float(self._take(keys=[self.key], args=[self.capacity, self.refill_per_s, n]))

    def take(self, n: float = 1, max_wait_s: float = 60.0) -> None:
        """Block until ``n`` tokens are taken; ``BudgetExhausted`` if that would take longer than ``max_wait_s``."""
        waited = 0.0
        while True:
            wait = self.try_take(n)
            if wait <= 0:
                self.taken += 1
                self.waited_s += waited
                return
            if waited + wait > max_wait_s:
                raise BudgetExhausted(f"rate budget {self.key} exhausted", retry_after=wait)
            self.sleep(wait)
            waited += wait

    def drain(self) -> None:
        """Spend every token now (e.g. after the vendor answered 429: the budget is gone for this window)."""
        self.client.hset(self.key, mapping={"tokens": "0", "at": str(_server_time(self.client))})


def _server_time(client: redis.Redis) -> float:
    seconds, micros = client.time()  # type: ignore[misc]
    return float(seconds) + float(micros) / 1_000_000
