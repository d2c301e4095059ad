"""Stripe's vendor facts (``sync.vendor_facts``): a customer's id alone names its dashboard page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.vendor_facts import VendorFacts


def record_url(obj: str, record_id: str, links: Mapping[str, Any]) -> str | None:
    if obj == "customers":
        return f"https://dashboard.stripe.com/customers/{record_id}"
    return None


FACTS = VendorFacts(
    link_key="stripe_customer_id",
    host_key="api_base",
    record_url=record_url,
    setup_command=None,
    precedence=3,
)
