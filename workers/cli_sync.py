"""``crmsync sync``: run the syncs in this process or on the workers, follow them, and show their reports."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sync.errors import CrmsyncError
from sync.report import RunReport
from workers.cli_ops import check_redis, chosen_sources, console, out, runtime_from_env, start_checks
from workers.dry_runs import remember as remember_dry_runs
from workers.logs import configure_logging, masked
from workers.runtime import Runtime


def run_inline(runtime: Runtime, sources: list[str], full: bool, dry_run: bool, quiet: bool) -> list[RunReport]:
    """Run the syncs in this process, with a progress bar per stream."""
    reports: list[RunReport] = []
    mode = "full" if full else "incremental"
    if len(sources) > 1 and not dry_run:  # plan before write: every account written once, whatever its sources
        status = console.status("reading every source, then writing each account once", spinner="dots")
        with contextlib.nullcontext() if quiet else status:
            connectors = {s: runtime.connector(s) for s in sources}
            return runtime.engine.run_planned(connectors, {s: runtime.streams(s) for s in sources}, mode)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    ) as progress:
        for source in sources:
            connector = runtime.connector(source)
            for stream in runtime.streams(source):
                task = progress.add_task(f"{source}/{stream}", total=None, counts="")

                def show(report: RunReport, task: Any = task) -> None:
                    c = report.counts
                    summary = f"seen {c['seen']} · created {c['created']} · updated {c['updated']}"
                    progress.update(task, counts=summary)

                report = runtime.engine.run(connector, stream, mode, dry_run, show)
                show(report)
                progress.update(task, total=1, completed=1)
                reports.append(report)
    remember_dry_runs(runtime.redis, runtime.ledger.ns, reports)  # the status page shows the last plan
    return reports


def run_enqueued(runtime: Runtime, sources: list[str], full: bool, dry_run: bool, quiet: bool) -> list[dict[str, Any]]:
    """Enqueue one ``crmsync.sync_source`` per source and follow the workers' progress until done."""
    from workers.celery_app import configure_for
    from workers.tasks import sync_all, sync_source

    configure_for(runtime.config)
    mode = "full" if full else "incremental"
    if len(sources) > 1 and not dry_run:
        return _follow_plan(sync_all.apply_async((), {"mode": mode}, queue="bulk"), quiet)
    results = {s: sync_source.apply_async((s,), {"mode": mode, "dry_run": dry_run}, queue="bulk") for s in sources}
    runs: list[dict[str, Any]] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        tasks = {s: progress.add_task(f"{s} (queued)", total=None, info="") for s in sources}
        pending = dict(results)
        while pending:
            for source, result in list(pending.items()):
                state = result.state
                info = result.info if isinstance(result.info, dict) else {}
                counts = info.get("counts") or {}
                label = f"{source} ({state.lower()})"
                detail = f"seen {counts.get('seen', 0)} · updated {counts.get('updated', 0)}" if counts else ""
                progress.update(tasks[source], description=label, info=detail)
                if result.ready():
                    progress.update(tasks[source], total=1, completed=1)
                    value = result.get(propagate=False)
                    if isinstance(value, dict):
                        runs.extend(value.get("runs", []))
                    else:
                        runs.append({"source": source, "status": "failed", "reason": str(value)})
                    del pending[source]
            time.sleep(0.2)
    return runs


def _follow_plan(staging: Any, quiet: bool) -> list[dict[str, Any]]:
    """Follow a ``crmsync.sync_all``: its staging, then its write chunks, with one progress bar."""
    from celery.result import AsyncResult

    from workers.celery_app import app

    runs: list[dict[str, Any]] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        bar = progress.add_task("reading every source (plan)", total=None)
        while not staging.ready():
            time.sleep(0.2)
        value = staging.get(propagate=False)
        if not isinstance(value, dict):
            return [{"source": "all", "status": "failed", "reason": str(value)}]
        runs.extend(value.get("runs", []))
        chunks = [AsyncResult(i, app=app) for i in value.get("chunks", [])]
        progress.update(bar, description="writing each account once", total=len(chunks), completed=0)
        pending = list(chunks)
        while pending:
            for result in [r for r in pending if r.ready()]:
                pending.remove(result)
                done = result.get(propagate=False)
                if isinstance(done, dict):
                    runs.extend(done.get("runs", []))
                else:
                    runs.append({"source": "all", "stream": "plan", "status": "failed", "reason": str(done)})
            progress.update(bar, completed=len(chunks) - len(pending))
            time.sleep(0.2)
    return runs


