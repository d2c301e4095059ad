"""PostHog's own account events, as ``products/customer_analytics/backend/events.py`` captures them.

PostHog sends ``$account_relationship_changed`` and ``$account_custom_property_changed`` into the team's own
project (``capture_batch_internal``), where its query API reads them (``sandbox/posthog/hogql.py``). The stand-in
keeps them in one in-memory log on the store, oldest first, readable at ``GET /_sandbox/events``: each entry
``{"uuid", "event", "timestamp", "distinct_id", "properties", "project_id"}`` with PostHog's property keys
(timestamps ISO 8601 with microseconds, strictly increasing; uuids time-ordered like PostHog's UUIDv7).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.posthog.clock import uuid7

RELATIONSHIP_CHANGED = "$account_relationship_changed"
CUSTOM_PROPERTY_CHANGED = "$account_custom_property_changed"


class EventLog:
    """Captured events, oldest first (thread-safe); emptied by the stand-in's reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._last_us = 0

    def emit(self, project_id: int, event: str, distinct_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Capture one event into ``project_id``; returns it as stored."""
        with self._lock:
            now_us = max(int(datetime.now(UTC).timestamp() * 1_000_000), self._last_us + 1)
            self._last_us = now_us
            stamp = datetime.fromtimestamp(now_us / 1_000_000, UTC)
            entry = {
                "uuid": str(uuid7(now_us)),
                "event": event,
                "timestamp": stamp.isoformat(timespec="microseconds"),
                "distinct_id": distinct_id,
                "properties": dict(properties),
                "project_id": project_id,
            }
            self._events.append(entry)
            return dict(entry)

    def capture(self, event: str, distinct_id: str, properties: Mapping[str, Any], project_id: int = 1) -> None:
        self.emit(project_id, event, distinct_id, properties)

    def events(self, project_id: int) -> list[dict[str, Any]]:
        """The events of one project, oldest first (what its query API reads)."""
        with self._lock:
            return [dict(e) for e in self._events if e["project_id"] == project_id]

    def listing(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events if event is None or e["event"] == event]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    reset = clear


class Actor:
    """Who made a change through the API: the key's user (``actor_type`` ``user``)."""

    def __init__(self, user_id: int, email: str, distinct_id: str) -> None:
        self.user_id = user_id
        self.email = email
        self.distinct_id = distinct_id


def base_properties(account: Mapping[str, Any], actor: Actor | None) -> dict[str, Any]:
    """``_base_event_properties``: the account and the actor (``$groups`` needs a group type mapping, which the
    stand-in does not have, so it is left out as PostHog leaves it out then)."""
    return {
        "account_id": account["id"],
        "account_external_id": account["external_id"],
        "account_name": account["name"],
        "actor_type": "user" if actor else "system",
        "actor_id": actor.user_id if actor else None,
        "actor_email": actor.email if actor else None,
        "workflow_id": None,
    }


def distinct_id_of(account: Mapping[str, Any], actor: Actor | None) -> str:
    return actor.distinct_id if actor and actor.distinct_id else f"account:{account['id']}"


def relationship_changed(
    log: EventLog,
    account: Mapping[str, Any],
    definition: Mapping[str, Any],
    previous: tuple[int, str] | None,
    current: tuple[int, str] | None,
    actor: Actor | None,
    project_id: int = 1,
) -> None:
    """``emit_account_relationship_changed``; users as ``(id, email)``."""
    log.emit(
        project_id,
        RELATIONSHIP_CHANGED,
        distinct_id_of(account, actor),
        {
            **base_properties(account, actor),
            "relationship_id": definition["id"],
            "relationship_name": definition["name"],
            "change_type": "assigned" if current else "unassigned",
            "previous_user_id": previous[0] if previous else None,
            "previous_user_email": previous[1] if previous else None,
            "current_user_id": current[0] if current else None,
            "current_user_email": current[1] if current else None,
        },
    )


def custom_property_changed(
    log: EventLog,
    account: Mapping[str, Any],
    definition: Mapping[str, Any],
    data_type: str,
    previous_value: Any,
    current_value: Any,
    actor: Actor | None,
) -> None:
    """``emit_account_custom_property_changed``; datetimes already ISO strings (``_json_value``)."""
    log.capture(
        CUSTOM_PROPERTY_CHANGED,
        distinct_id_of(account, actor),
        {
            **base_properties(account, actor),
            "property_id": definition["id"],
            "property_name": definition["name"],
            "data_type": data_type,
            "previous_value": previous_value,
            "current_value": current_value,
        },
    )
