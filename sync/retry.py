"""Short HTTP-level retries: exponential backoff with full jitter, honouring ``Retry-After``, bounded in
count and in total time. Job-level retries (a whole run later) belong to Celery, not here.

A ``Retry-After`` is honoured whatever its length: one up to ``max_backoff_s`` is slept through here; a longer
one is never cut short, the error goes up carrying it (``retry_after``) so the job retries when it has passed."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

_THROTTLE_DETAIL = re.compile(r"Expected available in (\d+(?:\.\d+)?) seconds?\b")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard


def parse_throttle_detail(detail: object) -> float | None:
    """Seconds to wait from PostHog's 429 ``detail`` ("Request was throttled. Expected available in N seconds.",
    "1 second." singular: DRF's ``Throttled`` message): PostHog's exception handler sends no ``Retry-After``, so
    the wait is only in the message (``posthog/rate_limit.py``; drf-exceptions-hog ``handler.py``). None when the
    detail says no wait."""
    if not isinstance(detail, str):
        return None
    match = _THROTTLE_DETAIL.search(detail)
    return float(match.group(1)) if match else None


@dataclass
class RetryPolicy:
    """When and how long to wait before the next attempt."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_total_s: float = 120.0
    jitter_floor: float = 0.0
    """The share of the backoff ceiling always waited: 0 is full jitter (``uniform(0, ceiling)``), 0.5 waits
    between half the ceiling and all of it (what HubSpot's connector and stripe-python's SDK do)."""
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """Wait before retry ``retry_number`` (1-based): the server's hint if given (never shortened: a retry
        before it would only be refused again), else jittered backoff."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_backoff_s, self.backoff_s * (2 ** (retry_number - 1)))
        return self.rng.uniform(ceiling * self.jitter_floor, ceiling)

    def next_delay(self, retry_number: int, retry_after: float | None, elapsed_s: float) -> float | None:
        """The wait before the next attempt, or None when the count or time budget is spent, or when the
        server asks for a longer wait than ``max_backoff_s``: the error then goes up with its true
        ``retry_after`` for a job-level retry (Celery countdown) instead of a retry here that comes too early."""
        if retry_number > self.max_retries:
            return None
        if retry_after is not None and retry_after > self.max_backoff_s:
            return None
        wait = self.delay(retry_number, retry_after)
        if elapsed_s + wait > self.max_total_s:
            return None
        return wait
