"""Records, owners and batch envelopes as JSON the SDK's models deserialise (``SimplePublicObject``, ...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.hubspot.model import ALWAYS_RETURNED, COMPANIES, DEALS, ObjectType, Record, association_types
from sandbox.hubspot.properties import PropertyDef
from sandbox.hubspot.store import HubSpotStore
from sandbox.hubspot.timefmt import iso_ms


def property_names(object_type: ObjectType, requested: list[str] | None, schema: dict[str, PropertyDef]) -> list[str]:
    """Which properties a response carries: the defaults, or those asked for (unknown ones ignored)
    plus ``createdate``, ``hs_lastmodifieddate`` and ``hs_object_id``, which HubSpot always adds."""
    if not requested:
        return list(object_type.default_properties)
    names = [name for name in requested if name in schema]
    return list(dict.fromkeys([*names, *ALWAYS_RETURNED]))


def record_json(record: Record, names: Iterable[str]) -> dict[str, Any]:
    """A ``SimplePublicObject``: requested properties are present, as null when unset."""
    body: dict[str, Any] = {
        "id": str(record.id),
        "properties": {name: record.get(name) for name in names},
        "createdAt": iso_ms(record.created_ms),
        "updatedAt": iso_ms(record.updated_ms),
        "archived": record.archived,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso_ms(record.archived_ms)
    return body


def associations_json(
    store: HubSpotStore, object_type: ObjectType, record_id: int, wanted: list[str]
) -> dict[str, Any] | None:
    """The v3 ``associations`` block (``{"companies": {"results": [{id, type}]}}``); None when empty."""
    other = COMPANIES if object_type is DEALS else DEALS
    if other.plural not in wanted:
        return None
    results = [
        {"id": str(target), "type": kind.name}
        for target, primary in store.associated(object_type, record_id)
        for kind in association_types(object_type, primary)
    ]
    return {other.plural: {"results": results}} if results else None


def batch_json(
    results: list[dict[str, Any]], started_ms: int, completed_ms: int, errors: list[dict[str, Any]]
) -> dict[str, Any]:
    """HubSpot's batch envelope; ``numErrors``/``errors`` only when some inputs failed (a 207)."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started_ms),
        "completedAt": iso_ms(completed_ms),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return body
