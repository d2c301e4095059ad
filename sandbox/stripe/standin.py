"""The Stripe stand-in as the stack sees it (``sandbox.standin.StandIn``): identities ``[2N/3, 2N/3 + N)``, a customer
per company with a subscription, signed event webhooks to ``/webhooks/stripe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from sandbox.standin import StandIn, webhook_url
from sandbox.stripe.cli import run_stripe

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack
    from workers.serving import ServerThread


def seed_range(seed: int) -> tuple[int, int]:
    return 2 * seed // 3, seed


def customer_id(identity: int) -> str:
    """The stand-in's seeded customer id for an identity (``sandbox/stripe/seed.py``)."""
    return f"cus_S{identity:013d}"


def server(stack: SandboxStack) -> ServerThread:
    from sandbox.stripe.app import create_app
    from sandbox.stripe.config import StripeSandboxConfig
    from workers.serving import ServerThread

    config = StripeSandboxConfig(
        api_key=stack.credentials.stripe_key,
        webhook_url=webhook_url(stack, "/webhooks/stripe"),
        webhook_secret=stack.credentials.stripe_webhook_secret,
    )
    return ServerThread(create_app(config))


def seed(stack: SandboxStack, http: httpx.Client) -> None:
    start, count = seed_range(stack.seed)
    http.post(f"{stack.url('stripe')}/_sandbox/seed", json={"count": count, "start": start}).raise_for_status()


def source_block(stack: SandboxStack) -> dict[str, Any]:
    creds = stack.credentials
    return {
        "stand_in": True,
        "schedule": {"every_s": 60},
        "config": {
            "requests_per_s": 100,  # Stripe's live-mode rate; the stand-in takes it
            "burst": 100,
            "api_key": creds.stripe_key,
            "api_base": stack.url("stripe"),
            "webhook_secrets": [creds.stripe_webhook_secret],
        },
    }


def endpoints(stack: SandboxStack) -> dict[str, Any]:
    return {"url": stack.url("stripe"), "api_key": stack.credentials.stripe_key}


def wire_webhooks(stack: SandboxStack, http: httpx.Client) -> None:
    http.put(f"{stack.url('stripe')}/_sandbox/webhooks", json={"url": f"{stack.webhooks_url}/webhooks/stripe"})


def demo_edit(stack: SandboxStack, http: httpx.Client, seed: int) -> str:
    """Rename a customer known to Stripe alone (identity ``4 seed / 3 + 5``)."""
    customer = customer_id(4 * seed // 3 + 5)
    http.post(
        f"{stack.url('stripe')}/_sandbox/customers/{customer}", json={"name": "Renamed in Stripe"}
    ).raise_for_status()
    return f"Stripe customer {customer}: name"


STANDIN = StandIn(
    name="stripe",
    seed_range=seed_range,
    server=server,
    source_block=source_block,
    endpoints=endpoints,
    wire_webhooks=wire_webhooks,
    demo_edit=demo_edit,
    run=run_stripe,
    seed=seed,
)
