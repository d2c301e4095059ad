"""Pieces every connector's vendor-call path shares, so each vendor fills in parts instead of copying a design.

- ``retry_after(headers)``: the ``Retry-After`` header of any SDK's header mapping (a dict, urllib3's
  ``HTTPHeaderDict``, requests' ``CaseInsensitiveDict``), through the project's one parser
  (``sync.retry.parse_retry_after``: delta-seconds and the HTTP-date form RFC 9110 allows).
- ``CallStats``: what one vendor client's calls cost (requests sent, 429s received, retries, per operation), kept
  by the one call path (``sync.calls``) for every connector and for the PostHog client (per method), the one
  statistics class the workers report to ``/metrics`` as ``crmsync_api_calls_total{vendor}`` and
  ``crmsync_api_throttled_total{vendor}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.retry import parse_retry_after


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of header ``name`` in any header mapping, matched case-insensitively; None when absent."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return None if value is None else str(value)
    return None


def retry_after(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP-date); None when absent or unreadable."""
    return parse_retry_after(header(headers, "Retry-After"), now)


@dataclass
class CallStats:
    """Counters of one vendor client's calls since the last ``take``: every HTTP request sent (retries
    included), the 429s among them, the retries the client made itself, and requests per operation."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)

    def sent(self, operation: str, n: int = 1) -> None:
        self.requests += n
        self.by_operation[operation] += n

    def take(self) -> tuple[int, int]:
        """``(requests, throttled)`` since the last call, then zero them (what a worker adds to ``/metrics``)."""
        counts = (self.requests, self.throttled)
        self.requests = self.throttled = self.retries = 0
        self.by_operation.clear()
        return counts
