"""Admin routes under ``/_sandbox/`` (JSON in and out; exempt from faults and counters).

Each change made here records the same Stripe event an API or dashboard change would (``request.id`` null)
and triggers a signed webhook to the configured URL. Documented in ``sandbox.stripe.app``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.common import ADMIN_PREFIX
from sandbox.stripe.customers import parse_patch
from sandbox.stripe.objects import JSON, PLANS, SUBSCRIPTION_STATUSES
from sandbox.stripe.store import ADMIN, StripeStore
from sandbox.stripe.webhooks import StripeWebhooks

router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)

SubscriptionStatus = Literal[
    "active", "canceled", "incomplete", "incomplete_expired", "past_due", "paused", "trialing", "unpaid"
]
assert set(get_args(SubscriptionStatus)) == set(SUBSCRIPTION_STATUSES)
Plan = Literal["starter", "growth", "scale"]
assert set(get_args(Plan)) == {name for name, _ in PLANS}


class SeedRequest(BaseModel):
    """Seed identities ``start .. start+count-1``; ``webhooks`` also delivers their (retained) events."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(ge=0, le=1_000_000)
    start: int = Field(0, ge=0)
    webhooks: bool = False


class CustomerEdit(BaseModel):
    """Fields to change; ``null`` or ``""`` unsets a field, a metadata value of ``null``/``""`` deletes its key."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    email: str | None = None
    description: str | None = None
    phone: str | None = None
    metadata: dict[str, str | None] | None = None


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str
    status: SubscriptionStatus = "active"
    plan: Plan = "growth"


class SubscriptionEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: SubscriptionStatus


class AgeEvents(BaseModel):
    """Shift events back by ``days`` + ``seconds`` (all of them, or only ``ids``)."""

    model_config = ConfigDict(extra="forbid")
    days: float = Field(0, ge=0)
    seconds: int = Field(0, ge=0)
    ids: list[str] | None = None


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None
    secret: str | None = None


def _store(request: Request) -> StripeStore:
    store: StripeStore = request.app.state.store
    return store


def _webhooks(request: Request) -> StripeWebhooks:
    webhooks: StripeWebhooks = request.app.state.webhooks
    return webhooks


@router.post("/seed")
async def seed(request: Request, body: SeedRequest) -> dict[str, int]:
    return _store(request).seed(body.count, body.start, notify=body.webhooks)


@router.get("/counts")
async def counts(request: Request) -> dict[str, int]:
    return _store(request).counts()


@router.post("/customers/{customer_id}")
async def edit_customer(request: Request, customer_id: str, body: CustomerEdit) -> JSON:
    params: dict[str, Any] = {}
    for name in body.model_fields_set - {"metadata"}:
        params[name] = getattr(body, name) or ""
    if body.metadata is not None:
        params["metadata"] = {key: value or "" for key, value in body.metadata.items()} or ""
    return _store(request).update_customer(customer_id, parse_patch(params), ADMIN)


@router.delete("/customers/{customer_id}")
async def delete_customer(request: Request, customer_id: str) -> JSON:
    return _store(request).delete_customer(customer_id, ADMIN)


@router.post("/subscriptions")
async def create_subscription(request: Request, body: SubscriptionCreate) -> JSON:
    return _store(request).create_subscription(body.customer, body.status, body.plan, ADMIN)


@router.post("/subscriptions/{subscription_id}")
async def edit_subscription(request: Request, subscription_id: str, body: SubscriptionEdit) -> JSON:
    return _store(request).set_subscription_status(subscription_id, body.status, ADMIN)


@router.post("/events/age")
async def age_events(request: Request, body: AgeEvents) -> dict[str, int]:
    return _store(request).age_events(int(body.days * 86400) + body.seconds, body.ids)


@router.get("/webhooks")
async def webhook_stats(request: Request) -> dict[str, Any]:
    return _webhooks(request).stats()


@router.put("/webhooks")
async def set_webhook_target(request: Request, body: WebhookTarget) -> dict[str, Any]:
    _webhooks(request).configure(body.url, body.secret)
    return _webhooks(request).stats()


@router.post("/webhooks/drain")
def drain_webhooks(request: Request, timeout_s: float = 10.0) -> dict[str, Any]:
    """Wait (in a worker thread, not the event loop) until queued deliveries are sent or given up."""
    drained = _webhooks(request).sender.drain(timeout_s)
    return {"drained": drained, **_webhooks(request).stats()}
