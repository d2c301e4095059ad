"""Top-level keys and JSON types of the Stripe objects the stand-in serves, as Stripe's published fixtures give them.

Read from ``openapi/fixtures3.json`` in github.com/stripe/openapi at commit
f6c2a48fbac2819d1feba8143d942ffc65e1c0d2 (2026-08-21), ``resources.<type>``: for each key, the JSON type of the
fixture's value (``null`` where the fixture's example is null, which says nothing about the type). ``list`` is
the shape of the fixture's embedded lists (``subscription.items``, ``account.external_accounts``).
``search_result`` has no fixture: its keys are those Stripe documents for search results
(docs.stripe.com/api/pagination/search). Derived once by a script over the fixture file (not part of the project).

``OPTIONAL`` are keys an object may carry beyond the fixture's, each for a documented reason: an expansion the
request asked for (``customer.subscriptions``), a field that only appears once set (``business_name`` and
``individual_name`` on a customer), and ``total_count`` on embedded lists and on search results asked for it.
"""

from __future__ import annotations

FIXTURE_COMMIT = "f6c2a48fbac2819d1feba8143d942ffc65e1c0d2"

SHAPES: dict[str, dict[str, str]] = {
    "account": {
        "business_profile": "object", "business_type": "null", "capabilities": "object",
        "charges_enabled": "boolean", "controller": "object", "country": "string", "created": "integer",
        "default_currency": "string", "details_submitted": "boolean", "email": "string",
        "external_accounts": "object", "future_requirements": "object", "id": "string", "metadata": "object",
        "object": "string", "payouts_enabled": "boolean", "requirements": "object", "settings": "object",
        "tos_acceptance": "object", "type": "string",
    },
    "customer": {
        "address": "object", "balance": "integer", "created": "integer", "currency": "string",
        "default_source": "null", "delinquent": "boolean", "description": "null", "discount": "object",
        "email": "null", "id": "string", "invoice_prefix": "string", "invoice_settings": "object",
        "livemode": "boolean", "metadata": "object", "name": "null", "next_invoice_sequence": "integer",
        "object": "string", "phone": "null", "preferred_locales": "array", "shipping": "object",
        "tax_exempt": "string", "test_clock": "null",
    },
    "deleted_customer": {
        "deleted": "boolean", "id": "string", "object": "string",
    },
    "event": {
        "api_version": "null", "created": "integer", "data": "object", "id": "string", "livemode": "boolean",
        "object": "string", "pending_webhooks": "integer", "request": "object", "type": "string",
    },
    "plan": {
        "active": "boolean", "amount": "integer", "amount_decimal": "string", "billing_scheme": "string",
        "created": "integer", "currency": "string", "id": "string", "interval": "string",
        "interval_count": "integer", "livemode": "boolean", "metadata": "object", "meter": "null",
        "nickname": "null", "object": "string", "product": "string", "tiers_mode": "null",
        "transform_usage": "object", "trial_period_days": "null", "usage_type": "string",
    },
    "price": {
        "active": "boolean", "billing_scheme": "string", "created": "integer", "currency": "string",
        "custom_unit_amount": "object", "id": "string", "livemode": "boolean", "lookup_key": "null",
        "metadata": "object", "nickname": "null", "object": "string", "product": "string", "recurring": "object",
        "tax_behavior": "string", "tiers_mode": "null", "transform_quantity": "object", "type": "string",
        "unit_amount": "integer", "unit_amount_decimal": "string",
    },
    "subscription": {
        "application": "null", "application_fee_percent": "null", "automatic_tax": "object",
        "billing_cycle_anchor": "integer", "billing_cycle_anchor_config": "object", "billing_mode": "object",
        "billing_schedules": "array", "billing_thresholds": "object", "cancel_at": "integer",
        "cancel_at_period_end": "boolean", "canceled_at": "integer", "cancellation_details": "object",
        "collection_method": "string", "created": "integer", "currency": "string", "customer": "string",
        "customer_account": "null", "days_until_due": "null", "default_payment_method": "null",
        "default_source": "null", "default_tax_rates": "array", "description": "null", "discounts": "array",
        "ended_at": "integer", "id": "string", "invoice_settings": "object", "items": "object",
        "latest_invoice": "null", "livemode": "boolean", "managed_payments": "object", "metadata": "object",
        "next_pending_invoice_item_invoice": "integer", "object": "string", "on_behalf_of": "null",
        "pause_collection": "object", "payment_settings": "object", "pending_invoice_item_interval": "object",
        "pending_setup_intent": "null", "pending_update": "object", "schedule": "null", "start_date": "integer",
        "status": "string", "test_clock": "null", "transfer_data": "object", "trial_end": "integer",
        "trial_settings": "object", "trial_start": "integer",
    },
    "subscription_item": {
        "billing_thresholds": "object", "created": "integer", "current_period_end": "integer",
        "current_period_start": "integer", "discounts": "array", "id": "string", "metadata": "object",
        "object": "string", "plan": "object", "price": "object", "quantity": "integer", "subscription": "string",
        "tax_rates": "array",
    },
    "list": {
        "data": "array", "has_more": "boolean", "object": "string", "url": "string",
    },
    "search_result": {
        "data": "array", "has_more": "boolean", "next_page": "string", "object": "string", "url": "string",
    },
}  # fmt: skip

OPTIONAL: dict[str, dict[str, str]] = {
    "customer": {"subscriptions": "object", "business_name": "string", "individual_name": "string"},
    "list": {"total_count": "integer"},
    "search_result": {"total_count": "integer"},
}
