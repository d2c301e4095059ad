"""``crmsync status`` (per source, the budget, the backlog, dead letters) and ``crmsync reset`` (drop a system's
state, as ``sync.state`` and ``sync.keys`` define it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from sync.engine import TAGS_DROPPED
from sync.state import POSTHOG, describe_state
from workers.cli_ops import chosen_sources, console, out, runtime_from_env
from workers.cli_sync import run_status
from workers.logs import masked
from workers.status import status_data


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
    name = POSTHOG if target in (POSTHOG, "all") else chosen_sources(runtime, target)[0]
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
