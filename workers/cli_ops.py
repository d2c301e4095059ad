"""Operating commands: ``worker``, ``beat``, ``webhooks serve``, ``sync``, ``status``, ``dlq``.

Every command reads the config from ``--config`` / ``CRMSYNC_CONFIG`` (default ``crmsync.yaml``); a bad key stops
it at once, naming the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sync.engine import TAGS_DROPPED
from sync.errors import CrmsyncError
from sync.report import RunReport
from sync.state import POSTHOG, describe_state
from workers.config import load_config
from workers.dry_runs import remember as remember_dry_runs
from workers.eviction import check_no_eviction
from workers.logs import configure_logging, masked, remember_secrets, secrets_of
from workers.runtime import Runtime, set_runtime
from workers.status import status_data

console = Console(stderr=True)
out = Console()
webhooks_app = typer.Typer(help="The webhook receiver.")
dlq_app = typer.Typer(help="The dead-letter stream: records that could not be applied, with their reasons.")


def runtime_from_env() -> Runtime:
    """Load and validate the config (failing with the bad key named), and install it for this process."""
    try:
        config = load_config()
        runtime = Runtime(config)
        remember_secrets([*secrets_of(config), runtime.settings.personal_api_key.get_secret_value()])
    except CrmsyncError as exc:
        console.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from None
    set_runtime(runtime)
    return runtime


def start_checks(runtime: Runtime, *checks: Callable[[], object]) -> None:
    """Run start-up checks; the first ``CrmsyncError`` stops the command (status 2), naming the bad key."""
    try:
        for check in checks:
            check()
    except CrmsyncError as exc:
        console.print(f"[red]config error:[/] {exc}", soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(2) from None


def check_redis(runtime: Runtime) -> None:
    """Start-up check of the long-running commands and ``sync``: a Redis that may evict keys stops the command
    (``ConfigError`` naming ``maxmemory-policy``; ``workers/eviction.py``); one whose policy cannot be read warns."""
    warning = check_no_eviction(runtime.redis)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def _sources(runtime: Runtime, source: str) -> list[str]:
    if source == "all":
        return runtime.config.enabled_sources()
    if source not in runtime.config.sources:
        console.print(f"[red]unknown source {source!r}[/]; configured: {', '.join(runtime.config.sources) or 'none'}")
        raise typer.Exit(2)
    return [source]


def default_node_name() -> str:
    """``crmsync-<pid>@%h``: distinct for every worker process on one host (Celery expands ``%h``), so control
    replies (``inspect``, ``ping``, queue depth in ``status``) never mix two workers up."""
    return f"crmsync-{os.getpid()}@%h"


def worker_command(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "bulk,realtime",
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes (for bulk, with a realtime node).")] = 2,
    realtime_processes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes of a node of their own for the realtime queue (webhook refreshes), which bulk work "
            "cannot occupy; 0: one pool for every queue.",
        ),
    ] = 1,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", "-n", help="Celery node name (default crmsync-<pid>@<host>, unique per process)."),
    ] = None,
    checked: Annotated[bool, typer.Option("--checked", hidden=True)] = False,  # a realtime node: its parent checked
) -> None:
    """Run a Celery worker (scale out by running more of them, on any host, against the same Redis).

    Consuming ``bulk`` and ``realtime`` (the default), it is two Celery nodes: this one for ``bulk`` with
    ``--concurrency`` processes, and a child for ``realtime`` with ``--realtime-processes`` (``workers/lanes.py``)."""
    from workers.lanes import split_queues, start_realtime_node, stop_node

    runtime = runtime_from_env()
    configure_logging(loglevel)
    # Redis's eviction policy, every enabled connector's config, then the PostHog key's scopes and the mapping's
    # custom property definitions: each stops the worker here, named (a realtime node started by a worker skips
    # the PostHog probes: its parent made them)
    checks = [lambda: check_redis(runtime), runtime.check_sources]
    posthog_checks = [] if checked else [runtime.check_posthog_key, runtime.check_custom_properties]
    start_checks(runtime, *checks, *posthog_checks)
    from workers.celery_app import app

    own_queues, with_realtime_node = split_queues(queues, realtime_processes)
    node = hostname or default_node_name()
    child = start_realtime_node(realtime_processes, loglevel, hostname) if with_realtime_node else None
    try:
        app.worker_main(["worker", "-Q", own_queues, "-c", str(concurrency), "--loglevel", loglevel, "-n", node])
    finally:
        if child is not None:
            stop_node(child)


def beat_command(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run Celery beat: exactly one per deployment; it only enqueues, workers do the work."""
    runtime = runtime_from_env()
    configure_logging(loglevel)
    start_checks(runtime, lambda: check_redis(runtime), runtime.check_sources)
    from workers.celery_app import configure_for
    from workers.schedule import beat_schedule

    app = configure_for(runtime.config, beat_schedule(runtime.config))
    state = Path(tempfile.gettempdir()) / "crmsync-beat-schedule"
    app.Beat(schedule=str(state), loglevel=loglevel).run()


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8090,
) -> None:
    """Serve /webhooks/{hubspot,stripe}, /webhooks/salesforce/<token>, /healthz, /readyz, /metrics."""
    import uvicorn

    from workers.webhooks import check_public_url, create_webhook_app

    runtime = runtime_from_env()
    configure_logging()
    apps: list[Any] = []
    start_checks(
        runtime,
        lambda: check_redis(runtime),
        lambda: console.print(check_public_url(runtime.config.webhooks, host)),
        lambda: apps.append(create_webhook_app(runtime)),  # builds every enabled connector: bad config stops here
    )
    uvicorn.run(apps[0], host=host, port=port, log_level="warning", access_log=False)


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
    sources = _sources(runtime, source)
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


