"""``crmsync setup zendesk``: create the custom organization fields crmsync writes (``posthog_account_id``, ...).

The fields come from ``mappings.zendesk.organizations`` of the config file (``organization_fields.<key>`` paths
push-back writes), or ``posthog_account_id`` without ``--config``. A field that exists is left alone, so the command
can run any number of times; ``--dry-run`` only lists what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from connectors.zendesk.client import ZendeskClient
from connectors.zendesk.config import load_zendesk_config
from connectors.zendesk.fields import ensure_fields, existing_keys, wanted_keys
from sync.errors import CrmsyncError
from sync.mapping import load_mapping_file

console = Console()


def setup_command(
    url: Annotated[str, typer.Option("--url", envvar="ZENDESK_URL", help="https://<subdomain>.zendesk.com")],
    email: Annotated[str, typer.Option("--email", envvar="ZENDESK_EMAIL", help="The API user's email address.")],
    token: Annotated[
        str, typer.Option("--token", envvar="ZENDESK_API_TOKEN", help="An API token.", show_default=False)
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="crmsync.yaml whose mappings.zendesk.organizations names the fields."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List missing fields, create nothing.")] = False,
) -> None:
    """Create the Zendesk organization fields crmsync writes back."""
    try:
        settings = load_zendesk_config({"url": url, "email": email, "api_token": SecretStr(token)})
        mapping = load_mapping_file(config).object("zendesk", "organizations") if config is not None else None
        keys = wanted_keys(mapping)
        client = ZendeskClient(settings)
        try:
            if dry_run:
                present = existing_keys(client)
                created: list[str] = []
            else:
                created = ensure_fields(client, keys)
                present = set(keys) - set(created)
        finally:
            client.close()
    except CrmsyncError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title="Zendesk organization fields for crmsync")
    for column in ("field", "status"):
        table.add_column(column)
    for key in keys:
        status = "[green]created[/]" if key in created else "present" if key in present else "[yellow]missing[/]"
        table.add_row(key, status)
    console.print(table)
    if dry_run:
        console.print("Dry run: nothing was created.")
    else:
        console.print(f"{len(created)} created; {client.stats.requests} requests.")