def sync_command(
    source: Annotated[str, typer.Argument(help="hubspot, stripe, salesforce or all")],
    full: Annotated[bool, typer.Option("--full", help="Read everything, not only changes since the cursor.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide everything, write nothing.")] = False,
    inline: Annotated[bool, typer.Option("--inline", help="Run in this process instead of on the workers.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
) -> None:
    """Sync one source (or all) now: enqueued on the workers and followed, or ``--inline``."""
    runtime = runtime_from_env()
    configure_logging("WARNING")
    start_checks(runtime, lambda: check_redis(runtime))
    sources = chosen_sources(runtime, source)
    try:
        if inline:
            runs = [r.as_dict() for r in run_inline(runtime, sources, full, dry_run, as_json)]
        else:
            runs = run_enqueued(runtime, sources, full, dry_run, as_json)
    except CrmsyncError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    runs = masked(runs)  # a reason may quote a secret; every output is masked
    if as_json:
        out.print_json(json.dumps({"runs": runs}))
    else:
        out.print(runs_table(runs))
        if dry_run:
            out.print(plan_table(runs))
    if any(r.get("status") == "failed" for r in runs):
        raise typer.Exit(1)
    if any(r.get("status") == "partial" for r in runs):
        raise typer.Exit(PARTIAL_EXIT)


PARTIAL_EXIT = 23
"""``crmsync sync``'s exit status when every run finished but some left records unapplied (``partial``: parked for
replay), as rsync's 23 for a partial transfer, so a cron job can alert on it. 1: a run failed; 2: bad config."""


_MAIN = (
    ("seen", "seen"),
    ("created", "new"),
    ("updated", "upd"),
    ("unchanged", "same"),
    ("pushed", "push"),
    ("failed", "fail"),
)
_OTHER = ("unlinked", "conflicts", "superseded")
_STATUS = {
    "succeeded": "[green]ok[/]",
    "partial": "[yellow]partial[/]",
    "failed": "[red]failed[/]",
    "skipped": "[yellow]skipped[/]",
    "throttled": "[yellow]throttled[/]",
}


def run_status(run: dict[str, Any]) -> str:
    """A run's status for a terminal: ``partial`` says how many records failed (``partial, 268 failed``)."""
    status = str(run.get("status", ""))
    shown = _STATUS.get(status, status)
    if status == "partial":
        shown = f"[yellow]partial, {run.get('counts', {}).get('failed', 0)} failed[/]"
    return shown


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """Run reports as a table that fits an 80-column terminal (``--json`` has every field)."""
    table = Table(
        title="Runs",
        caption="new: accounts created · upd/same: records applied/skipped unchanged · push: CRM records written",
    )
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for _, label in _MAIN:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("also")
    for run in runs:
        counts = run.get("counts", {})
        also = ", ".join(f"{k} {counts[k]}" for k in _OTHER if counts.get(k))
        table.add_row(
            f"{run.get('source', '')}/{run.get('stream', '')} {run.get('mode', '')}",
            run_status(run),
            *(str(counts.get(k, 0)) for k, _ in _MAIN),
            also,
        )
    return table


PLAN_ROWS = 200


def _cell(value: Any) -> str:
    """A plan value as one short cell (JSON for structures, ``-`` for none)."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def plan_table(runs: list[dict[str, Any]], limit: int = PLAN_ROWS) -> Table:
    """What the dry runs would change: one row per (account, field), the first ``limit`` (``--json`` has all)."""
    changes = [c for run in runs for c in run.get("plan", [])]
    caption = f"first {limit} of {len(changes)} changes; --json has all" if len(changes) > limit else None
    table = Table(title=f"Plan: {len(changes)} field changes, nothing written", caption=caption)
    for column in ("account", "field", "before", "after", "source"):
        table.add_column(column, overflow="fold")
    for change in changes[:limit]:
        table.add_row(
            str(change.get("account", "")),
            str(change.get("field", "")),
            _cell(change.get("before")),
            _cell(change.get("after")),
            str(change.get("source", "")),
        )
    return table
