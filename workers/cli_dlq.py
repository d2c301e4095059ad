"""``crmsync dlq``: list the parked records (the dead-letter stream) and replay them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from workers.cli_ops import chosen_sources, out, runtime_from_env
from workers.cli_sync import runs_table
from workers.logs import masked

dlq_app = typer.Typer(help="The dead-letter stream: records that could not be applied, with their reasons.")


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Show parked records with source, id, field and reason."""
    runtime = runtime_from_env()
    entries = masked([{"entry": eid, **e} for eid, e in runtime.ledger.dead_letters(limit)])
    if as_json:
        out.print_json(json.dumps({"entries": entries, "total": runtime.ledger.dlq_size()}))
        return
    table = Table(title=f"Dead letters ({runtime.ledger.dlq_size()})")
    for column in ("entry", "source", "object", "id", "field", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(*(str(e.get(k) or "") for k in ("entry", "source", "object", "id", "field", "reason")))
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    source: Annotated[str, typer.Argument(help="A source, or all")] = "all",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fetch the parked records' current state and apply it (in this process); what still fails stays parked."""
    runtime = runtime_from_env()
    runs = []
    for name in chosen_sources(runtime, source):
        for stream in runtime.streams(name):
            runs.append(masked(runtime.engine.replay_dead_letters(runtime.connector(name), stream).as_dict()))
    if as_json:
        out.print_json(json.dumps({"runs": runs}))
    else:
        out.print(runs_table(runs))
