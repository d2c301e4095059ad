"""``crmsync sandbox run stripe``: the Stripe stand-in in the foreground (127.0.0.1 unless told)."""

from __future__ import annotations

import typer
import uvicorn
from rich.console import Console

from sandbox.stripe.app import create_app
from sandbox.stripe.config import StripeSandboxConfig


def run_stripe(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1 unless told; 0.0.0.0 in a container)."),
    port: int = typer.Option(8030, help="Port to listen on."),
    seed: int = typer.Option(0, help="Customers (each with a subscription) to seed at start."),
    api_key: str = typer.Option("sk_test_sandbox", help="The secret key the stand-in accepts."),
    webhook_url: str | None = typer.Option(None, help="Where to POST signed event webhooks."),
    webhook_secret: str = typer.Option("whsec_sandbox", help="Signing secret for Stripe-Signature."),
) -> None:
    """Run the Stripe stand-in until interrupted."""
    config = StripeSandboxConfig(api_key=api_key, webhook_url=webhook_url, webhook_secret=webhook_secret, seed=seed)
    app = create_app(config)
    url = f"http://{host}:{port}"
    console = Console()
    console.print(f"[bold]Stripe stand-in[/bold] on {url}  ({seed} customers seeded)")
    console.print(f"  secret key:     {api_key}")
    console.print(
        f"  SDK:            stripe.StripeClient({api_key!r}, base_addresses={{'api': {url!r}}}, max_network_retries=0)"
    )
    console.print(f"  webhooks:       {webhook_url or '(none; PUT /_sandbox/webhooks to set)'}")
    console.print(f"  webhook secret: {webhook_secret}")
    console.print(f"  admin:          {url}/_sandbox/stats, POST {url}/_sandbox/seed")
    uvicorn.run(app, host=host, port=port, log_level="warning")
