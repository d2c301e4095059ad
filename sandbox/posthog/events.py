"""The stand-in's log of the analytics events PostHog emits on account changes (``products/customer_analytics/
backend/events.py``): ``$account_custom_property_changed``, ``$account_relationship_changed``, ...

In PostHog these are captured into the project's own ``events`` table (``capture_batch_internal``), where the
query API reads them (``sandbox/posthog/hogql.py``). Here they are kept in memory per project, in the order they
were emitted, each ``{uuid, event, timestamp, distinct_id, properties}``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sandbox.posthog.clock import uuid7


class EventLog:
    """Events per project, oldest first (thread-safe)."""

    def __init__(self) -> None:
        self._events: dict[int, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._last_us = 0

    def emit(self, project_id: int, event: str, distinct_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            now_us = max(int(datetime.now(UTC).timestamp() * 1_000_000), self._last_us + 1)
            self._last_us = now_us
            stamp = datetime.fromtimestamp(now_us / 1_000_000, UTC)
            row = {
                "uuid": str(uuid7(now_us)),
                "event": event,
                "timestamp": stamp.isoformat(timespec="microseconds"),
                "distinct_id": distinct_id,
                "properties": dict(properties),
            }
            self._events.setdefault(project_id, []).append(row)
            return row

    def events(self, project_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events.get(project_id, []))

    def reset(self) -> None:
        with self._lock:
            self._events.clear()
