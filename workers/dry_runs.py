"""The last dry run of each (source, stream), kept in Redis for a day so the status page can show its plan.

A dry run writes nothing, so the engine does not add it to the runs stream (``sync.runs.record``); its report,
plan included, is what people want to read before they let a real run write. Whoever ran it (the
``crmsync.sync_source`` task, or ``crmsync sync --inline --dry-run``) hands the reports to ``remember``, one
pipelined round trip; ``latest`` reads them back in one ``MGET``.

Key: ``<ns>:dryrun:<source>:<stream>`` → the report as JSON (``RunReport.as_dict``), expiring after ``TTL_S``;
part of the source's state (``sync.keys``): dropping it (``crmsync reset <source>``) drops it too.
Plans are cut to ``MAX_PLAN`` changes (the report then carries ``plan_total`` and a note), so a dry run of a huge
initial sync cannot fill Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from sync.keys import ProjectKeys
from sync.report import RunReport

TTL_S = 24 * 3600
MAX_PLAN = 5000


def _key(ns: str, source: str, stream: str) -> str:
    return ProjectKeys(ns).dryrun(source, stream)


def remember(client: redis.Redis, ns: str, reports: Iterable[RunReport]) -> int:
    """Store each finished dry run as the latest of its (source, stream); returns how many were stored."""
    pipe = client.pipeline(transaction=False)
    for report in reports:
        if not report.dry_run:
            continue
        data = report.as_dict()
        plan = data.get("plan", [])
        if len(plan) > MAX_PLAN:
            data["plan"] = plan[:MAX_PLAN]
            data["plan_total"] = len(plan)
            data["notes"] = [*data["notes"], f"plan cut to its first {MAX_PLAN} of {len(plan)} changes"]
        pipe.set(_key(ns, report.source, report.stream), json.dumps(data, default=str), ex=TTL_S)
    stored = len(pipe)
    if stored:
        pipe.execute()
    return stored


def latest(client: redis.Redis, ns: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored dry runs of these (source, stream) pairs, those that have one (one round trip)."""
    if not pairs:
        return {}
    raw = cast(list[str | None], client.mget([_key(ns, source, stream) for source, stream in pairs]))
    return {pair: json.loads(value) for pair, value in zip(pairs, raw, strict=True) if value}
