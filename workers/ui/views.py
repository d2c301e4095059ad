"""What each page shows, read from Redis only: the status data, the runs and dead-letter streams, the last dry runs.

The per-source status comes from one function, ``workers.status.status_data`` (what ``crmsync status --json``
prints), so whatever it gains shows on the page without more work. Everything here is plain data (dicts and lists)
passed through ``masked`` before a template sees it: a known secret (``workers.logs.remember_secrets``) that slipped
into a report or a reason is replaced by ``****``, never rendered.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from typing import Any

from sync.ledger import RecordKey
from workers import dry_runs
from workers.logs import masked
from workers.runtime import Runtime
from workers.status import status_data
from workers.ui.charts import budget_charts, run_charts
from workers.ui.links import RecordLinks

RUN_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
"""A Redis stream id: what addresses one run (``/ui/runs/<id>``)."""

RUNS_READ = 300
"""Newest run reports read for the main page (the stream keeps the last 1000)."""

RUNS_SHOWN = 5
"""Runs shown per (source, stream) on the main page."""


def status(runtime: Runtime) -> dict[str, Any]:
    """``crmsync status --json``, secrets masked."""
    return dict(masked(status_data(runtime)))


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 2)


def run_row(run_id: str, report: dict[str, Any]) -> dict[str, Any]:
    """A run report plus what the page adds: its id, duration, and how many errors and review items it has."""
    return {
        **report,
        "id": run_id,
        "duration_s": _seconds_between(report.get("started_at"), report.get("finished_at")),
        "error_count": len(report.get("errors") or []),
        "review_count": len(report.get("review") or []),
    }


def recent_runs(runtime: Runtime, per_stream: int = RUNS_SHOWN) -> dict[str, list[dict[str, Any]]]:
    """The newest ``per_stream`` runs of each (source, stream), keyed ``"source/stream"``, newest first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run_id, report in runtime.ledger.run_entries(RUNS_READ):
        rows = grouped.setdefault(f"{report.get('source', '?')}/{report.get('stream', '?')}", [])
        if len(rows) < per_stream:
            rows.append(run_row(run_id, report))
    return dict(masked(dict(sorted(grouped.items()))))


def _object_of(runtime: Runtime, item: dict[str, Any], run: dict[str, Any]) -> str | None:
    """The CRM object a reported record is of: its own ``object``, else the run's stream when the run is of the
    record's source, else the source's only mapped stream (a planned sync's write phase reports every source's
    records under ``all/plan``)."""
    source = str(item.get("source"))
    if item.get("object"):
        return str(item["object"])
    if run.get("source") == source:
        return str(run.get("stream"))
    streams = list(runtime.config.mapping.mappings.get(source, {}))
    return streams[0] if len(streams) == 1 else None


def run_detail(runtime: Runtime, run_id: str, links: RecordLinks) -> dict[str, Any] | None:
    """One run with its errors and review items, each linked to PostHog and its CRM where a URL can be built.

    The account a record belongs to comes from the ledger (``rec:<source>:<object>:<id>``, one ``MGET``)."""
    if not RUN_ID.match(run_id):
        return None
    report = runtime.ledger.run(run_id)
    if report is None:
        return None
    run = run_row(run_id, report)
    items = [*run.get("errors", []), *run.get("review", [])]
    objects = [_object_of(runtime, item, run) for item in items]
    keyed = [
        (n, RecordKey(str(item.get("source")), obj, str(item["id"])))
        for n, (item, obj) in enumerate(zip(items, objects, strict=True))
        if obj and item.get("id")
    ]
    entries = runtime.ledger.get_records([key for _, key in keyed])
    accounts = {n: entry.account_id for (n, _), entry in zip(keyed, entries, strict=True) if entry}
    for n, (item, obj) in enumerate(zip(items, objects, strict=True)):
        item["account"] = accounts.get(n)
        item["posthog_url"] = links.posthog(accounts.get(n))
        item["crm_url"] = links.crm(str(item.get("source")), obj, item.get("id"))
    for change in run.get("plan", []):
        change["posthog_url"] = links.posthog(str(change.get("account")))
    return dict(masked(run))


def dead_letters(runtime: Runtime, links: RecordLinks, limit: int = 1000) -> dict[str, Any]:
    """The oldest ``limit`` parked records with links, how many each source has, and the stream's length."""
    entries = []
    for entry_id, entry in runtime.ledger.dead_letters(limit):
        source, obj = str(entry.get("source", "")), str(entry.get("object", ""))
        entries.append({**entry, "entry": entry_id, "crm_url": links.crm(source, obj, entry.get("id"))})
    by_source = Counter(str(e.get("source", "")) for e in entries)
    return dict(masked({"entries": entries, "by_source": dict(by_source), "total": runtime.ledger.dlq_size()}))


def latest_dry_runs(runtime: Runtime, links: RecordLinks) -> list[dict[str, Any]]:
    """The last stored dry run of each configured (source, stream), plan rows linked to their PostHog account."""
    pairs = [(s, stream) for s in runtime.config.sources for stream in runtime.config.mapping.mappings.get(s, {})]
    found = dry_runs.latest(runtime.redis, runtime.ledger.ns, pairs)
    shown = []
    for pair in pairs:
        if pair in found:
            report = found[pair]
            for change in report.get("plan", []):
                change["posthog_url"] = links.posthog(str(change.get("account")))
            shown.append(run_row("", report))
    return list(masked(shown))


def charts(runtime: Runtime, data: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The main page's charts: PostHog's budget over the last hour and day (from the budget's per-minute history;
    none without a budget), and each source's newest runs (the runs stream). One read of each."""
    now = time.time() if now is None else now
    budget = runtime.posthog_budget
    history = budget.history(86_400, now) if budget is not None else {}
    return {
        "budget": budget_charts(history, data.get("posthog_budget") or {}, now),
        "budget_requests_day": sum(m.requests for m in history.values()),
        "runs": run_charts(runtime.ledger.run_entries(RUNS_READ)),
    }
