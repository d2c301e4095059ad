"""Scenario 9: the PostHog requests of a first full sync against each PostHog API generation, next to the floor.

For each generation (``seed``, ``transitional``, ``current``: ``docs/posthog.md``) a fresh ``Env`` whose PostHog
stand-in serves it: a full sync of every CRM (as scenario 1), then an unchanged re-sync (as scenario 2). Counted
from the stand-in's ``/_sandbox/stats``, split by route: account writes, relationship writes, custom value writes,
definition writes (get-or-create, once per project), reads (GETs and the query API) and the rest. Never timed: the
wall time is reported, nothing depends on it.

The floor comes from what the sync left in PostHog (read from the stand-in's database after the measured window):
PostHog has no bulk endpoint, so each account costs 1 request; on ``current`` each role holder assigned costs one
relationship POST and each custom value set one custom value POST (rows added to ``account_relationships`` and
``custom_property_values`` during the sync); on ``seed`` and ``transitional`` the roles ride in the account write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.harness import Env, is_write
from bench.report import POSTHOG_REQUESTS_PER_HOUR, _fmt
from bench.scenarios import measure_sync, snapshot_accounts
from sandbox.posthog.config import GENERATIONS, Generation
from workers.processes import RedisServer

KINDS = ("accounts", "relationships", "custom_values", "definitions", "reads", "other")


def route_kind(method: str, route: str) -> str:
    """What one PostHog request (method, route template as ``/_sandbox/stats`` counts it) is for."""
    if not is_write(method, route):
        return "reads"
    if route.endswith("_definitions/"):  # get-or-create of a role or custom property definition: once per project
        return "definitions"
    if "relationship" in route:
        return "relationships"
    if "custom_propert" in route:
        return "custom_values"
    if "/accounts/" in route:
        return "accounts"
    return "other"


def by_kind(row: dict[str, Any]) -> dict[str, int]:
    """A measurement row's PostHog requests split by ``route_kind`` (writes per kind, plus reads)."""
    out = dict.fromkeys(KINDS, 0)
    for key, n in row["requests"]["posthog"]["by_route"].items():
        method, route = key.split(" ", 1)
        out[route_kind(method, route)] += n
    return out


def _rows(db: Path, table: str) -> int:
    """Rows of one table of the PostHog stand-in's database (0 where the generation has no such table)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def _state(env: Env) -> dict[str, int]:
    db = env.workdir / "sandbox" / "posthog.sqlite3"
    return {t: _rows(db, t) for t in ("account_relationships", "custom_property_values")}


def measure_generation(env: Env) -> dict[str, Any]:
    """Scenario 9 on one ``Env``: a first full sync and an unchanged re-sync, with the floor of the first."""
    before = _state(env)
    first = measure_sync(env, "9", full=True, outbound=False).as_dict()
    after = _state(env)
    accounts = len(snapshot_accounts(env))  # outside the measured windows
    second = measure_sync(env, "9", full=False, outbound=True, changed=0).as_dict()
    roles = after["account_relationships"] - before["account_relationships"]
    values = after["custom_property_values"] - before["custom_property_values"]
    kinds = by_kind(first)
    requests = first["posthog_requests"]
    floor = accounts + (roles + values if env.posthog_generation == "current" else 0)
    return {
        "generation": env.posthog_generation,
        "records": first["records"],
        "accounts": accounts,
        "roles_set": roles,
        "custom_values_set": values,
        "first_sync": {
            "posthog_requests": requests,
            "by_kind": kinds,
            "requests_per_account": round(requests / accounts, 3) if accounts else None,
            "hours_at_4800_per_hour": round(requests / POSTHOG_REQUESTS_PER_HOUR, 3),
            "floor_requests": floor,
            "over_floor": requests - floor,
            "floor_per_account": round(floor / accounts, 3) if accounts else None,
            "floor_hours_at_4800_per_hour": round(floor / POSTHOG_REQUESTS_PER_HOUR, 3),
            "run_counts": first["run_counts"],
            "wall_s": first["wall_s"],
            "by_route": first["requests"]["posthog"]["by_route"],
        },
        "resync": {
            "posthog_requests": second["posthog_requests"],
            "posthog_writes": second["posthog_writes"],
            "crm_writes": second["crm_writes"],
            "by_kind": by_kind(second),
            "run_counts": second["run_counts"],
            "by_route": second["requests"]["posthog"]["by_route"],
        },
    }


def generations(
    records: int, redis: RedisServer | None, workers: int = 2, which: tuple[Generation, ...] = GENERATIONS
) -> Iterator[dict[str, Any]]:
    """Scenario 9 against each generation in turn, each on fresh stand-ins with ``records`` per CRM."""
    for generation in which:
        with Env(records, workers=workers, redis=redis, posthog_generation=generation) as env:
            row = measure_generation(env)
        yield row


def generations_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The table of scenario 9 for ``docs/performance.md``."""
    lines = [
        "| generation | accounts | roles set | custom values set | PostHog requests: account writes, relationship "
        "writes, custom value writes, definition writes, reads, other | requests / account | floor / account "
        "| over the floor | hours at 4,800/h (floor) | re-sync writes (PostHog, CRMs) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f, k, s = r["first_sync"], r["first_sync"]["by_kind"], r["resync"]
        split = ", ".join(_fmt(k[kind]) for kind in KINDS)
        lines.append(
            f"| {r['generation']} | {_fmt(r['accounts'])} | {_fmt(r['roles_set'])} | {_fmt(r['custom_values_set'])} "
            f"| {_fmt(f['posthog_requests'])}: {split} | {_fmt(f['requests_per_account'])} "
            f"| {_fmt(f['floor_per_account'])} | {_fmt(f['over_floor'])} | {_fmt(f['hours_at_4800_per_hour'])} "
            f"({_fmt(f['floor_hours_at_4800_per_hour'])}) | {s['posthog_writes']}, {s['crm_writes']} |"
        )
    return lines
