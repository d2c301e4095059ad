"""Settings of one Stripe connector (one Stripe account), validated at start-up with the offending key named.

Everything that decides how much the connector may cost or how long it may wait is explicit here: timeouts,
SDK retries, the shared request budget, the event window. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from sync.errors import ConfigError
from sync.keys import crm_budget

SubscriptionStatus = Literal[
    "active", "trialing", "past_due", "unpaid", "paused", "incomplete", "canceled", "incomplete_expired"
]
ENDED_STATUSES: tuple[SubscriptionStatus, ...] = ("canceled", "incomplete_expired")
"""Statuses Stripe hides from subscription lists (and from ``customer.subscriptions``) unless asked for."""

DEFAULT_EVENT_TYPES: tuple[str, ...] = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
"""The event types that change what a customer record maps to (Stripe allows at most 20 in ``types[]``)."""


class StripeConfig(BaseModel):
    """How to reach one Stripe account and how much of it the connector may use.

    - ``api_key``: a secret or restricted key (read customers, subscriptions and events; write customers).
    - ``api_base``: the API host (a stand-in in tests and the demo).
    - ``connect_timeout_s`` / ``read_timeout_s``: per HTTP attempt; the SDK has no sensible default (80 s).
    - ``max_network_retries``: retries of one call (409, 5xx, connection errors, and 429 when Stripe sends
      ``Stripe-Should-Retry: true``: stripe-python's rule), made by the one call path (``sync.calls``; the SDK's
      own retries are off), each attempt paying from the shared budget; 0 turns them off.
    - ``requests_per_s`` / ``burst``: the shared request budget of this Stripe account across all workers
      (Stripe allows 100 requests/s in live mode and 25 in test mode); ``budget_key`` names the Redis bucket
      (default: derived from the key, so connectors for one account share it); ``max_budget_wait_s`` is how long
      one call may wait for a token before the run gives up with a retryable error.
    - ``page_size``: customers and events per list request (Stripe's maximum is 100).
    - ``event_types``: the ``/v1/events`` types an incremental read follows.
    - ``event_retention_days``: how long Stripe keeps events; a cursor older than that means a full sync.
    - ``event_lookback_s``: an incremental read starts this far before the cursor, so events that become
      visible late are still seen; the event ids already seen there are kept in the cursor and skipped.
    - ``webhook_secrets``: endpoint signing secrets; more than one during a secret rotation.
    - ``webhook_tolerance_s``: how far a webhook's signed timestamp may be from now (replay window).
    - ``status_priority``: which subscription speaks for a customer with several (first listed wins);
      ended subscriptions only count when the customer has no other.
    - ``link_statuses`` / ``link_tiebreak``: when several customers resolve to one account, a customer whose
      subscription status comes earlier in ``link_statuses`` holds the account's link, then the newest (or
      oldest) customer.
    - ``idempotency_prefix``: starts every ``Idempotency-Key`` the connector sends; events caused by such a
      request are recognised as the connector's own echo.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    api_base: str = "https://api.stripe.com"
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    read_timeout_s: float = Field(60.0, gt=0, le=600)
    max_network_retries: int = Field(2, ge=0, le=10)
    requests_per_s: float = Field(25.0, gt=0, le=1000)
    burst: float = Field(25.0, ge=1, le=10_000)
    budget_key: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    max_budget_wait_s: float = Field(60.0, ge=0, le=3600)
    page_size: int = Field(100, ge=1, le=100)
    event_types: tuple[str, ...] = Field(DEFAULT_EVENT_TYPES, min_length=1, max_length=20)
    event_retention_days: float = Field(30.0, gt=0, le=365)
    event_lookback_s: int = Field(60, ge=0, le=86_400)
    webhook_secrets: tuple[SecretStr, ...] = ()
    webhook_tolerance_s: int = Field(300, gt=0, le=86_400)
    status_priority: tuple[SubscriptionStatus, ...] = (
        "active",
        "trialing",
        "past_due",
        "unpaid",
        "paused",
        "incomplete",
    )
    link_statuses: tuple[SubscriptionStatus, ...] = ("active",)
    link_tiebreak: Literal["newest", "oldest"] = "newest"
    idempotency_prefix: str = Field("crmsync-", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an http(s) URL such as https://api.stripe.com")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError("must be a secret (sk_...) or restricted (rk_...) key")
        return value

    @field_validator("event_types")
    @classmethod
    def _customer_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.startswith("customer."):
                raise ValueError(f"{name}: only customer.* events change a customer record")
        return value

    @field_validator("status_priority", "link_statuses")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a status twice")
        return value

    @field_validator("event_lookback_s")
    @classmethod
    def _lookback_inside_retention(cls, value: int, info: ValidationInfo) -> int:
        retention = info.data.get("event_retention_days")
        if retention is not None and value >= retention * 86_400 / 2:
            raise ValueError("must be well inside event_retention_days")
        return value

    @property
    def bucket_key(self) -> str:
        """The Redis key of this account's request budget (never contains the API key itself)."""
        if self.budget_key:
            return crm_budget("stripe", self.budget_key)
        digest = hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()[:16]
        return crm_budget("stripe", digest)


def load_stripe_config(raw: Mapping[str, Any], prefix: str = "sources.stripe.config") -> StripeConfig:
    """Validate a raw mapping (the ``sources.stripe.config`` block of ``crmsync.yaml``).

    A bad entry raises ``ConfigError`` naming its key path, never echoing a secret value.
    """
    try:
        return StripeConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{prefix}.{loc}" if loc else prefix, error["msg"]) from None
