"""Stripe's JSON objects, field for field: customers, subscriptions, events, lists and search results.

Records are stored as the JSON the API returns and never mutated in place: a change builds a new dict. An
event can therefore keep a reference to the object as it was (``data.object``) without copying it, and a
response can return the stored dict as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]

API_VERSION = "2026-10-28.endive"
"""The version stripe-python 16 pins (``stripe._api_version._ApiVersion.CURRENT``); events carry it."""

SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)

CUSTOMER_FIELDS = (
    "address",
    "balance",
    "business_name",
    "description",
    "email",
    "individual_name",
    "invoice_prefix",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
)
"""Customer fields the stand-in lets you set (on create, update and the admin edit)."""


def _invoice_prefix(customer_id: str) -> str:
    return hashlib.sha1(customer_id.encode()).hexdigest()[:8].upper()


def customer(customer_id: str, created: int, livemode: bool, fields: Mapping[str, Any]) -> JSON:
    """A customer as ``GET /v1/customers/{id}`` returns it (``subscriptions`` only appears when expanded).

    The keys are those of the customer in Stripe's published fixture (``openapi/fixtures3.json``);
    ``business_name`` and ``individual_name`` appear only once set."""
    obj: JSON = {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": _invoice_prefix(customer_id),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": livemode,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update(fields)
    return obj


def deleted_customer(customer_id: str) -> JSON:
    """What retrieving or deleting a deleted customer answers (200, not 404)."""
    return {"id": customer_id, "object": "customer", "deleted": True}


PLANS = (("starter", 2900), ("growth", 9900), ("scale", 49900))
"""(nickname, monthly amount in cents) of the sandbox's three prices."""

_MONTH_S = 30 * 86400
TRIAL_S = 14 * 86400


def price(plan: str) -> JSON:
    """The recurring monthly price of a sandbox plan (``price_sandbox_<plan>``), embedded in subscription items."""
    amount = dict(PLANS)[plan]
    return {
        "id": f"price_sandbox_{plan}",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1_700_000_000,
        "currency": "usd",
        "livemode": False,
        "custom_unit_amount": None,
        "lookup_key": plan,
        "metadata": {},
        "nickname": plan.title(),
        "product": f"prod_sandbox_{plan}",
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def plan_of(price_obj: JSON) -> JSON:
    """The legacy ``plan`` view of a recurring price, which subscription items still carry next to ``price``."""
    recurring = price_obj["recurring"]
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": price_obj["livemode"],
        "metadata": price_obj["metadata"],
        "meter": recurring["meter"],
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": price_obj["tiers_mode"],
        "transform_usage": None,
        "trial_period_days": recurring["trial_period_days"],
        "usage_type": recurring["usage_type"],
    }


def subscription_item(
    item_id: str, subscription_id: str, created: int, plan: str, quantity: int, period_start: int
) -> JSON:
    """One item of a subscription: the price (and its ``plan`` view), quantity and current period."""
    item_price = price(plan)
    return {
        "id": item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period_start + _MONTH_S,
        "current_period_start": period_start,
        "discounts": [],
        "metadata": {},
        "plan": plan_of(item_price),
        "price": item_price,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def subscription(
    subscription_id: str,
    customer_id: str,
    created: int,
    status: str,
    plan: str,
    livemode: bool,
    *,
    canceled_at: int | None = None,
    items: list[tuple[str, int]] | None = None,
    trial_s: int = TRIAL_S,
) -> JSON:
    """A subscription of ``items`` (``(plan, quantity)``; one of ``plan`` by default); period fields live on
    the items, as in API versions since 2025-03. The keys are those of the subscription in Stripe's fixture."""
    trial_end = created + trial_s if status == "trialing" else None
    period_start = trial_end or created
    base_item_id = "si_" + subscription_id.removeprefix("sub_")
    item_objects = [
        subscription_item(base_item_id + (f"{n}" if n else ""), subscription_id, created, name, quantity, period_start)
        for n, (name, quantity) in enumerate(items or [(plan, 1)])
    ]
    return {
        "id": subscription_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": period_start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": canceled_at,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled_at is not None else None,
        },
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": canceled_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": item_objects,
            "has_more": False,
            "total_count": len(item_objects),
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "latest_invoice": None,
        "livemode": livemode,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": created if status == "trialing" else None,
    }


def event(
    event_id: str,
    event_type: str,
    created: int,
    obj: JSON,
    livemode: bool,
    *,
    previous_attributes: JSON | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    pending_webhooks: int = 0,
) -> JSON:
    """An event; ``request`` names the API request that caused it (``null`` ids for admin changes)."""
    data: JSON = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def list_object(data: list[JSON], has_more: bool, url: str, total_count: int | None = None) -> JSON:
    """``{"object": "list", "data", "has_more", "url"}``; embedded sub-lists also carry ``total_count``."""
    obj: JSON = {"object": "list", "data": data, "has_more": has_more, "url": url}
    if total_count is not None:
        obj["total_count"] = total_count
    return obj


def search_result(data: list[JSON], has_more: bool, next_page: str | None, url: str, total_count: int | None) -> JSON:
    """``{"object": "search_result", ...}``; ``total_count`` only when ``expand[]=total_count`` asked."""
    obj: JSON = {
        "object": "search_result",
        "data": data,
        "has_more": has_more,
        "next_page": next_page,
        "url": url,
    }
    if total_count is not None:
        obj["total_count"] = total_count
    return obj
