"""PostHog's own account events, as ``products/customer_analytics/backend/events.py`` captures them.

PostHog sends ``$account_relationship_changed`` and ``$account_custom_property_changed`` into the team's own
project (``capture_batch_internal``). The stand-in keeps them in an in-memory, timestamped log on the store,
readable at ``GET /_sandbox/events`` and through the query API (``sandbox/posthog/hogql.py``): each entry
``{"uuid", "event", "timestamp", "distinct_id", "properties"}`` with PostHog's property keys; timestamps strictly
increase (microseconds, UTC) and uuids are UUIDv7, as ClickHouse's ``events`` rows carry them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.posthog.clock import uuid7

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RELATIONSHIP_CHANGED = "$account_relationship_changed"
CUSTOM_PROPERTY_CHANGED = "$account_custom_property_changed"


class EventLog:
    """Captured events, oldest first (thread-safe); emptied by the stand-in's reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._last_us = 0

    def capture(self, event: str, distinct_id: str, properties: Mapping[str, Any]) -> None:
        with self._lock:
            now_us = max(int(datetime.now(UTC).timestamp() * 1_000_000), self._last_us + 1)
            self._last_us = now_us
            stamp = (_EPOCH + timedelta(microseconds=now_us)).isoformat(timespec="microseconds")
            entry = {
                "uuid": str(uuid7(now_us)),
                "event": event,
                "timestamp": stamp.replace("+00:00", "Z"),
                "distinct_id": distinct_id,
                "properties": dict(properties),
            }
            self._events.append(entry)

    def listing(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events if event is None or e["event"] == event]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


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
) -> None:
    """``emit_account_relationship_changed``; users as ``(id, email)``."""
    log.capture(
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
