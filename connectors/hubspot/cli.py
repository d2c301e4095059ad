"""``crmsync setup hubspot``: create the custom properties crmsync writes (and the company external-id property).

Deal properties come from the ``mappings.hubspot.deals`` section of the config file (the account id field, the
other systems' id fields, the outbound fields; without ``--config``, the connector's defaults
``posthog_account_id`` and ``posthog_csm_email``): the properties push-back writes. Creating a property that
exists is a no-op, so the command can run any number of times. ``--dry-run`` only lists what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import load_hubspot_config
from connectors.hubspot.properties import ensure_properties, push_properties
from sync.connector import StreamFields
from sync.errors import CrmsyncError
from sync.mapping import load_mapping_file

console = Console()


def setup_command(
    token: Annotated[
        str,
        typer.Option("--token", envvar="HUBSPOT_ACCESS_TOKEN", help="Private-app access token.", show_default=False),
    ],
    host: Annotated[
        str, typer.Option("--host", envvar="HUBSPOT_HOST", help="API base URL.")
    ] = "https://api.hubapi.com",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="crmsync.yaml whose mappings.hubspot.deals names the fields to create."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List missing properties, create nothing.")] = False,
) -> None:
    """Create the HubSpot properties crmsync writes back (deal) and reads (company external id)."""
    try:
        settings = load_hubspot_config({"access_token": SecretStr(token), "host": host})
        deals = load_mapping_file(config).object("hubspot", "deals") if config is not None else None
        fields = StreamFields.of(deals, "mappings.hubspot.deals") if deals is not None else None
        deal_names = list(push_properties(settings, fields))
        wanted = {
            "deals": (deal_names, settings.property_group),
            "companies": ([settings.external_id_property], "companyinformation"),
        }
        client = HubSpotClient(settings)
        table = Table(title="HubSpot properties for crmsync")
        for column in ("object", "property", "status"):
            table.add_column(column)
        created_total = 0
        for object_type, (names, group) in wanted.items():
            if dry_run:
                existing = client.property_names(object_type)
                for name in names:
                    table.add_row(object_type, name, "present" if name in existing else "[yellow]missing[/]")
                continue
            created, _ = ensure_properties(client, object_type, names, group)
            created_total += len(created)
            for name in names:
                table.add_row(object_type, name, "[green]created[/]" if name in created else "present")
    except CrmsyncError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(table)
    if dry_run:
        console.print("Dry run: nothing was created.")
    else:
        console.print(f"{created_total} created; {client.stats.requests} requests.")