def status_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per source: last run, outcome, counts, cursor age, DLQ size, next scheduled run; dead letters (count, oldest,
    replay backoff); PostHog's request budget (used and left per window, blocked by a 429 until when)."""
    runtime = runtime_from_env()
    data = masked(status_data(runtime))  # reasons of runs and dead letters may quote a secret
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title="crmsync status", caption=f"PostHog state: {data['posthog_system'] or 'none yet'}")
    columns = ("source", "state of", "last run", "status", "seen", "updated", "failed", "cursor age", "dlq", "next run")
    for column in columns:
        table.add_column(column)
    for source, info in data["sources"].items():
        last = info["last_run"] or {}
        counts = last.get("counts", {})
        ages = [c["age_s"] for c in info["cursors"].values() if c["age_s"] is not None]
        nxt = info["next_run_in_s"]
        table.add_row(
            source,
            info["system"] or "-",
            last.get("finished_at") or "never",
            run_status(last) if last else "-",
            str(counts.get("seen", "-")),
            str(counts.get("updated", "-")),
            str(counts.get("failed", "-")),
            f"{max(ages):.0f}s" if ages else "-",
            str(info["dlq"]),
            f"{nxt:.0f}s" if nxt is not None else "-",
        )
    out.print(table)
    out.print(budget_line(data["posthog_budget"]))
    out.print(backlog_line(data["backlog"]))
    out.print(dead_letters_line(data["dead_letters"]))
    if data["redis_eviction"]:
        out.print(f"[yellow]Redis:[/] {data['redis_eviction']}", soft_wrap=True)
    if data["posthog_tags"]["dropped"]:
        out.print(f"[yellow]PostHog tags:[/] {TAGS_DROPPED}")


def backlog_line(backlog: dict[str, Any]) -> str:
    """``Backlog: 1,200 PostHog requests (2 plans, 0 webhook ids); done in about 15m at the current budget``."""
    requests = backlog["posthog_requests"]
    if not requests:
        return "Backlog: none"
    eta = backlog["eta_s"]
    when = (
        "PostHog unthrottled" if eta is None else f"done in about {timedelta(seconds=round(eta))} at the current budget"
    )
    return (
        f"Backlog: {requests:,} PostHog requests ({len(backlog['plans'])} plans being written, "
        f"{backlog['webhook_ids_waiting']} webhook ids waiting); {when}"
    )


