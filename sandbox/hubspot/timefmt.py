"""Timestamps the way HubSpot writes them: epoch milliseconds inside, ISO 8601 with milliseconds outside.

HubSpot mixes formats: ``createdAt``/``updatedAt`` and datetime properties are ISO strings with milliseconds
(``2024-01-05T10:00:00.123Z``), date properties are ``YYYY-MM-DD``, and search filters accept epoch-ms strings
as well as ISO strings. Everything in the stand-in is stored as epoch ms and converted here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BASE_TIME_MS = 1_704_067_200_000
"""2024-01-01T00:00:00.000Z: the fixed instant every seeded timestamp is relative to."""

DAY_MS = 86_400_000


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """``2024-01-05T10:00:00.123Z`` for an epoch-ms value."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_date(ms: int) -> str:
    """``2024-01-05`` for an epoch-ms value (HubSpot's format for ``date`` properties)."""
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d")


@lru_cache(maxsize=131_072)
def parse_timestamp(value: str) -> int | None:
    """Epoch ms from an epoch-ms string, an ISO datetime (``Z`` or offset) or an ISO date; None if neither."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * DAY_MS) + (delta.seconds * 1000) + (delta.microseconds // 1000)
