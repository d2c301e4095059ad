"""Local stand-in for the Stripe API (customers, search, subscriptions, events, signed webhooks).

``create_app(StripeSandboxConfig(...))`` builds the app; ``sandbox.stripe.app`` documents what it serves and
its ``/_sandbox`` admin endpoints.
"""

from sandbox.stripe.app import create_app
from sandbox.stripe.config import StripeSandboxConfig

__all__ = ["StripeSandboxConfig", "create_app"]
