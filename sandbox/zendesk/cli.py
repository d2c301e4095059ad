"""``crmsync sandbox run zendesk``: the Zendesk stand-in in the foreground (127.0.0.1 unless told)."""

from __future__ import annotations

import typer
import uvicorn

from sandbox.zendesk.app import create_app
from sandbox.zendesk.config import EMAIL, TOKEN, WEBHOOK_SECRET, ZendeskSandboxConfig


def run_zendesk(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1 unless told; 0.0.0.0 in a container)."),
    port: int = typer.Option(8050, help="Port to listen on."),
    seed: int = typer.Option(0, help="Organizations (identities) to seed at start."),
    seed_start: int = typer.Option(0, help="First identity index to seed."),
    email: str = typer.Option(EMAIL, help="The API user's email address."),
    token: str = typer.Option(TOKEN, help="The API token (basic auth as {email}/token)."),
    webhook_url: str | None = typer.Option(None, help="Where to POST signed organization events."),
    webhook_secret: str = typer.Option(WEBHOOK_SECRET, help="The webhook's signing secret."),
    requests_per_minute: int = typer.Option(700, help="The account's requests per minute (0 = unlimited)."),
    export_requests_per_minute: int = typer.Option(10, help="Incremental export requests per minute (0 = unlimited)."),
    field: list[str] = typer.Option([], help="An organization field key to create at start (repeat)."),
) -> None:
    """Run the Zendesk Support stand-in (organizations, fields, bulk jobs, incremental export) until interrupted."""
    config = ZendeskSandboxConfig(
        email=email,
        token=token,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        requests_per_minute=requests_per_minute,
        export_requests_per_minute=export_requests_per_minute,
        seed=seed,
        seed_start=seed_start,
        fields=tuple(field),
    )
    app = create_app(config)
    url = f"http://{host}:{port}"
    typer.echo(f"Zendesk stand-in on {url}")
    typer.echo(f"  auth:        basic {email}/token : {token}")
    typer.echo(f"  seeded:      {seed} organizations from identity {seed_start}; fields {', '.join(field) or 'none'}")
    typer.echo(f"  webhooks:    {webhook_url or 'off'} (signing secret {webhook_secret!r})")
    typer.echo(
        f"  rate limits: {requests_per_minute or 'no limit'}/min, export {export_requests_per_minute or 'no limit'}/min"
    )
    typer.echo(f"  admin:       {url}/_sandbox/health, /_sandbox/stats, /_sandbox/seed, ...")
    uvicorn.run(app, host=host, port=port, log_level="warning")
