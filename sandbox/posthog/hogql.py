"""PostHog's query API in the stand-in (``POST /api/projects/:id/query/``, ``posthog/api/query.py``), for the one
HogQL query crmsync sends: the account change events since a time, over the stand-in's event log.

A ``HogQLQuery`` answer carries ``results`` (rows), ``columns``, ``types`` (``[name, ClickHouse type]``),
``hasMore``, ``limit``, ``offset``, ``hogql``, ``query``, ``timings``, ``modifiers``, ``error`` (the
``HogQLQueryResponse`` schema in ``posthog/schema.py``). A ``DateTime64`` column comes back as ISO 8601 text and
``properties`` as a JSON string. The query text must be exactly ``CHANGES_QUERY`` with its placeholders filled from
``values``; any other query is refused with the 400 PostHog's query view raises for a query it cannot run
(``ValidationError`` → ``{"type": "validation_error", "code": "invalid_input", "detail", "attr": null}``): this
stand-in is not a HogQL engine, and says so instead of answering wrongly. Scope ``query:read``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.posthog.auth import RequestBody
from sandbox.posthog.errors import ApiError
from sandbox.posthog.service import PostHogApi

QUERY = "/api/projects/{project_id}/query/"
PAGE = 500
CHANGES_QUERY = (
    "SELECT uuid, event, timestamp, properties FROM events "
    "WHERE event IN {events} AND timestamp >= toDateTime({since}) "
    f"ORDER BY timestamp ASC, uuid ASC LIMIT {PAGE}"
)
COLUMNS = ["uuid", "event", "timestamp", "properties"]
TYPES = [["uuid", "UUID"], ["event", "String"], ["timestamp", "DateTime64(6, 'UTC')"], ["properties", "String"]]


def _refuse(detail: str) -> ApiError:
    return ApiError(400, "validation_error", "invalid_input", detail, None)


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class QueryApi:
    """Answers the change-events query over an ``EventLog``."""

    def __init__(self, api: PostHogApi) -> None:
        self.api = api

    def query(self, request: Request, body: RequestBody) -> Response:
        self.api._project(request, body, "query", write=False)
        data = body.data()
        query = data.get("query") if isinstance(data, dict) else None
        if not isinstance(query, dict) or query.get("kind") != "HogQLQuery":
            raise _refuse("This stand-in answers only HogQLQuery queries.")
        text, values = query.get("query"), query.get("values") or {}
        if text != CHANGES_QUERY:
            raise _refuse("Unsupported query: this stand-in answers only crmsync's change-events query.")
        events, since = values.get("events"), values.get("since")
        if not isinstance(events, list) or not isinstance(since, str):
            raise _refuse("Placeholder {events} or {since} is missing or of the wrong type.")
        try:
            start = _utc(since)
        except ValueError:
            raise _refuse(f"Cannot parse {since!r} as a DateTime.") from None
        rows = sorted(
            (e for e in self.api.store.events.listing() if e["event"] in events and _utc(e["timestamp"]) >= start),
            key=lambda e: (e["timestamp"], e["uuid"]),
        )
        results = [[e["uuid"], e["event"], e["timestamp"], json.dumps(e["properties"])] for e in rows[:PAGE]]
        answer: dict[str, Any] = {
            "results": results,
            "columns": COLUMNS,
            "types": TYPES,
            "hasMore": len(rows) > PAGE,
            "limit": PAGE,
            "offset": 0,
            "hogql": text,
            "query": text,
            "timings": [],
            "modifiers": {},
            "error": None,
            "is_cached": False,
        }
        return JSONResponse(answer)
