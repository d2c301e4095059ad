"""HubSpot's rate limits: a rolling 10-second app window, a per-second search budget, a daily cap.

Each response carries the ``X-HubSpot-RateLimit-*`` headers of the budget it drew from; a request over
budget is answered 429 with HubSpot's body (``category: RATE_LIMITS``, ``policyName``) and no
``Retry-After`` (HubSpot does not always send one). Rejected requests do not use up budget.
A limit of 0 turns that budget off (and its headers with it).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from sandbox.hubspot.errors import HubSpotError


class RollingWindow:
    """At most ``limit`` acquisitions in any ``interval_s``; thread-safe."""

    def __init__(self, limit: int, interval_s: float) -> None:
        self.limit = limit
        self.interval_s = interval_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, now: float) -> tuple[bool, int]:
        """(allowed, remaining after this request)."""
        with self._lock:
            horizon = now - self.interval_s
            while self._times and self._times[0] <= horizon:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False, 0
            self._times.append(now)
            return True, self.limit - len(self._times)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


@dataclass(frozen=True)
class RateLimitSettings:
    """Budgets; 0 disables one. Defaults are a Professional portal's private-app limits."""

    app_limit_per_10s: int = 190
    search_limit_per_s: int = 5
    daily_limit: int = 500_000


class RateLimiter:
    """Decides per request whether it is within budget and which headers describe the budget left."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.configure(settings)

    def configure(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self._app = RollingWindow(settings.app_limit_per_10s, 10.0)
        self._search = RollingWindow(settings.search_limit_per_s, 1.0)
        self._daily_used = 0
        self._forced_search_429s = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.configure(self.settings)

    def throttle_searches(self, count: int) -> None:
        """Answer the next ``count`` search requests with the per-second 429, whatever the window holds: a
        deterministic way to show what a busy portal does (tests count requests, never time)."""
        with self._lock:
            self._forced_search_429s = count

    def check(self, *, search: bool) -> dict[str, str]:
        """Headers for an admitted request; raises a 429 ``HubSpotError`` (headers in ``extra``) if over."""
        now = time.monotonic()
        if search:
            limit = self.settings.search_limit_per_s
            with self._lock:
                forced = self._forced_search_429s > 0
                self._forced_search_429s -= int(forced)
            if forced:
                exhausted = {
                    "X-HubSpot-RateLimit-Max": str(limit),
                    "X-HubSpot-RateLimit-Remaining": "0",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
                }
                raise RateLimited("You have reached your secondly limit.", "SECONDLY", exhausted)
            if not limit:
                return {}
            allowed, remaining = self._search.acquire(now)
            headers = {
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(remaining),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
            }
            if not allowed:
                raise RateLimited("You have reached your secondly limit.", "SECONDLY", headers)
            return headers
        headers = {}
        daily = self.settings.daily_limit
        if daily:
            with self._lock:
                if self._daily_used >= daily:
                    exhausted = {"X-HubSpot-RateLimit-Daily": str(daily), "X-HubSpot-RateLimit-Daily-Remaining": "0"}
                    raise RateLimited("You have reached your daily limit.", "DAILY", exhausted)
                self._daily_used += 1
                headers["X-HubSpot-RateLimit-Daily"] = str(daily)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily - self._daily_used)
        limit = self.settings.app_limit_per_10s
        if limit:
            allowed, remaining = self._app.acquire(now)
            headers["X-HubSpot-RateLimit-Max"] = str(limit)
            headers["X-HubSpot-RateLimit-Remaining"] = str(remaining)
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
            if not allowed:
                if daily:
                    with self._lock:
                        self._daily_used -= 1
                        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily - self._daily_used)
                raise RateLimited("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING", headers)
        return headers


class RateLimited(HubSpotError):
    """A 429 in HubSpot's shape; ``headers`` are the rate-limit headers to send with it."""

    def __init__(self, message: str, policy: str, headers: dict[str, str]) -> None:
        super().__init__(
            429,
            "RATE_LIMITS",
            message,
            extra={"errorType": "RATE_LIMIT", "policyName": policy, "groupName": "publicapi:crm"},
        )
        self.headers = headers


def injected_rate_limit(settings: RateLimitSettings) -> RateLimited:
    """The 429 an injected fault answers with: the app-window error with nothing remaining."""
    headers = {
        "X-HubSpot-RateLimit-Max": str(settings.app_limit_per_10s),
        "X-HubSpot-RateLimit-Remaining": "0",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    return RateLimited("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING", headers)
