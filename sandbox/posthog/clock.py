"""Time and ids for the PostHog stand-in: a strictly increasing clock and UUIDv7 ids derived from it.

PostHog stamps ``updated_at`` on every save and uses time-ordered UUIDv7 ids. Incremental sync and the
benchmarks order by ``updated_at``, so two saves inside one clock tick must still get distinct, increasing
stamps: the clock hands out microseconds since the epoch and never repeats or goes backwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MonotonicClock:
    """Microseconds since the Unix epoch, strictly increasing across calls (thread-safe).

    ``floor`` restores the high-water mark after a restart, so stamps keep increasing across processes.
    """

    def __init__(self, floor: int = 0) -> None:
        self._last = floor
        self._lock = threading.Lock()

    def advance_to(self, floor: int) -> None:
        """Never hand out a stamp at or below ``floor`` from now on."""
        with self._lock:
            self._last = max(self._last, floor)

    @property
    def last(self) -> int:
        with self._lock:
            return self._last

    def now(self) -> int:
        with self._lock:
            stamp = max(time.time_ns() // 1000, self._last + 1)
            self._last = stamp
            return stamp


def uuid7(stamp_us: int) -> uuid.UUID:
    """A UUIDv7 (RFC 9562) for the given microsecond stamp.

    The 48-bit field holds the milliseconds; the 12 ``rand_a`` bits hold the sub-millisecond fraction
    (RFC 9562 method 3), so ids made from strictly increasing stamps sort in creation order.
    """
    millis, micros = divmod(stamp_us, 1000)
    fraction = micros * 4096 // 1000
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= fraction << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def iso(stamp_us: int) -> str:
    """``2024-05-01T10:00:00.123456Z``: always with microseconds, always UTC with ``Z``."""
    seconds, micros = divmod(stamp_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp_of(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
