"""What people (and workflows) changed on PostHog accounts since a watermark, read from PostHog's own events.

PostHog emits one event per change it stores (``products/customer_analytics/backend/events.py``):

- ``$account_custom_property_changed``: ``account_id``, ``property_id``, ``property_name``, ``data_type``,
  ``previous_value``, ``current_value`` (a datetime as ISO 8601; null when cleared);
- ``$account_relationship_changed``: ``account_id``, ``relationship_id``, ``relationship_name``, ``change_type``
  (``assigned``/``unassigned``), ``previous_user_id``/``_email``, ``current_user_id``/``_email``;

both with ``actor_type`` (``user``, ``workflow``, ``system``), ``actor_id``, ``actor_email``. Rewriting a value
to what it already is emits nothing (``logic/custom_property_values.py``: ``_schedule_value_changed_event``).

The feed reads them with one HogQL query per page through PostHog's query API (``POST /api/projects/:id/query/``,
``posthog/api/query.py``; a ``HogQLQuery`` answers ``results`` rows in the order of ``columns``, with ``hasMore``).
The query text is a constant and the watermark travels in ``values`` (HogQL placeholders), so nothing from the
data is ever spliced into it. Paging is by keyset on ``(timestamp, uuid)``: a page starts at the last timestamp
seen and skips the uuids already read there. Events reach ClickHouse a little after they happen (ingestion), so
every read starts ``LOOKBACK`` before the watermark; consumers are idempotent (they compare with what the ledger
holds), so a re-read event costs no write.

Cost: one request per ``PAGE`` changes (not per account), under PostHog's HogQL throttle (``HogQLQueryThrottle``,
120 per hour per key, in ``posthog/rate_limit.py``), a budget apart from the accounts API's 480/min, 4,800/h. That
budget is small: an outbound pass per stream every minute would spend it alone. So the passes of one outbound run
share reads: inside ``SharedQueries.sharing()`` a query identical to one already sent is answered from memory,
and consumers read both event kinds by default (each filters what it needs), so every stream's pass of one run,
with watermarks in lockstep, costs one query together. Outside such a block every read goes to PostHog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sync.paging import follow
from sync.posthog.errors import PostHogError

CUSTOM_PROPERTY_CHANGED = "$account_custom_property_changed"
RELATIONSHIP_CHANGED = "$account_relationship_changed"
PAGE = 500
LOOKBACK = timedelta(minutes=10)
EPOCH = "1970-01-01T00:00:00+00:00"

CHANGES_QUERY = (
    "SELECT uuid, event, timestamp, properties FROM events "
    "WHERE event IN {events} AND timestamp >= toDateTime({since}) "
    f"ORDER BY timestamp ASC, uuid ASC LIMIT {PAGE}"
)
"""The one query the feed sends (the stand-in answers exactly this text and refuses any other)."""


class QueryClient(Protocol):
    def query_hogql(self, query: str, values: dict[str, Any]) -> dict[str, Any]: ...


class SharedQueries:
    """A ``QueryClient`` whose identical queries inside one ``sharing()`` block are sent once (one per engine: the
    outbound passes of one run share their change-feed reads); outside a block it passes every query through."""

    def __init__(self, client: QueryClient) -> None:
        self.client = client
        self._answers: dict[str, dict[str, Any]] | None = None

    @contextmanager
    def sharing(self) -> Iterator[None]:
        self._answers = {}
        try:
            yield
        finally:
            self._answers = None

    def query_hogql(self, query: str, values: dict[str, Any]) -> dict[str, Any]:
        if self._answers is None:
            return self.client.query_hogql(query, values)
        key = json.dumps([query, values], sort_keys=True, default=str)
        if key not in self._answers:
            self._answers[key] = self.client.query_hogql(query, values)
        return self._answers[key]


@dataclass(frozen=True)
class ChangeEvent:
    """One change event: its id, name, time (ISO 8601, UTC) and properties."""

    uuid: str
    event: str
    timestamp: str
    properties: dict[str, Any]

    @property
    def account_id(self) -> str:
        return str(self.properties.get("account_id") or "")

    @property
    def by_person(self) -> bool:
        """Whether a person (not a workflow or PostHog itself) made the change."""
        return self.properties.get("actor_type") == "user"


@dataclass
class ChangeBatch:
    """The events read in one pass and the watermark to store once they are handled."""

    events: list[ChangeEvent] = field(default_factory=list)
    watermark: str | None = None
    requests: int = 0


def _iso(value: Any) -> str:
    parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def _rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    columns = answer.get("columns")
    results = answer.get("results")
    if not isinstance(columns, list) or not isinstance(results, list):
        raise PostHogError("PostHog query answer has no columns/results")
    return [dict(zip(columns, row, strict=True)) for row in results]


def read_changes(
    client: QueryClient, watermark: str | None, events: Sequence[str] = (CUSTOM_PROPERTY_CHANGED, RELATIONSHIP_CHANGED)
) -> ChangeBatch:
    """Every event of ``events`` from ``LOOKBACK`` before ``watermark`` (all of them when None), oldest first.

    The returned watermark is the newest event's timestamp (or the old one when nothing came); store it only
    after the events are handled."""
    start = EPOCH if watermark is None else (datetime.fromisoformat(watermark) - LOOKBACK).isoformat()
    batch = ChangeBatch(watermark=watermark)

    def fetch(token: tuple[str, frozenset[str]] | None) -> tuple[list[ChangeEvent], tuple[str, frozenset[str]] | None]:
        """One page from ``since`` on (events at ``since`` itself already read are skipped by uuid); the next
        token is where the newest event of this page left off, None when the feed is drained."""
        since, at_since = token or (start, frozenset())
        answer = client.query_hogql(CHANGES_QUERY, {"events": list(events), "since": since})
        batch.requests += 1
        rows = _rows(answer)
        seen, page = set(at_since), []
        for row in rows:
            uuid, ts = str(row["uuid"]), _iso(row["timestamp"])
            if ts == since and uuid in seen:
                continue
            props = row.get("properties")
            props = json.loads(props) if isinstance(props, str) else dict(props or {})
            page.append(ChangeEvent(uuid, str(row["event"]), ts, props))
            if ts != since:
                since, seen = ts, set()
            seen.add(uuid)
        more = len(rows) >= PAGE or bool(answer.get("hasMore"))
        return page, (since, frozenset(seen)) if more else None

    # a page that brings nothing new hands back the token it was asked with: more than PAGE events at one
    # timestamp, which the guard stops instead of asking again forever
    for page in follow(fetch, "PostHog change feed"):
        batch.events.extend(page)
    if batch.events:
        newest = max(e.timestamp for e in batch.events)
        batch.watermark = newest if watermark is None or newest > watermark else watermark
    return batch


def latest_custom_values(events: Iterable[ChangeEvent]) -> dict[tuple[str, str], ChangeEvent]:
    """The newest custom property change per (account id, property name)."""
    latest: dict[tuple[str, str], ChangeEvent] = {}
    for event in sorted(events, key=lambda e: (e.timestamp, e.uuid)):
        if event.event == CUSTOM_PROPERTY_CHANGED and event.account_id:
            latest[(event.account_id, str(event.properties.get("property_name") or ""))] = event
    return latest


def latest_relationships(events: Iterable[ChangeEvent]) -> dict[tuple[str, str], ChangeEvent]:
    """The newest relationship change per (account id, relationship name), e.g. ``(id, "CSM")``."""
    latest: dict[tuple[str, str], ChangeEvent] = {}
    for event in sorted(events, key=lambda e: (e.timestamp, e.uuid)):
        if event.event == RELATIONSHIP_CHANGED and event.account_id:
            latest[(event.account_id, str(event.properties.get("relationship_name") or ""))] = event
    return latest
