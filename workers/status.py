"""What ``crmsync status`` and the status page show, read from Redis only: per source its last run, cursors, dead
letters and next scheduled run; PostHog's request budget; the backlog of PostHog requests still owed.

The command (``workers.cli_status.status_command``) and the page (``workers.ui.views``) both read ``status_data``, so
the two never disagree.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, cast

from sync.plan import PlanStore
from sync.state import POSTHOG
from workers.eviction import read_policy
from workers.runtime import Runtime


def status_data(runtime: Runtime) -> dict[str, Any]:
    """Per source: last run, outcome, counts, cursor age, DLQ size, next scheduled run; the dead letters (count,
    oldest entry, replay backoff per source); PostHog's request budget (used and left per window, 429 block)."""
    from workers.replay import ReplayBackoff
    from workers.schedule import next_run_in

    ledger = runtime.ledger
    names = list(runtime.config.sources)
    systems = dict(zip([*names, POSTHOG], ledger.systems([*names, POSTHOG]), strict=True))
    recent = ledger.recent_runs(500)
    parked = [entry for _, entry in ledger.dead_letters(100_000)]
    now = time.time()
    sources: dict[str, Any] = {}
    for source in runtime.config.sources:
        last = next((r for r in recent if r.get("source") == source and r.get("mode") != "outbound"), None)
        cursors = {}
        for stream in runtime.config.mapping.mappings.get(source, {}):
            at = ledger.cursor_written_at(source, stream)
            cursors[stream] = {
                "present": ledger.get_cursor(source, stream) is not None,
                "age_s": round(now - at, 1) if at else None,
            }
        finished = _epoch(last.get("finished_at")) if last else None
        sources[source] = {
            "enabled": runtime.config.sources[source].enabled,
            "system": systems[source],  # the system this source's state was recorded for (None: no state yet)
            "last_run": last,
            "cursors": cursors,
            "dlq": sum(1 for e in parked if e.get("source") == source),
            "next_run_in_s": next_run_in(runtime.config, f"sync:{source}", now - finished if finished else None),
        }
    replay = ReplayBackoff(runtime.redis, ledger.ns).state()
    oldest = ledger.dead_letters(1)
    dead_letters = {
        "total": ledger.dlq_size(),
        "oldest": _dead_letter_summary(*oldest[0], now) if oldest else None,
        "replay_backoff": {
            source: {**state, "next_in_s": round(max(0.0, state["next_at"] - now), 1)}
            for source, state in replay.items()
        },
    }
    budget = runtime.posthog_budget
    usage = budget.usage().as_dict() if budget is not None else {"unthrottled": True}
    dropped = ledger.tagging_unsupported()
    return {
        "sources": sources,
        "posthog_system": systems[POSTHOG],
        "dlq_total": dead_letters["total"],
        "dead_letters": dead_letters,
        "posthog_budget": usage,
        "backlog": backlog(runtime, usage, now),
        "redis_eviction": read_policy(runtime.redis).problem(),  # None, or a line naming maxmemory-policy
        "posthog_tags": {
            "dropped": bool(dropped and dropped.get("mapping") == runtime.config.mapping.fingerprint()),
            "since": dropped.get("at") if dropped else None,
        },
    }


def backlog(runtime: Runtime, usage: dict[str, Any], now: float) -> dict[str, Any]:
    """PostHog requests still owed: staged plans' unwritten accounts (one request each) and webhook ids waiting for
    a refresh; and when they will be done at the current budget (what is left in the windows now, then each
    window's sustained rate, the slowest one binding). ``eta_s`` is None when PostHog is unthrottled."""
    plans: list[dict[str, Any]] = [
        {"plan": p.id, "accounts_left": p.accounts_left(), "chunks": p.chunks} for p in PlanStore.live(runtime.ledger)
    ]
    # sets only: the receiver's ``pending:<source>:<object>:scheduled`` markers are strings under the same prefix
    pending_sets = list(runtime.redis.scan_iter(match=runtime.ledger.keys.match("pending"), _type="SET"))
    pending = sum(cast(int, runtime.redis.scard(str(key))) for key in pending_sets)
    requests = sum(int(p["accounts_left"]) for p in plans) + pending
    eta: float | None = None
    if not usage.get("unthrottled") and usage.get("windows"):
        wait = max(0.0, float(usage.get("blocked_for_s") or 0.0))
        for window in usage["windows"]:
            limit, seconds = (float(x) for x in str(window["window"]).split("/"))
            beyond = max(0, requests - int(window["left"]))
            wait = max(wait, beyond / (limit / seconds))
        eta = round(wait, 1)
    return {"plans": plans, "webhook_ids_waiting": pending, "posthog_requests": requests, "eta_s": eta}


def _dead_letter_summary(entry_id: str, entry: dict[str, Any], now: float) -> dict[str, Any]:
    """One parked record for ``status``: its age (from the stream entry id, milliseconds since the epoch) and
    where it came from and why it is parked."""
    parked_at = int(entry_id.split("-", 1)[0]) / 1000
    return {
        "entry": entry_id,
        "age_s": round(max(0.0, now - parked_at), 1),
        **{k: entry.get(k) for k in ("source", "object", "id", "field", "reason")},
    }


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
