"""Settings of one HubSpot stand-in (``create_app(config)``, ``crmsync sandbox run hubspot``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    portal_id: int = 62_515
    app_id: int = 1_160_452
