"""``crmsync sandbox run hubspot``: serve the HubSpot stand-in in the foreground (127.0.0.1 unless told)."""

from __future__ import annotations

from typing import cast

import typer
import uvicorn

from sandbox.hubspot.app import create_app
from sandbox.hubspot.config import HubSpotSandboxConfig
from sandbox.hubspot.webhooks import WebhookFormat


def webhook_format_option(value: str) -> str:
    """Check ``--webhook-format`` (a ``str`` option: typer 0.12, the oldest pinned, has no ``Literal`` options)."""
    if value not in ("legacy", "generic"):
        raise typer.BadParameter("legacy or generic")
    return value


def run_hubspot(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1 unless told; 0.0.0.0 in a container)."),
    port: int = typer.Option(8020, help="Port to listen on."),
    seed: int = typer.Option(0, help="Seed this many identities (companies with their deals) at start-up."),
    seed_start: int = typer.Option(0, help="First identity index to seed."),
    token: str = typer.Option("pat-sandbox", help="Private-app token accepted as 'Authorization: Bearer'."),
    webhook_url: str | None = typer.Option(None, help="Where to POST signed v3 webhooks (none if unset)."),
    app_secret: str = typer.Option("sandbox-secret", help="App secret that signs webhooks."),
    webhook_format: str = typer.Option(
        "legacy",
        callback=webhook_format_option,
        help="legacy (deal.propertyChange) or generic (object.propertyChange + objectTypeId).",
    ),
    app_limit: int = typer.Option(190, help="Requests per rolling 10 s (0 = unlimited)."),
    search_limit: int = typer.Option(5, help="Search requests per second (0 = unlimited)."),
) -> None:
    """Run the HubSpot stand-in (CRM v3/v4 API for hubspot-api-client 12) until interrupted."""
    config = HubSpotSandboxConfig(
        token=token,
        app_secret=app_secret,
        webhook_url=webhook_url,
        webhook_format=cast(WebhookFormat, webhook_format),
        seed=seed,
        seed_start=seed_start,
        app_limit_per_10s=app_limit,
        search_limit_per_s=search_limit,
    )
    app = create_app(config)
    url = f"http://{host}:{port}"
    typer.echo(f"HubSpot stand-in on {url}")
    typer.echo(f"  token:       {token}   (Authorization: Bearer {token})")
    typer.echo(f"  SDK:         hubspot.HubSpot(access_token={token!r}, host={url!r})")
    typer.echo(f"  seeded:      {seed} companies from identity {seed_start}, with their deals; 10 owners")
    typer.echo(f"  webhooks:    {webhook_url or 'off'} ({webhook_format} format, app secret {app_secret!r})")
    typer.echo(f"  rate limits: {app_limit or 'no limit'}/10 s, search {search_limit or 'no limit'}/s")
    typer.echo(f"  admin:       {url}/_sandbox/health, /_sandbox/stats, /_sandbox/seed, ...")
    uvicorn.run(app, host=host, port=port, log_level="info")
