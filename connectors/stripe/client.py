"""The one ``stripe.StripeClient`` a connector uses, and the HTTP transport under it that pays the shared budget.

No module globals are touched (``stripe.api_key`` stays unset): each connector has its own client, key and
timeouts. Every HTTP attempt the SDK makes, its own retries included, first takes a token from the account's
Redis token bucket, so all workers together stay inside Stripe's rate limit; a 429 empties the bucket, so every
worker backs off, not only the one that was refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe

from connectors.stripe.config import StripeConfig
from sync.ratelimit import TokenBucket
from sync.vendor import CallStats


class BudgetedHttpClient(stripe.RequestsClient):
    """The SDK's ``requests`` transport with explicit timeouts, a shared request budget, and counters."""

    def __init__(
        self,
        timeout: tuple[float, float],
        budget: TokenBucket | None = None,
        max_budget_wait_s: float = 60.0,
    ) -> None:
        super().__init__(timeout=timeout)
        self.budget = budget
        self.max_budget_wait_s = max_budget_wait_s
        self.stats = CallStats()

    def request(  # type: ignore[override]  # RequestsClient answers bytes where HTTPClient declares str
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """One HTTP attempt: pay a token (``BudgetExhausted`` if none comes in time), send, note a 429."""
        if self.budget is not None:
            self.budget.take(1, self.max_budget_wait_s)
        content, status, response_headers = super().request(method, url, headers, post_data)
        self.stats.sent(method.upper())
        if status == 429:
            self.stats.throttled += 1
            if self.budget is not None:
                self.budget.drain()
        return content, status, response_headers

    def close(self) -> None:
        """Close this thread's HTTP session."""
        super().close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated


def make_client(
    config: StripeConfig, budget: TokenBucket | None = None
) -> tuple[stripe.StripeClient, BudgetedHttpClient]:
    """A ``StripeClient`` for ``config`` with SDK retries set explicitly, and its transport (for its counters)."""
    transport = BudgetedHttpClient(
        timeout=(config.connect_timeout_s, config.read_timeout_s),
        budget=budget,
        max_budget_wait_s=config.max_budget_wait_s,
    )
    client = stripe.StripeClient(
        config.api_key.get_secret_value(),
        base_addresses={"api": config.api_base},
        max_network_retries=config.max_network_retries,
        http_client=transport,
    )
    return client, transport
