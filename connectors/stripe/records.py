"""A Stripe customer (plus its subscriptions) as the engine's ``CrmRecord``.

``fields`` is the customer exactly as the API returns it (``to_dict()``), without the embedded
``subscriptions`` list, plus three values the mapping can address:

- ``subscription_status``: the status of the subscription that speaks for the customer (the first in
  ``status_priority`` among its current subscriptions, the newest on a tie; with none current, its newest
  ended one: ``canceled``/``incomplete_expired``; ``None`` with no subscription at all);
- ``subscription``: ``{"id", "status", "created", "ended_at", "price"}`` of that subscription, or ``None``;
- ``email_domain``: the domain of ``email`` (the name's fallback: a customer without a name is named after it);
- ``mrr``: monthly recurring revenue in major units (``monthly_revenue``), ``None`` without a billing subscription.

``link_rank`` orders customers that resolve to one account: a status earlier in ``link_statuses`` first, then
the newest customer (or the oldest, per ``link_tiebreak``). ``version`` is a modification time in epoch ms:
Stripe has none on customers, so it is the newest event seen for the customer when known, else the newest
timestamp on the customer and its subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.stripe.config import ENDED_STATUSES, StripeConfig
from sync.connector import CrmRecord
from sync.mapping import domain_of

SOURCE = "stripe"
STREAM = "customers"
_RANK_SPAN = 10**11
"""Unix seconds stay below this until the year 5138: a status tier is worth more than any creation time."""

JSON = dict[str, Any]


def choose_subscription(
    current: Sequence[Mapping[str, Any]], ended: Mapping[str, Any] | None, config: StripeConfig
) -> Mapping[str, Any] | None:
    """The subscription that speaks for a customer (see the module docstring)."""
    order: dict[str, int] = {status: n for n, status in enumerate(config.status_priority)}
    live = [s for s in current if s.get("status") not in ENDED_STATUSES]
    if live:
        return min(live, key=lambda s: (order.get(str(s.get("status")), len(order)), -int(s.get("created") or 0)))
    return ended


def newest_ended(subscriptions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recently created subscription among ended ones (``None`` if there is none)."""
    ended = [s for s in subscriptions if s.get("status") in ENDED_STATUSES]
    return max(ended, key=lambda s: (int(s.get("created") or 0), str(s.get("id")))) if ended else None


def _summary(subscription: Mapping[str, Any] | None) -> JSON | None:
    if subscription is None:
        return None
    items = (subscription.get("items") or {}).get("data") or []
    price = (items[0].get("price") or {}) if items else {}
    return {
        "id": subscription.get("id"),
        "status": subscription.get("status"),
        "created": subscription.get("created"),
        "ended_at": subscription.get("ended_at"),
        "price": price.get("lookup_key") or price.get("id"),
    }


MRR_STATUSES = ("active", "past_due")
"""Subscriptions that bill: a trial has not paid yet, an unpaid/paused/incomplete one does not bill now."""
ZERO_DECIMAL = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf")
)
"""Currencies whose amounts Stripe gives in major units already (docs.stripe.com/currencies#zero-decimal)."""
_PER_MONTH = {"day": 365 / 12, "week": 52 / 12, "month": 1.0, "year": 1 / 12}


def monthly_revenue(subscriptions: Sequence[Mapping[str, Any]]) -> float | None:
    """Sum over billing subscriptions' items of the price's ``unit_amount`` (or ``unit_amount_decimal``) times
    ``quantity``, normalised to a month by ``recurring.interval``/``interval_count``, in major units (cents / 100
    except zero-decimal currencies), rounded to cents. Items without a per-unit amount (tiered prices, metered
    usage) add nothing; ``None`` when no subscription bills."""
    total: float | None = None
    for sub in subscriptions:
        if sub.get("status") not in MRR_STATUSES:
            continue
        total = total or 0.0
        for item in (sub.get("items") or {}).get("data") or []:
            price = item.get("price") or {}
            recurring = price.get("recurring") or {}
            if recurring.get("usage_type", "licensed") != "licensed":
                continue
            amount = price.get("unit_amount")
            if amount is None and price.get("unit_amount_decimal") is not None:
                amount = float(price["unit_amount_decimal"])
            per_month = _PER_MONTH.get(str(recurring.get("interval")))
            if amount is None or per_month is None:
                continue
            unit = 1 if str(price.get("currency", "")).lower() in ZERO_DECIMAL else 100
            count = int(recurring.get("interval_count") or 1)
            total += float(amount) * int(item.get("quantity") or 1) * per_month / count / unit
    return None if total is None else round(total, 2)


def link_rank(customer: Mapping[str, Any], status: str | None, config: StripeConfig) -> int:
    """Higher keeps the account's link: preferred status tier first, then creation time."""
    preferred: tuple[str, ...] = config.link_statuses
    tier = len(preferred) - preferred.index(status) if status is not None and status in preferred else 0
    created = int(customer.get("created") or 0)
    age_rank = created if config.link_tiebreak == "newest" else _RANK_SPAN - 1 - created
    return tier * _RANK_SPAN + age_rank


def _timestamps(customer: Mapping[str, Any], subscriptions: Sequence[Mapping[str, Any]]) -> list[int]:
    stamps = [int(customer.get("created") or 0)]
    for sub in subscriptions:
        for key in ("created", "canceled_at", "ended_at", "trial_start"):
            value = sub.get(key)
            if isinstance(value, int):
                stamps.append(value)
    return stamps


def customer_record(
    customer: Mapping[str, Any],
    current: Sequence[Mapping[str, Any]],
    ended: Mapping[str, Any] | None,
    config: StripeConfig,
    event_time: int | None = None,
) -> CrmRecord:
    """The record of a live customer; ``current`` are its subscriptions that have not ended, ``ended`` its
    newest ended one (only consulted when ``current`` is empty); ``event_time`` the newest event seen for it."""
    chosen = choose_subscription(current, ended, config)
    status = str(chosen["status"]) if chosen is not None and chosen.get("status") else None
    fields: JSON = {k: v for k, v in customer.items() if k != "subscriptions"}
    email = fields.get("email")
    fields["email_domain"] = domain_of(email) if isinstance(email, str) else None
    fields["subscription_status"] = status
    fields["subscription"] = _summary(chosen)
    fields["mrr"] = monthly_revenue(current)
    seen = [*current, *([ended] if ended is not None else [])]
    stamps = _timestamps(customer, seen)
    if event_time is not None:
        stamps.append(event_time)
    version_s = max(stamps)
    return CrmRecord(
        source=SOURCE,
        object=STREAM,
        id=str(customer["id"]),
        fields=fields,
        version=version_s * 1000,
        modified_at=datetime.fromtimestamp(version_s, UTC),
        link_rank=link_rank(customer, status, config),
    )


def deleted_record(customer_id: str, event_time: int | None = None) -> CrmRecord:
    """A customer that is gone: Stripe's own stub, marked deleted (the engine unlinks its account)."""
    return CrmRecord(
        source=SOURCE,
        object=STREAM,
        id=customer_id,
        fields={"id": customer_id, "object": "customer", "deleted": True},
        version=event_time * 1000 if event_time is not None else None,
        modified_at=datetime.fromtimestamp(event_time, UTC) if event_time is not None else None,
        deleted=True,
    )
