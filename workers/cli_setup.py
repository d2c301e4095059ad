"""``crmsync setup posthog``: create the custom account property definitions the mapping declares.

Get-or-create by name (``sync/posthog/custom_properties.py``: one list request, one POST per missing definition);
a definition of the same name and another type is an error naming it, never changed. ``--dry-run`` lists what
would be created. Running it again is a no-op.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from sync.errors import CrmsyncError
from sync.posthog.client import PostHogClient
from sync.posthog.custom_properties import setup_definitions
from workers.cli_ops import runtime_from_env

console = Console()


def setup_posthog(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be created, create nothing.")] = False,
) -> None:
    """Create the custom account properties the mapping's custom.* fields name (PostHog's current accounts API)."""
    runtime = runtime_from_env()
    declared = runtime.config.mapping.custom_definitions()
    if not declared:
        console.print("The mapping declares no custom.* fields: nothing to set up.")
        return
    try:
        with PostHogClient(runtime.settings) as client:
            lines = setup_definitions(client, declared, dry_run=dry_run)
            requests = client.stats.requests
    except CrmsyncError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for line in lines:
        console.print(line)
    console.print(f"{'Dry run: nothing was created. ' if dry_run else ''}{requests} requests.")
