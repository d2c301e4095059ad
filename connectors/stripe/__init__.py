"""The Stripe connector: customers ↔ PostHog accounts, through the official ``stripe`` SDK.

``StripeConnector(StripeConfig(...), budget)`` implements ``connectors.base.Connector`` for the ``customers``
stream; ``StripeConnector.with_shared_budget(config, redis)`` gives it the account's Redis request budget.
See ``docs/connectors/stripe.md``.
"""

from connectors.stripe.config import StripeConfig, load_stripe_config
from connectors.stripe.connector import StripeConnector
from connectors.stripe.cursor import StripeCursor

__all__ = ["StripeConfig", "StripeConnector", "StripeCursor", "load_stripe_config"]
