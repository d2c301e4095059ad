"""Settings of one HubSpot stand-in (``create_app(config)``, ``crmsync sandbox run hubspot``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal


def random_portal_id() -> int:
    """A portal id of its own for each stand-in that is not given one: a fresh stand-in is another portal."""
    return random.randint(10_000_000, 99_999_999)


@dataclass
class HubSpotSandboxConfig:
    """What a stand-in portal accepts and how it behaves.

    ``token``: the private-app token accepted as ``Authorization: Bearer <token>``.
    ``app_secret``: signs webhooks (v3 and v1). ``webhook_url``: where deliveries go (None: nowhere).
    ``webhook_format``: ``legacy`` (``deal.propertyChange``) or ``generic`` (``object.propertyChange`` with
    ``objectTypeId``), the two formats HubSpot sends.
    ``seed``/``seed_start``: identities seeded at start-up. Rate limits: 0 turns one off.
    ``association_page_size``: links per input in one v4 association batch-read answer; an input with more
    links gets ``paging.next.after`` (HubSpot pages each input on its own; tests set it small).
    ``portal_id``: the Hub ID (``GET /account-info/v3/details``); random unless given, so every fresh stand-in
    is a different portal, as a real second portal would be.
    """

    token: str = "pat-sandbox"
    app_secret: str = "sandbox-secret"
    webhook_url: str | None = None
    webhook_format: Literal["legacy", "generic"] = "legacy"
    seed: int = 0
    seed_start: int = 0
    app_limit_per_10s: int = 190
    search_limit_per_s: int = 5
    daily_limit: int = 500_000
    association_page_size: int = 500
    portal_id: int = field(default_factory=random_portal_id)
    app_id: int = 1_160_452
