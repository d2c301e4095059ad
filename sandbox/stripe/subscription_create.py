"""``POST /v1/subscriptions``: the parameters the stand-in takes, validated as Stripe validates them.

As stripe-python sends them (form-encoded): ``customer``, ``items[0][price]``, ``items[0][quantity]``,
``collection_method``, ``days_until_due``, ``trial_period_days``, ``payment_behavior``, ``metadata[k]``,
``description``, ``expand[]`` (docs.stripe.com/api/subscriptions/create). The status follows what Stripe does
for a customer without a payment method, which is every stand-in customer: a trial starts ``trialing``; a
``send_invoice`` subscription starts ``active`` (its invoice is sent, not charged); a ``charge_automatically``
one cannot pay its first invoice, so it is ``incomplete`` (``payment_behavior`` ``allow_incomplete``, the default,
or ``default_incomplete``) or refused with a 402 ``card_error`` (``error_if_incomplete``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.stripe.customers import parse_patch
from sandbox.stripe.errors import StripeError, invalid_param
from sandbox.stripe.forms import Params, as_hash, as_int, as_str, check_known
from sandbox.stripe.objects import JSON, PLANS

PARAMS = (
    "customer",
    "items",
    "collection_method",
    "days_until_due",
    "trial_period_days",
    "payment_behavior",
    "metadata",
    "description",
    "expand",
)
MAX_ITEMS = 20
_PRICE_PREFIX = "price_sandbox_"
_PLANS = dict(PLANS)
_NO_PAYMENT_METHOD = "This customer has no attached payment source or default payment method."


def _missing(name: str) -> StripeError:
    return invalid_param(f"Missing required param: {name}.", name, "parameter_missing")


def _items(params: Params) -> list[tuple[str, int]]:
    raw = params.get("items")
    if raw in (None, "", [], {}):
        raise _missing("items")
    entries: list[Any] = list(raw.values()) if isinstance(raw, dict) else list(raw) if isinstance(raw, list) else []
    if not entries or not all(isinstance(entry, dict) for entry in entries):
        raise invalid_param("Invalid array", "items")
    if len(entries) > MAX_ITEMS:
        raise invalid_param(f"A subscription can have at most {MAX_ITEMS} items.", "items")
    items: list[tuple[str, int]] = []
    for n, entry in enumerate(entries):
        for name in entry:
            if name not in ("price", "quantity", "metadata"):
                raise invalid_param(f"Received unknown parameter: items[{n}][{name}]", f"items[{n}][{name}]")
        price_id = as_str(entry, "price")
        if not price_id:
            raise _missing(f"items[{n}][price]")
        plan = price_id.removeprefix(_PRICE_PREFIX)
        if not price_id.startswith(_PRICE_PREFIX) or plan not in _PLANS:
            raise invalid_param(f"No such price: '{price_id}'", f"items[{n}][price]", "resource_missing")
        if any(plan == seen for seen, _ in items):
            raise invalid_param("Cannot add multiple subscription items with the same price.", f"items[{n}][price]")
        quantity = as_int(entry, "quantity")
        if quantity is not None and quantity < 0:
            raise invalid_param("Invalid non-negative integer", f"items[{n}][quantity]")
        items.append((plan, 1 if quantity is None else quantity))
    return items


def _status(params: Params, trial_days: int | None) -> str:
    behavior = as_str(params, "payment_behavior") or "allow_incomplete"
    if behavior not in ("allow_incomplete", "default_incomplete", "error_if_incomplete"):
        raise invalid_param(f"Invalid payment_behavior: {behavior}", "payment_behavior")
    if trial_days:
        return "trialing"
    if as_str(params, "collection_method") == "send_invoice":
        return "active"
    if behavior == "error_if_incomplete":
        raise StripeError(402, _NO_PAYMENT_METHOD, type="card_error", code="resource_missing")
    return "incomplete"


def parse_create(params: Params) -> tuple[str, str, JSON]:
    """``(customer_id, status, terms)`` for ``StripeStore.create_subscription``; Stripe's 400s otherwise."""
    check_known(params, PARAMS)
    customer_id = as_str(params, "customer")
    if not customer_id:
        raise _missing("customer")
    items = _items(params)
    method = as_str(params, "collection_method") or "charge_automatically"
    if method not in ("charge_automatically", "send_invoice"):
        raise invalid_param(f"Invalid collection_method: {method}", "collection_method")
    days_until_due = as_int(params, "days_until_due")
    if method == "send_invoice" and days_until_due is None:
        raise _missing("days_until_due")
    if method != "send_invoice" and days_until_due is not None:
        raise invalid_param("days_until_due can only be set when collection_method is send_invoice.", "days_until_due")
    trial_days = as_int(params, "trial_period_days")
    if trial_days is not None and not 0 <= trial_days <= 730:
        raise invalid_param("trial_period_days must be between 0 and 730.", "trial_period_days")
    fields: JSON = {"collection_method": method, "days_until_due": days_until_due}
    fields |= _metadata(params)
    description = as_str(params, "description")
    if description:
        fields["description"] = description
    terms: JSON = {"items": items, "fields": fields, "trial_s": (trial_days or 0) * 86400}
    return customer_id, _status(params, trial_days), terms


def _metadata(params: Mapping[str, Any]) -> JSON:
    """``metadata[k]=v`` validated by the customer rules (the same limits apply to every object's metadata)."""
    if as_hash(params, "metadata") is None:
        return {}
    patch = parse_patch({"metadata": params["metadata"]})
    return {"metadata": {k: v for k, v in patch.metadata.items() if v is not None}}
