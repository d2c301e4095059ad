"""Scheduled replay of parked records (the dead-letter stream), with a backoff per source kept in Redis.

Beat enqueues ``crmsync.replay_dlq`` with ``scheduled=True`` every ``dlq_replay.schedule`` (a minute by default).
Each tick replays a source's parked records only when that source is due: after an attempt that left records of
the source still parked, it waits ``backoff_s``, then twice that, ... up to ``max_backoff_s`` (1 min doubling to
1 h by default); once none of its records are parked, the backoff is forgotten. A replay that is cut short by a
retryable error (e.g. the PostHog budget) leaves the backoff as it was: the task itself is retried.

State: the hash ``<ns>:dlqreplay``, one field per source, JSON ``{"delay_s", "next_at", "attempts"}``
(``next_at`` in epoch seconds).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from sync.keys import ProjectKeys
from sync.report import RunReport
from workers.runtime import Runtime


@dataclass
class ReplayBackoff:
    """When each source's parked records may be replayed next (``base_s`` doubling up to ``max_s``)."""

    client: redis.Redis
    ns: str
    base_s: float = 60.0
    max_s: float = 3600.0

    @property
    def key(self) -> str:
        return ProjectKeys(self.ns).dlqreplay()

    def state(self) -> dict[str, dict[str, Any]]:
        """Every source with a backoff running: ``{"delay_s", "next_at", "attempts"}``."""
        raw = cast(dict[str, str], self.client.hgetall(self.key))
        return {_text(source): json.loads(value) for source, value in raw.items()}

    def due(self, source: str, now: float) -> bool:
        raw = cast(str | None, self.client.hget(self.key, source))
        return raw is None or float(json.loads(raw)["next_at"]) <= now

    def failed(self, source: str, now: float) -> float:
        """An attempt left records parked: wait longer before the next one; returns the new delay."""
        raw = cast(str | None, self.client.hget(self.key, source))
        previous = json.loads(raw) if raw else {"delay_s": 0.0, "attempts": 0}
        delay = min(self.max_s, max(self.base_s, 2 * float(previous["delay_s"])))
        entry = {"delay_s": delay, "next_at": now + delay, "attempts": int(previous["attempts"]) + 1}
        self.client.hset(self.key, source, json.dumps(entry))
        return delay

    def cleared(self, source: str) -> None:
        """Nothing of ``source`` is parked any more: the next failure starts from ``base_s`` again."""
        self.client.hdel(self.key, source)


def parked_by_source(runtime: Runtime) -> Counter[str]:
    """How many parked records each source has (one read of the stream)."""
    return Counter(str(entry.get("source")) for _, entry in runtime.ledger.dead_letters(100_000))


def replay_due(runtime: Runtime, sources: Sequence[str], now: Callable[[], float] = time.time) -> list[RunReport]:
    """Replay the parked records of every source in ``sources`` that is due, advancing or clearing its backoff."""
    block = runtime.config.dlq_replay
    backoff = ReplayBackoff(runtime.redis, runtime.ledger.ns, block.backoff_s, block.max_backoff_s)
    parked = parked_by_source(runtime)
    reports: list[RunReport] = []
    for source in sources:
        if not parked[source]:
            backoff.cleared(source)
            continue
        if not backoff.due(source, now()):
            continue
        connector = runtime.connector(source)
        reports += [runtime.engine.replay_dead_letters(connector, stream) for stream in runtime.streams(source)]
        if parked_by_source(runtime)[source]:
            backoff.failed(source, now())
        else:
            backoff.cleared(source)
    return reports


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
