"""PostHog's request throttles, as its ``posthog/rate_limit.py`` and Django REST Framework apply them.

What the stand-in reproduces (read from PostHog's and DRF's source; cited in ``docs/posthog.md``):

- ``BurstRateThrottle`` (480/minute) and ``SustainedRateThrottle`` (4800/hour) are ``PersonalApiKeyRateThrottle``
  subclasses: they count only requests carrying a personal API key, and key their history by a hash of the key
  (``hash_key_value``), so every project reached with one key shares one budget.
- The key is looked for with ``find_key_with_source(request, request_data={})``: the ``Authorization`` header or
  the ``personal_api_key`` query parameter, never the body. A request authenticated by a key in its JSON body is
  therefore not throttled at all.
- DRF runs throttles after authentication and permissions (``APIView.initial``): a 401 or 403 costs nothing.
- Each throttle is DRF's ``SimpleRateThrottle``, a sliding log: drop stamps ``<= now - duration``; refuse when
  ``len(history) >= num_requests`` (a refused request is not recorded), else record ``now``.
  ``APIView.check_throttles`` asks every throttle, so a request refused by one throttle is still recorded by the
  others that admitted it.
- ``wait()`` is ``remaining / (num_requests - len(history) + 1)`` with ``remaining = duration - (now - oldest)``;
  the 429 carries the longest wait of the refusing throttles, rounded up (``math.ceil`` in ``Throttled``), in its
  detail only: drf-exceptions-hog drops DRF's ``Retry-After`` (see ``errors.throttled``).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class ThrottleRate:
    """``num_requests`` per ``duration_s`` seconds, e.g. PostHog's burst rate ``ThrottleRate(480, 60)``."""

    num_requests: int
    duration_s: float

    def __str__(self) -> str:
        return f"{self.num_requests}/{self.duration_s:g}"


POSTHOG_RATES = (ThrottleRate(480, 60), ThrottleRate(4800, 3600))
"""PostHog Cloud's ``burst`` and ``sustained`` rates for personal API keys."""


def parse_throttle_spec(spec: str) -> ThrottleRate:
    """``"480/60"`` → ``ThrottleRate(480, 60.0)``: N requests per SECONDS. ``ValueError`` names a bad spec."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"bad throttle {spec!r}: expected N/SECONDS, e.g. 480/60")
    rate = ThrottleRate(int(match.group(1)), float(match.group(2)))
    if rate.num_requests < 1 or rate.duration_s <= 0:
        raise ValueError(f"bad throttle {spec!r}: N and SECONDS must be positive")
    return rate


def key_ident(key: str) -> str:
    """The throttle identity of a personal API key: a hash, as PostHog's ``hash_key_value``, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()


class Throttle:
    """Sliding-window throttles per key identity (thread-safe); ``rates`` empty means off."""

    def __init__(self, rates: Sequence[ThrottleRate] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._history: dict[tuple[int, str], deque[float]] = {}
        self.rates: tuple[ThrottleRate, ...] = tuple(rates)

    def configure(self, rates: Sequence[ThrottleRate]) -> None:
        """New rates; the histories start empty."""
        with self._lock:
            self.rates = tuple(rates)
            self._history.clear()

    def reset(self) -> None:
        """Forget every request seen (the rates stay)."""
        with self._lock:
            self._history.clear()

    def check(self, ident: str) -> float | None:
        """Admit one request of ``ident`` (None) or refuse it: the seconds until it would be admitted."""
        with self._lock:
            if not self.rates:
                return None
            now = self._clock()
            waits: list[float] = []
            for index, rate in enumerate(self.rates):
                history = self._history.setdefault((index, ident), deque())
                while history and history[0] <= now - rate.duration_s:
                    history.popleft()
                if len(history) >= rate.num_requests:
                    remaining = rate.duration_s - (now - history[0]) if history else rate.duration_s
                    waits.append(remaining / (rate.num_requests - len(history) + 1))
                else:
                    history.append(now)
            return max(waits) if waits else None

    def used(self, ident: str) -> list[int]:
        """Requests of ``ident`` inside each window now (for the admin route and tests)."""
        with self._lock:
            now = self._clock()
            return [
                sum(1 for t in self._history.get((index, ident), ()) if t > now - rate.duration_s)
                for index, rate in enumerate(self.rates)
            ]
