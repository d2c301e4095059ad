"""HubSpot's rate limits: the shared budgets every worker draws on, and the ``X-HubSpot-RateLimit-*`` headers.

HubSpot allows a private app a number of requests per rolling 10 seconds, searches a number per second, and a
portal a number per day. Two Redis token buckets (``sync.ratelimit.TokenBucket``) keep all workers of one app
inside the first two (``shared_budgets``); ``RateLimitState.read`` keeps the latest figures HubSpot reports and
says when a window is spent, so the one call path (``sync.calls``) drains the bucket for every worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from connectors.hubspot.config import HubSpotConfig
from sync.keys import crm_budget
from sync.ratelimit import TokenBucket


@dataclass
class RateLimitState:
    """The latest ``X-HubSpot-RateLimit-*`` values seen (None until a response carried them)."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    search_max: int | None = None
    search_remaining: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    def read(self, raw_headers: Mapping[str, Any], search: bool) -> bool:
        """Remember the figures of one answer (or error answer); True when HubSpot reports the window spent."""
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        remaining = _int(headers.get("x-hubspot-ratelimit-remaining"))
        limit = _int(headers.get("x-hubspot-ratelimit-max"))
        if search:
            self.search_max = limit if limit is not None else self.search_max
            self.search_remaining = remaining
        else:
            self.max = limit if limit is not None else self.max
            self.remaining = remaining
            self.interval_ms = _int(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
            daily = _int(headers.get("x-hubspot-ratelimit-daily"))
            if daily is not None:
                self.daily = daily
                self.daily_remaining = _int(headers.get("x-hubspot-ratelimit-daily-remaining"))
        return remaining == 0


@dataclass(frozen=True)
class Budgets:
    """The two shared budgets (None when no Redis was given: nothing is shared, 429s are still handled)."""

    app: TokenBucket | None
    search: TokenBucket | None


def bucket_shape(limit: float, interval_s: float, share: float, burst: float) -> tuple[float, float]:
    """(capacity, refill per second) of a token bucket that never exceeds ``limit * share`` in any window of
    ``interval_s``: a burst of ``capacity`` plus ``refill * interval_s`` adds up to exactly that."""
    usable = limit * share
    capacity = max(1.0, usable * burst)
    return capacity, (usable - capacity) / interval_s


def shared_budgets(client: redis.Redis, config: HubSpotConfig) -> Budgets:
    """The app and search buckets every worker using this app shares (keyed by ``config.budget_id``)."""
    prefix = crm_budget("hubspot", config.budget_id, config.budget_namespace)
    app_cap, app_rate = bucket_shape(config.app_limit_per_10s, 10.0, config.budget_share, config.budget_burst)
    search_cap, search_rate = bucket_shape(config.search_limit_per_s, 1.0, config.budget_share, config.budget_burst)
    return Budgets(
        app=TokenBucket(client, f"{prefix}:app", app_cap, app_rate),
        search=TokenBucket(client, f"{prefix}:search", search_cap, search_rate),
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
