"""The HubSpot stand-in as the stack sees it (``sandbox.standin.StandIn``): identities ``[N/3, N/3 + N)``, a deal per
company (some companies with two), signed v3 webhooks to ``/webhooks/hubspot``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from sandbox.hubspot.cli import run_hubspot
from sandbox.standin import StandIn, webhook_url

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack
    from workers.serving import ServerThread

DEAL_BASE = 9_000_000_000  # sandbox/hubspot/seeding.py: identity i → deal 9_000_000_000 + 2i
OWNER_BASE = 170_000_000


def seed_range(seed: int) -> tuple[int, int]:
    return seed // 3, seed


def server(stack: SandboxStack) -> ServerThread:
    from sandbox.hubspot.app import create_app
    from sandbox.hubspot.config import HubSpotSandboxConfig
    from workers.serving import ServerThread

    start, count = seed_range(stack.seed)
    config = HubSpotSandboxConfig(
        token=stack.credentials.hubspot_token,
        app_secret=stack.credentials.hubspot_app_secret,
        webhook_url=webhook_url(stack, "/webhooks/hubspot"),
        webhook_format=stack.hubspot_webhook_format,
        seed=count,
        seed_start=start,
    )
    return ServerThread(create_app(config))


def source_block(stack: SandboxStack) -> dict[str, Any]:
    creds = stack.credentials
    return {
        "stand_in": True,
        "schedule": {"every_s": 60},
        "config": {
            "access_token": creds.hubspot_token,
            "host": stack.url("hubspot"),
            "client_secret": creds.hubspot_app_secret,
        },
    }


def endpoints(stack: SandboxStack) -> dict[str, Any]:
    return {"url": stack.url("hubspot"), "token": stack.credentials.hubspot_token}


def wire_webhooks(stack: SandboxStack, http: httpx.Client) -> None:
    http.put(f"{stack.url('hubspot')}/_sandbox/webhook", json={"url": f"{stack.webhooks_url}/webhooks/hubspot"})


def demo_edit(stack: SandboxStack, http: httpx.Client, seed: int) -> str:
    """Move a deal known to HubSpot alone (identity ``seed + 10``) to the next owner (its account executive)."""
    deal_id = str(DEAL_BASE + 2 * (seed + 10))
    deal = http.get(
        f"{stack.url('hubspot')}/crm/v3/objects/deals/{deal_id}",
        params={"properties": "hubspot_owner_id"},
        headers={"Authorization": f"Bearer {stack.credentials.hubspot_token}"},
    ).json()
    owner = int(deal["properties"].get("hubspot_owner_id") or OWNER_BASE)
    new_owner = OWNER_BASE + (owner - OWNER_BASE + 1) % 10
    http.patch(
        f"{stack.url('hubspot')}/_sandbox/objects/deals/{deal_id}",
        json={"properties": {"hubspot_owner_id": str(new_owner)}},
    ).raise_for_status()
    return f"HubSpot deal {deal_id}: owner (the account executive)"


STANDIN = StandIn(
    name="hubspot",
    seed_range=seed_range,
    server=server,
    source_block=source_block,
    endpoints=endpoints,
    wire_webhooks=wire_webhooks,
    demo_edit=demo_edit,
    run=run_hubspot,
)
