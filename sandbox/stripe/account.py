"""``GET /v1/account``: the account the secret key belongs to, with the keys of Stripe's published ``account``.

The top-level keys are those of the ``account`` resource in ``openapi/fixtures3.json`` (github.com/stripe/openapi);
the values describe a standard account that finished onboarding (charges and payouts enabled, nothing due).
crmsync reads only ``id`` (docs/connectors/stripe.md).
"""

from __future__ import annotations

from sandbox.stripe.objects import JSON

_CREATED = 1_700_000_000


def _requirements() -> JSON:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


def account(account_id: str) -> JSON:
    """The stand-in's own Stripe account (``acct_...``)."""
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "name": "crmsync sandbox",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": _CREATED,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "billing@sandbox.example.com",
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/accounts/{account_id}/external_accounts",
        },
        "future_requirements": _requirements(),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": _requirements(),
        "settings": {
            "dashboard": {"display_name": "crmsync sandbox", "timezone": "Etc/UTC"},
            "payouts": {"debit_negative_balances": True, "schedule": {"delay_days": 2, "interval": "daily"}},
        },
        "tos_acceptance": {"date": _CREATED, "ip": None, "user_agent": None},
        "type": "standard",
    }
