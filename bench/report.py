"""Results: the machine, the ratios, the targets (met or not), ``bench/results/<date>.json`` and the Markdown table."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sync.budget import Window


def machine() -> dict[str, Any]:
    """nproc, memory, CPU model, Python and Redis versions, kernel."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    except (OSError, IndexError):
        redis_version = "unknown"
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "redis": redis_version.removeprefix("v="),
        "kernel": platform.release(),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return round(a / b, 2)


def ratios_and_targets(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """crmsync/naive requests and time, throughput/ceiling, and the issue's targets with met/not met."""
    crm = {m["scenario"]: m for m in results.get("crmsync", [])}
    naive = {m["scenario"]: m for m in results.get("naive", [])}
    ratios: dict[str, Any] = {}
    for s in ("1", "2", "3"):
        if s in crm and s in naive:
            c, n = crm[s], naive[s]
            ratios[s] = {
                "posthog_requests_naive_over_crmsync": _ratio(n["posthog_requests"], c["posthog_requests"]),
                "crmsync_over_naive_posthog_requests": _ratio(c["posthog_requests"], n["posthog_requests"]),
                "crmsync_over_naive_time": _ratio(c["wall_s"], n["wall_s"]),
            }
    budget = {}
    for engine, rows in (("crmsync", crm), ("naive", naive)):
        if "1" in rows:
            budget[engine] = posthog_cost(rows["1"])
    if budget:
        ratios["initial_sync_posthog_cost"] = budget
    ceiling = results.get("ceiling")
    if "1" in crm and ceiling and ceiling.get("records_per_s"):
        ratios["throughput_over_ceiling"] = _ratio(crm["1"]["records_per_s"], ceiling["records_per_s"])
    targets: list[dict[str, Any]] = []

    def target(name: str, met: bool | None, value: Any) -> None:
        targets.append({"target": name, "met": met, "value": value})

    if "2" in crm:
        writes = crm["2"]["posthog_writes"] + crm["2"]["crm_writes"]
        target("scenario 2: 0 writes", writes == 0, f"{writes} writes")
    memory = results.get("ledger_memory")
    if memory and memory.get("bytes_per_record") is not None:
        per_record = memory["bytes_per_record"]
        target("ledger ≤ 600 bytes per record after scenarios 1 and 2", per_record <= 600, f"{per_record} B/record")
    if "3" in crm:
        c = crm["3"]
        expected = c.get("expected", {})
        want_ph = expected.get("posthog_writes")
        pushed = c["run_counts"].get("pushed")
        target(
            "scenario 3: writes exactly the changed records",
            c["posthog_writes"] == want_ph and pushed == expected.get("crm_records_pushed"),
            f"PostHog writes {c['posthog_writes']} (changed CRM records {want_ph}); CRM records pushed {pushed} "
            f"(CRM records linked to changed accounts {expected.get('crm_records_pushed')}) in "
            f"{c['crm_writes']} write requests",
        )
    for s, need in (("1", 5.0), ("3", 50.0)):
        value = ratios.get(s, {}).get("posthog_requests_naive_over_crmsync")
        target(
            f"scenario {s}: ≥{need:g}x fewer PostHog requests than naive",
            None if value is None else value >= need,
            None if value is None else f"{value}x",
        )
    per_account = budget.get("crmsync", {}).get("requests_per_account")
    target(
        "scenario 1: ≤ 1.1 PostHog requests per account (floor 1.0)",
        None if per_account is None else per_account <= 1.1,
        per_account,
    )
    value = ratios.get("throughput_over_ceiling")
    target("scenario 1: throughput ≥ 70% of ceiling", None if value is None else value >= 0.7, value)
    for s in ("4", "6"):
        if s in crm:
            ratios[f"webhook_{s}_posthog_budget"] = budget_bound(crm[s])
    if "4" in crm:
        p99 = crm["4"]["webhook"]["latency_s"]["p99"]
        target("webhook burst p99 < 1 s", p99 < 1.0, f"{p99} s")
    if "7" in crm:
        t = crm["7"]["throttled"]
        use = t["budget_utilisation_while_waiting"]
        target(
            "scenario 7 (PostHog throttled): 0 parked, 0 lost, 0 refused",
            t["parked"] == 0 and t["lost"] == 0 and t["posthog_429_throttled"] == 0,
            f"parked {t['parked']}, lost {t['lost']}, 429s {t['posthog_429_throttled']}",
        )
        target("scenario 7: budget used ≥ 90% while work waits", None if use is None else use >= 0.9, use)
    if "8a" in crm:
        lane = crm["8a"]["lane"]
        p99 = lane["latency_s"]["p99"]
        reached = lane["reached_posthog"] == lane["edits"]
        target("scenario 8a: webhook edit → PostHog p99 ≤ 5 s during a backfill at 8/s", reached and p99 <= 5.0, p99)
    if "6" in crm:
        hook = crm["6"]["webhook"]
        p99, bound = hook["latency_s"]["p99"], hook["coalesce_s"] + 1.0
        target(f"webhook trickle (1 event/s) p99 < coalescing window + 1 s ({bound:g} s)", p99 < bound, f"{p99} s")
    return ratios, targets


POSTHOG_REQUESTS_PER_HOUR = 4800  # PostHog's sustained limit per personal API key (posthog/rate_limit.py)


POSTHOG_WINDOWS = (Window(480, 60.0), Window(4800, 3600.0))  # PostHog's real throttles per personal API key


def _schedule(windows: Sequence[Window]) -> Iterator[float]:
    """When each request can go at the earliest under sliding windows (each ``limit`` per ``seconds``), from
    empty windows: a request sent at t holds a slot of every window until t + seconds."""
    sent: list[float] = []
    t = 0.0
    while True:
        for w in windows:
            if len(sent) >= w.limit:
                t = max(t, sent[-w.limit] + w.seconds)
        sent.append(t)
        yield t


def most_requests(windows: Sequence[Window], span_s: float) -> int:
    """The most requests the windows admit within ``span_s`` seconds."""
    return next(n for n, t in enumerate(_schedule(windows)) if t > span_s)


def seconds_for(windows: Sequence[Window], requests: int) -> float:
    """The least time ``requests`` requests take under the windows (0 for those the windows admit at once)."""
    return next(t for n, t in enumerate(_schedule(windows), start=1) if n >= requests) if requests else 0.0


def budget_bound(row: dict[str, Any]) -> dict[str, Any]:
    """A run's PostHog requests against PostHog's real budget: the share of what it admits in the run's wall time
    (above 1: the real PostHog would have made the run wait) and the least time they take at that budget."""
    requests = int(row["posthog_requests"])
    admitted = most_requests(POSTHOG_WINDOWS, float(row["wall_s"]))
    return {
        "posthog_requests": requests,
        "budget_share": round(requests / admitted, 3) if admitted else None,
        "seconds_at_real_budget": round(seconds_for(POSTHOG_WINDOWS, requests), 1),
    }


def posthog_cost(row: dict[str, Any]) -> dict[str, Any]:
    """PostHog requests per account of the initial sync (every account PostHog holds afterwards: created by it,
    or there before and written by it; floor 1.0, as PostHog has no bulk write) and the hours the run would take
    at PostHog's real budget of 4,800 requests an hour."""
    requests = row["posthog_requests"]
    accounts = row.get("accounts_after") or 0
    return {
        "requests": requests,
        "accounts": accounts,
        "created": row["requests"]["posthog"]["by_method"].get("POST", 0),
        "requests_per_account": round(requests / accounts, 3) if accounts else None,
        "hours_at_real_budget": round(requests / POSTHOG_REQUESTS_PER_HOUR, 2),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    """The tables of ``docs/performance.md`` (scenarios, ratios, targets, scaling, webhooks, machine)."""
    m = results["machine"]
    lines = [
        f"Run of {results['date']}, {results['records']:,} records per CRM (`{results['command']}`), on "
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, Redis {m['redis']}, "
        f"Linux {m['kernel']}. Raw figures: `bench/results/{results['date']}.json`.",
        "",
        "| scenario | engine | workers | wall s | records | rec/s | PostHog req (writes) | HubSpot req "
        "| Stripe req | Salesforce req | req / changed rec | Redis cmd / rec | worker peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*results.get("crmsync", []), *results.get("naive", []), *results.get("scaling", [])]
    for r in rows:
        req = r["requests"]
        lines.append(
            f"| {r['scenario']} | {r['engine']} | {r['workers'] or '-'} | {_fmt(r['wall_s'])} | {_fmt(r['records'])} "
            f"| {_fmt(r['records_per_s'])} | {_fmt(req['posthog']['total'])} ({_fmt(req['posthog']['writes'])}) "
            f"| {_fmt(req['hubspot']['total'])} | {_fmt(req['stripe']['total'])} "
            f"| {_fmt(req['salesforce']['total'])} | {_fmt(r['requests_per_changed_record'])} "
            f"| {_fmt(r['redis_commands_per_record'])} | {_fmt(r['peak_worker_rss_mib'])} |"
        )
    lines += ["", "Requests by method:", "", "| scenario | engine | PostHog | HubSpot | Stripe | Salesforce |"]
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            ", ".join(f"{k} {v:,}" for k, v in r["requests"][n]["by_method"].items()) or "-"
            for n in ("posthog", "hubspot", "stripe", "salesforce")
        ]
        lines.append(f"| {r['scenario']} | {r['engine']} ({r['workers'] or '-'}) | " + " | ".join(cells) + " |")
    memory = results.get("ledger_memory")
    if memory:
        families = ", ".join(f"{k} {v:,}" for k, v in memory["memory_usage_by_family"].items())
        lines += [
            "",
            f"Ledger after scenarios 1 and 2: {memory['dataset_bytes']:,} bytes of `used_memory_dataset` for "
            f"{memory['records']:,} records ({memory['records_in_ledger']:,} in the ledger, {memory['keys']:,} keys): "
            f"**{memory['bytes_per_record']} bytes per record** (`bench/memory.py`). By family (MEMORY USAGE, bytes): "
            f"{families}. Server: " + ", ".join(f"`{k}` {v}" for k, v in sorted(memory["server"].items())) + ".",
        ]
    ceiling = results.get("ceiling")
    if ceiling:
        lines += ["", "Ceiling (scenario 1's requests replayed by one tight `httpx` loop per stand-in):", ""]
        lines += ["| stand-in | requests | loop s | ceiling s | req/s |", "|---|---:|---:|---:|---:|"]
        for name, c in ceiling["stand_ins"].items():
            lines.append(
                f"| {name} | {_fmt(c['requests'])} | {_fmt(c['loop_s'])} | {_fmt(c['ceiling_s'])} "
                f"| {_fmt(c['requests_per_s'])} |"
            )
        lines.append(f"| **total** | | | {_fmt(ceiling['total_s'])} | {_fmt(ceiling['records_per_s'])} records/s |")
    for row in (r for r in results.get("crmsync", []) if "webhook" in r):
        webhook, bound = row["webhook"], budget_bound(row)
        lat = webhook["latency_s"]
        kind = f"trickle (one every {webhook['pace_s']:g} s)" if webhook.get("pace_s") else "burst"
        lines += [
            "",
            f"Webhook {kind}: {webhook['deliveries']:,} Stripe deliveries ({webhook['duplicates']:,} duplicates, "
            f"shuffled) for {webhook['customers']:,} customers; {webhook['reached_posthog']:,} reached PostHog. "
            f"Delivery → PostHog state: p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s, max {lat['max']} s "
            f"(coalescing window {webhook['coalesce_s']} s, PostHog polled every {webhook['poll_interval_s']} s).",
        ]
        lines[-1] += (
            f" PostHog requests: {bound['posthog_requests']:,} in {_fmt(row['wall_s'])} s, "
            f"{_fmt(bound['budget_share'])} of what PostHog's real budget (480/60, 4,800/3600) admits in that time; "
            f"at that budget they take at least {_fmt(bound['seconds_at_real_budget'])} s."
        )
    for row in (r for r in results.get("crmsync", []) if "throttled" in r):
        t = row["throttled"]
        lines += [
            "",
            f"Throttled sync (scenario 7): PostHog stand-in at {', '.join(t['posthog_throttle'])}, "
            f"{t['records_seen']:,} records: {_fmt(row['posthog_requests'])} PostHog requests "
            f"in {_fmt(row['wall_s'])} s; "
            f"parked {t['parked']}, lost {t['lost']}, refused by PostHog {t['posthog_429_throttled']}; "
            f"{t['budget_waits']:,} waits for budget, {t['chunks_requeued']} chunk runs re-queued; "
            f"budget used {_fmt(t['budget_utilisation_while_waiting'])} of what it allows over the "
            f"{_fmt(t['seconds_with_work_waiting'])} s that work was waiting (a client that never leaves a slot "
            f"idle scores {_fmt(t.get('budget_utilisation_ceiling'))} for the same requests).",
        ]
    for row in (r for r in results.get("crmsync", []) if "lane" in r):
        lane, lat, between = row["lane"], row["lane"]["latency_s"], row["lane"]["posthog_requests_between"]
        lines += [
            "",
            f"Webhooks during a backfill (scenario {row['scenario']}): PostHog stand-in at "
            f"{', '.join(lane['posthog_throttle'])}, a full sync enqueued on one worker at its default layout; "
            f"{lane['edits']} Stripe edits, one every {lane['pace_s']:g} s, {lane['reached_posthog']} reached "
            f"PostHog. Delivery → PostHog write: p50 {lat['p50']} s, p99 {lat['p99']} s, max {lat['max']} s "
            f"(coalescing window {lane['coalesce_s']} s); PostHog requests between a delivery and its write: "
            f"median {_fmt(between['p50'])}, max {_fmt(between['max'])}; "
            f"the backfill took {lane['backfill_wall_s']} s.",
        ]
    if results.get("generations"):
        from bench.generations import generations_markdown  # here: bench.generations imports this module

        lines += ["", "First sync and unchanged re-sync against each PostHog API generation (scenario 9):", ""]
        lines += generations_markdown(results["generations"])
    ratios = results.get("ratios", {})
    if ratios:
        lines += ["", "| ratio | value |", "|---|---:|"]
        for s in ("1", "2", "3"):
            if s in ratios:
                r = ratios[s]
                fewer = _fmt(r["posthog_requests_naive_over_crmsync"])
                lines.append(f"| scenario {s}: naive / crmsync PostHog requests | {fewer}x |")
                lines.append(f"| scenario {s}: crmsync / naive time | {_fmt(r['crmsync_over_naive_time'])} |")
        for engine, cost in ratios.get("initial_sync_posthog_cost", {}).items():
            lines.append(
                f"| scenario 1, {engine}: PostHog requests per account ({_fmt(cost['requests'])} for "
                f"{_fmt(cost['accounts'])}; floor 1.0) | {_fmt(cost['requests_per_account'])} |"
            )
            lines.append(
                f"| scenario 1, {engine}: hours at PostHog's real budget ({_fmt(cost['requests'])} requests "
                f"÷ 4,800/h) | {_fmt(cost['hours_at_real_budget'])} |"
            )
        if "throughput_over_ceiling" in ratios:
            lines.append(f"| scenario 1: crmsync throughput / ceiling | {_fmt(ratios['throughput_over_ceiling'])} |")
    if results.get("targets"):
        lines += ["", "| target | met | measured |", "|---|---|---|"]
        for t in results["targets"]:
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            lines.append(f"| {t['target']} | {met} | {_fmt(t['value'])} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def write_docs(path: Path, table: str) -> None:
    """Replace the generated block of ``docs/performance.md`` (between the markers), keeping the prose around it."""
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else "\n"
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
