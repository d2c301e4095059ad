"""``crmsync metrics apply FILE``: usage metrics as code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sync.errors import CrmsyncError
from sync.posthog.client import client_from_env
from sync.usage_metrics import Action, MetricsPlan, apply_plan, build_plan, load_metrics_file

metrics_app = typer.Typer(help="Manage PostHog group type usage metrics as code.")
console = Console()

_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.UNCHANGED: "dim",
    Action.KEEP: "dim",
}


def plan_table(plan: MetricsPlan) -> Table:
    table = Table(title=f"Usage metrics, group type {plan.group_type_index}")
    table.add_column("action")
    table.add_column("metric")
    table.add_column("changes")
    for item in plan.items:
        changes = "; ".join(f"{k}: {json.dumps(a)} → {json.dumps(b)}" for k, (a, b) in item.changes.items())
        style = _STYLE[item.action]
        table.add_row(f"[{style}]{item.action.value}[/]", item.name, changes)
    return table


@metrics_app.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="YAML file listing the metrics.", exists=True, dir_okay=False)],
    group_type_index: Annotated[
        int | None, typer.Option("--group-type-index", min=0, help="Group type (overrides the file).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Delete metrics the file does not list.")] = False,
) -> None:
    """Make PostHog's usage metrics for one group type match FILE (uses POSTHOG_* settings)."""
    try:
        metrics = load_metrics_file(file)
        gti = group_type_index if group_type_index is not None else (metrics.group_type_index or 0)
        with client_from_env() as client:
            plan = build_plan(client, metrics, gti, prune)
            console.print(plan_table(plan))
            if not plan.has_changes:
                console.print("Nothing to change: PostHog already matches the file.")
                return
            if dry_run:
                console.print("Dry run: nothing was changed.")
                return
            writes = apply_plan(client, plan)
    except CrmsyncError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"Applied: {plan.count(Action.CREATE)} created, {plan.count(Action.UPDATE)} updated, "
        f"{plan.count(Action.DELETE)} deleted ({writes} requests)."
    )
