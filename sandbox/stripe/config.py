"""Settings of one Stripe stand-in (what ``crmsync sandbox run stripe`` flags map onto)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.stripe.seed import DEFAULT_BASE_TIME


@dataclass
class StripeSandboxConfig:
    """How a Stripe stand-in behaves.

    ``api_key`` is the only secret key accepted (others get Stripe's 401); ``webhook_url``/``webhook_secret``
    are the one webhook endpoint events are delivered to, signed; ``seed`` customers (with subscriptions) are
    created at start; events older than ``event_retention_days`` are not served. ``seed_base_time`` anchors
    seeded ``created`` timestamps and ``clock`` is the time source (tests may pass a fake one). ``account_id``
    is what ``GET /v1/account`` answers: random unless given, so every fresh stand-in is another Stripe account.
    """

    api_key: str = "sk_test_sandbox"
    webhook_url: str | None = None
    webhook_secret: str = "whsec_sandbox"
    seed: int = 0
    event_retention_days: float = 30
    seed_base_time: int = DEFAULT_BASE_TIME
    clock: Callable[[], float] = time.time
    account_id: str = field(default_factory=lambda: f"acct_{secrets.token_hex(8)}")
