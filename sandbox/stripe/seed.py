"""Deterministic seed data: identity ``i`` → one customer and one subscription, same ids and values every time.

- Customer ``cus_S{i:013d}``: name and email (``contact_email``) of ``identities.company(i)``; metadata
  ``posthog_external_id`` = the company's external id, except for every 5th identity (``i % 5 == 4``), which
  has none — the connector must cope with customers it cannot match by id.
- ``created`` = ``base_time + i * 60``: one minute apart, so newest-first order is total and the same identity
  has the same timestamp in every seeding.
- Subscription ``sub_S{i:013d}``, created 30 s after its customer, on plan ``PLANS[i % 3]``, with status
  ``STATUS_CYCLE[i % 6]`` (active, trialing, active, past_due, active, canceled).
"""

from __future__ import annotations

from sandbox.identities import company
from sandbox.stripe import objects
from sandbox.stripe.objects import JSON

DEFAULT_BASE_TIME = 1_704_067_200
"""2024-01-01T00:00:00Z: seeded records are history, older than Stripe's 30-day event retention."""

STATUS_CYCLE = ("active", "trialing", "active", "past_due", "active", "canceled")


def customer_id(i: int) -> str:
    """The seeded customer id of identity ``i``."""
    return f"cus_S{i:013d}"


def subscription_id(i: int) -> str:
    """The seeded subscription id of identity ``i``."""
    return f"sub_S{i:013d}"


def status_for(i: int) -> str:
    """The status of identity ``i``'s seeded subscription."""
    return STATUS_CYCLE[i % len(STATUS_CYCLE)]


def created_for(i: int, base_time: int) -> int:
    """The ``created`` timestamp of identity ``i``'s seeded customer."""
    return base_time + i * 60


def seed_customer(i: int, base_time: int, livemode: bool) -> JSON:
    """The customer for identity ``i``."""
    identity = company(i)
    metadata = {} if i % 5 == 4 else {"posthog_external_id": identity.external_id}
    return objects.customer(
        customer_id(i),
        created_for(i, base_time),
        livemode,
        {"name": identity.name, "email": identity.contact_email, "metadata": metadata},
    )


def seed_subscription(i: int, base_time: int, livemode: bool) -> JSON:
    """The subscription for identity ``i``; canceled ones ended 90 days after they started."""
    created = created_for(i, base_time) + 30
    status = status_for(i)
    plan = objects.PLANS[i % len(objects.PLANS)][0]
    canceled_at = created + 90 * 86400 if status == "canceled" else None
    return objects.subscription(
        subscription_id(i), customer_id(i), created, status, plan, livemode, canceled_at=canceled_at
    )
