"""The Stripe connector: customers ↔ PostHog accounts, through the official ``stripe`` SDK.

``StripeConnector(StripeConfig(...), budget)`` implements ``sync.connector.Connector`` for the ``customers``
stream; ``StripeConnector.with_shared_budget(config, redis)`` gives it the account's Redis request budget.
See ``docs/connectors/stripe.md``.

Names are imported on first use, so reading ``connectors.stripe.facts`` does not import the SDK.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.stripe.config import StripeConfig, load_stripe_config
    from connectors.stripe.connector import StripeConnector
    from connectors.stripe.cursor import StripeCursor

_EXPORTS: dict[str, str] = {
    "StripeConfig": "connectors.stripe.config",
    "load_stripe_config": "connectors.stripe.config",
    "StripeConnector": "connectors.stripe.connector",
    "StripeCursor": "connectors.stripe.cursor",
}

__all__ = ["StripeConfig", "StripeConnector", "StripeCursor", "load_stripe_config"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