def budget_line(budget: dict[str, Any]) -> str:
    """``PostHog budget: 480/60 used 12, left 468 · 4800/3600 used 12, left 4788 · not blocked``."""
    if budget.get("unthrottled"):
        return "PostHog budget: unthrottled (posthog.budget: [])"
    windows = " · ".join(f"{w['window']} used {w['used']}, left {w['left']}" for w in budget["windows"])
    blocked = "not blocked"
    if budget["blocked"]:
        until = datetime.fromtimestamp(budget["blocked_until"], tz=UTC).strftime("%H:%M:%S UTC")
        blocked = f"blocked by a 429 until {until} ({budget['blocked_for_s']:.0f}s more)"
    return f"PostHog budget: {windows} · {blocked} · waits {budget['waits']}, 429s {budget['blocks']}"


def dead_letters_line(dead: dict[str, Any]) -> str:
    """``Dead letters: 3; oldest 2m ago: hubspot deals 42 (name): required ...`` and replay backoffs."""
    oldest = dead["oldest"]
    if not oldest:
        return "Dead letters: 0"
    where = f"{oldest['source']} {oldest['object']} {oldest['id']}" + (
        f" ({oldest['field']})" if oldest["field"] else ""
    )
    line = f"Dead letters: {dead['total']}; oldest {oldest['age_s']:.0f}s ago: {where}: {oldest['reason']}"
    for source, state in dead["replay_backoff"].items():
        line += f"\n  replay of {source} backing off: next in {state['next_in_s']:.0f}s (attempt {state['attempts']})"
    return line


def reset_command(
    target: Annotated[str, typer.Argument(help="A configured source, posthog, or all (all is posthog: everything).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be dropped, drop nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Drop crmsync's state of one source (cursors, links, push fingerprints, watermarks, pending ids, parked
    records) or of PostHog (everything but run history, counters and live locks): the next run starts clean.

    Runs do this by themselves when a system's identity changes; ``reset`` is for doing it on purpose."""
    runtime = runtime_from_env()
    name = POSTHOG if target in (POSTHOG, "all") else _sources(runtime, target)[0]
    ledger = runtime.ledger
    recorded = ledger.systems([name])[0]
    counts = describe_state(ledger, name)
    total = sum(counts.values())
    if dry_run:
        shown = {"target": name, "system": recorded, "would_drop": counts}
        _print_state(name, recorded, counts, as_json, shown, "would drop")
        return
    if not yes and not typer.confirm(f"Drop {total} keys of {name} state (recorded for {recorded or 'unknown'})?"):
        console.print("nothing dropped")
        raise typer.Exit(1)
    dropped = ledger.drop_state(name)
    _print_state(name, recorded, dropped, as_json, {"target": name, "system": recorded, "dropped": dropped}, "dropped")


def _print_state(
    name: str, system: str | None, counts: dict[str, int], as_json: bool, data: dict[str, Any], verb: str
) -> None:
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"{name} state ({system or 'no system recorded'}): {verb}")
    table.add_column("keys")
    table.add_column("count", justify="right")
    for family, n in counts.items():
        table.add_row(family, str(n))
    table.add_row("total", str(sum(counts.values())))
    out.print(table)


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
    for name in _sources(runtime, source):
        for stream in runtime.streams(name):
            runs.append(masked(runtime.engine.replay_dead_letters(runtime.connector(name), stream).as_dict()))
    if as_json:
        out.print_json(json.dumps({"runs": runs}))
    else:
        out.print(runs_table(runs))


def config_option(
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default: $CRMSYNC_CONFIG or crmsync.yaml).")
    ] = None,
) -> None:
    """Global ``--config``: exported as ``CRMSYNC_CONFIG`` so worker processes read the same file."""
    if config is not None:
        os.environ["CRMSYNC_CONFIG"] = str(config)
    set_runtime(None)  # each command builds the runtime from this config
