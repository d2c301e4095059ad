"""An in-memory CRM and a connector for it: a real class implementing ``sync.connector.Connector``.

The engine's tests and the contract suite's self-test use it where a vendor would be. It behaves like the
CRMs do where it matters: a modification clock, incremental reads that overlap (``>=``), pages, batch pushes
that bump the modification time (so the engine sees its own echo), HMAC-signed webhooks, and counters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sync.connector import (
    CrmRecord,
    Cursor,
    EventKind,
    MalformedWebhook,
    Page,
    PushResult,
    PushUpdate,
    WebhookAck,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)
from sync.mapping import set_path
from sync.vendor import CallStats


class MemoryCursor(Cursor):
    version: int
    id: str

    def sort_key(self) -> tuple[int, str]:
        return (self.version, self.id)


@dataclass
class MemoryCrm:
    """The CRM's data: id → fields, with a version (modification clock) per record."""

    source: str = "memcrm"
    system: str = field(default_factory=lambda: f"memory {uuid.uuid4().hex[:8]}")  # each CRM another system
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)  # ids whose pushes fail
    clock: int = 1_700_000_000_000
    pulls: int = 0
    fetches: int = 0
    push_requests: int = 0
    pushed_records: int = 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def put(self, record_id: str, **fields: Any) -> None:
        self.records[record_id] = {**self.records.get(record_id, {}), **fields}
        self.versions[record_id] = self.tick()
        self.deleted.discard(record_id)

    def delete(self, record_id: str) -> None:
        self.deleted.add(record_id)
        self.versions[record_id] = self.tick()

    def record(self, record_id: str, stream: str) -> CrmRecord:
        return CrmRecord(
            source=self.source,
            object=stream,
            id=record_id,
            fields=dict(self.records.get(record_id, {})),
            version=self.versions.get(record_id),
            deleted=record_id in self.deleted,
            link_rank=int(self.records.get(record_id, {}).get("rank", 0)),
        )


class MemoryConnector:
    """``Connector`` over a ``MemoryCrm``: one stream, ``accounts``; pages of ``page_size``."""

    source: ClassVar[str] = "memcrm"
    streams: ClassVar[tuple[str, ...]] = ("accounts",)
    cursor_type: ClassVar[type[Cursor]] = MemoryCursor

    def __init__(self, crm: MemoryCrm, page_size: int = 100, secret: str = "whsec_memory") -> None:
        self.crm = crm
        self.page_size = page_size
        self.secret = secret.encode()
        self.call_stats = CallStats()
        """Each page, fetch and push batch counts as one call (what a vendor would have been sent)."""
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        since = (cursor.version, cursor.id) if isinstance(cursor, MemoryCursor) else (0, "")
        ordered = sorted(
            (v, rid)
            for rid, v in self.crm.versions.items()
            if (v, rid) >= since  # overlap: >=
        )
        for start in range(0, len(ordered), self.page_size):
            self.crm.pulls += 1
            self.call_stats.sent("pull")
            chunk = ordered[start : start + self.page_size]
            records = [self.crm.record(rid, stream) for _, rid in chunk]
            last_version, last_id = chunk[-1]
            yield Page(records=records, cursor=MemoryCursor(version=last_version, id=last_id))

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]:
        self.crm.fetches += 1
        self.call_stats.sent("fetch")
        return [self.crm.record(rid, stream) for rid in ids if rid in self.crm.versions]

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]:
        results: list[PushResult] = []
        for start in range(0, len(updates), 100):
            self.crm.push_requests += 1
            self.call_stats.sent("push")
            for update in updates[start : start + 100]:
                if update.record_id in self.crm.reject:
                    results.append(PushResult(update.record_id, ok=False, error="INVALID_FIELD: rejected"))
                    continue
                fields: dict[str, Any] = self.crm.records.get(update.record_id, {})
                for path, value in update.fields.items():
                    fields = set_path(fields, path, value)
                self.crm.records[update.record_id] = fields
                self.crm.versions[update.record_id] = self.crm.tick()
                self.crm.pushed_records += 1
                results.append(PushResult(update.record_id, ok=True))
        return results

    def system_id(self) -> str:
        return self.crm.system

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def verify_webhook(self, request: WebhookRequest) -> None:
        given = request.header("X-Memory-Signature") or ""
        if not hmac.compare_digest(given, self.sign(request.body)):
            raise WebhookRejected("bad signature")

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        try:
            events = json.loads(request.body)
            return [
                WebhookEvent(
                    self.source, "accounts", str(e["id"]), str(e["event_id"]), EventKind(e.get("kind", "upsert"))
                )
                for e in events
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedWebhook(str(exc)) from None

    def webhook_ack(self) -> WebhookAck | None:
        return None
