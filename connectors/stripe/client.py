"""The one ``stripe.StripeClient`` a connector uses, and the one call path every Stripe request takes.

No module globals are touched (``stripe.api_key`` stays unset): each connector has its own client, key and
timeouts. The SDK's own retries are off (``max_network_retries=0``): every SDK call is one HTTP request, sent
through the one call path (``sync.calls.VendorCalls``) with Stripe's parts:

- the budget: a token of the account's Redis token bucket per attempt, so all workers together stay inside
  Stripe's rate limit; a 429 empties the bucket, so every worker backs off, not only the one that was refused;
- the error table (``connectors.stripe.errors.ERRORS``);
- transient: what stripe-python's own retry decided (``HTTPClient._should_retry`` in ``stripe/_http_client.py``,
  stripe 16): ``Stripe-Should-Retry`` when Stripe sends it, else 409 and 5xx, and connection errors the SDK
  marks ``should_retry``; up to ``max_network_retries`` times;
- the wait: the one policy with stripe-python's backoff shape (0.5 s doubling up to 5 s, jittered between half
  and all of it: ``INITIAL_DELAY``, ``MAX_DELAY``, ``_add_jitter_time``), and a ``Retry-After`` honoured
  (stripe-python ignores it; a longer one than 5 s goes up with the error for the job to retry).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import stripe

from connectors.stripe.config import StripeConfig
from connectors.stripe.errors import ERRORS
from sync.calls import BucketBudget, VendorCalls, VendorRules
from sync.errors import CrmsyncError
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import header

T = TypeVar("T")


def transient(exc: BaseException, error: CrmsyncError) -> bool:
    """Whether stripe-python would have sent the failed request again (see the module docstring)."""
    if isinstance(exc, stripe.APIConnectionError):
        return bool(exc.should_retry)
    if not isinstance(exc, stripe.StripeError):
        return False
    should = header(exc.headers, "Stripe-Should-Retry")
    if should in ("true", "false"):
        return should == "true"
    status = exc.http_status or 0
    return status == 409 or status >= 500


RULES = VendorRules(name="stripe", errors=ERRORS, transient=transient)


class StripeCalls:
    """The account's SDK client and the one call path its requests take (``call(action, fn)``)."""

    def __init__(self, config: StripeConfig, budget: TokenBucket | None = None) -> None:
        self.transport = stripe.RequestsClient(timeout=(config.connect_timeout_s, config.read_timeout_s))
        self.sdk = stripe.StripeClient(
            config.api_key.get_secret_value(),
            base_addresses={"api": config.api_base},
            max_network_retries=0,
            http_client=self.transport,
        )
        policy = RetryPolicy(
            max_retries=config.max_network_retries,
            backoff_s=0.5,
            max_backoff_s=5.0,
            max_total_s=math.inf,
            jitter_floor=0.5,
        )
        spend = BucketBudget(budget, config.max_budget_wait_s) if budget is not None else None
        self.calls = VendorCalls(RULES, policy, spend)

    def call(self, action: str, fn: Callable[[stripe.StripeClient], T]) -> T:
        """``fn(sdk)``'s answer through the one call path; a failure raises the translated error."""
        return self.calls.call(action, lambda: fn(self.sdk))

    def close(self) -> None:
        """Close this thread's HTTP session."""
        self.transport.close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
