"""The small protocol every CRM connector implements, and the values that cross it.

A connector is a folder (``connectors/<crm>/``) with a class satisfying ``Connector``:

- ``pull(stream, cursor)`` yields ``Page``s of ``CrmRecord``s, each with the cursor *after* that page. A
  ``None`` cursor means a full read; the engine stores a page's cursor only once the page is committed, so a
  cursor never moves past uncommitted work. Cursors only move forward.
- ``fetch(stream, ids)`` reads current state by id (webhook refreshes: apply "fetch current state", never a
  delta). Ids that no longer exist come back as records with ``deleted=True``.
- ``push(stream, updates)`` writes fields back to the CRM in batches and reports a result per record.
- ``system_id()`` names the system the connector talks to (HubSpot portal, Stripe account and mode, Salesforce
  org), found through the vendor's API on first use and cached: the ledger's state of this source is bound to it
  (``sync.state``), so state recorded for another system is never used.
- ``verify_webhook(request)`` raises ``WebhookRejected`` unless the delivery is authentic and fresh;
  ``parse_webhook(request)`` turns a verified delivery into ``WebhookEvent``s.
- ``call_stats`` counts the vendor requests sent and the 429s received (``sync.vendor.CallStats``); the
  worker adds them to ``/metrics`` after each task (``crmsync_api_calls_total{vendor}``).
- ``close()`` releases the connector's connections; the runtime calls it when it shuts down.

Vendor SDK errors are translated at the connector's edge into ``sync.errors``: ``RetryableError`` (429, 5xx,
timeouts), ``FatalError`` (auth, permissions, exhausted allowances) or ``BadRecordError`` (one record).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

from sync.errors import CrmsyncError
from sync.vendor import CallStats

if TYPE_CHECKING:
    from sync.mapping import ObjectMapping


class Cursor(BaseModel):
    """Where an incremental read got to. Each connector subclasses it with typed fields (epoch values in UTC).

    ``sort_key`` orders cursors so the engine can refuse to move one backwards; ``dump``/``load`` are the
    string form kept in the ledger.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def sort_key(self) -> tuple[Any, ...]:
        return tuple(self.model_dump().values())

    def dump(self) -> str:
        return self.model_dump_json()

    @classmethod
    def load(cls, raw: str) -> Self:
        return cls.model_validate_json(raw)


@dataclass(frozen=True)
class StreamFields:
    """The fields one stream's mapping reads and writes: what a connector is given at construction instead of the
    whole mapping config (``connectors.registry.build_connector`` builds it from ``mappings.<source>.<stream>``).

    - ``key``: the mapping key they come from (``mappings.salesforce.Account``), for errors.
    - ``read``: the source paths the mapping reads, each once; ``read_keys[i]`` is the mapping key naming
      ``read[i]`` (``mappings.salesforce.Account.fields.3.source``).
    - ``write``: the fields push-back writes, each once: ``account_id_field`` first, then the other systems' ids
      (``link_fields``) and the outbound fields; a connector reads them back on every pull.
    - ``account_id_field``: the written field that holds the PostHog account id, if any.
    """

    key: str
    read: tuple[str, ...] = ()
    read_keys: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    account_id_field: str | None = None

    @classmethod
    def of(cls, mapping: ObjectMapping, key: str) -> StreamFields:
        """The fields of one object mapping (``mappings.<source>.<stream>``, named ``key``)."""
        read: dict[str, str] = {}
        for n, fm in enumerate(mapping.fields):
            for path in fm.paths:
                read.setdefault(path, f"{key}.fields.{n}.source")
        return cls(key, tuple(read), tuple(read.values()), mapping.written, mapping.account_id_field)


@dataclass(frozen=True)
class CrmRecord:
    """One CRM object as the engine sees it.

    ``object`` is the stream name the mapping is keyed by (``deals``, ``customers``, ``Account``). ``fields`` is
    the vendor's record (nested mappings allowed; the mapping addresses them with dotted paths like
    ``Owner.Email``); ``push`` names the fields it writes by the same dotted paths
    (``metadata.posthog_account_id``). ``version`` is the source's modification time in epoch milliseconds
    (for ``newest_wins``). ``merged_ids`` lists ids this record absorbed
    in a CRM merge. ``link_rank`` orders records of one source competing for one account's link (higher keeps
    it: e.g. the most recently created open deal of a company).
    """

    source: str
    object: str
    id: str
    fields: Mapping[str, Any]
    version: int | None = None
    modified_at: datetime | None = None
    deleted: bool = False
    merged_ids: tuple[str, ...] = ()
    link_rank: int = 0


@dataclass(frozen=True)
class Page:
    """A batch of records from ``pull`` and the cursor to store once all of them are committed."""

    records: Sequence[CrmRecord]
    cursor: Cursor | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PushUpdate:
    """Fields to write on one CRM record (``None`` clears a field) and the fingerprint of what is written."""

    record_id: str
    fields: Mapping[str, str | None]
    fingerprint: str


@dataclass(frozen=True)
class PushResult:
    """What happened to one ``PushUpdate``: ``ok``, or an error that says whether retrying may help."""

    record_id: str
    ok: bool
    error: str | None = None
    retryable: bool = False


class EventKind(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    MERGE = "merge"


@dataclass(frozen=True)
class WebhookEvent:
    """A verified notification that one CRM record changed: refresh it by id."""

    source: str
    object: str
    id: str
    event_id: str
    kind: EventKind = EventKind.UPSERT
    occurred_at_ms: int | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook delivery exactly as received: verification needs the raw bytes and the full URI."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """What a connector parsed from the body while verifying it, so parsing happens once per delivery (a copy made
    with ``dataclasses.replace`` starts empty: its body may differ)."""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class WebhookAck:
    """What the receiver answers an accepted delivery with, for vendors that expect a particular answer."""

    body: bytes
    media_type: str


class WebhookRejected(CrmsyncError):
    """A delivery that failed verification (bad or missing signature, stale timestamp, wrong org)."""


class MalformedWebhook(CrmsyncError):
    """A verified delivery whose body cannot be parsed into events."""


@runtime_checkable
class Connector(Protocol):
    """What the engine needs from a CRM. See the module docstring for the contract."""

    source: ClassVar[str]
    streams: ClassVar[tuple[str, ...]]
    cursor_type: ClassVar[type[Cursor]]

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]: ...

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]: ...

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]: ...

    def system_id(self) -> str: ...

    def verify_webhook(self, request: WebhookRequest) -> None: ...

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]: ...

    def webhook_ack(self) -> WebhookAck | None:
        """The body an accepted delivery is answered with, when the vendor expects one (Salesforce's SOAP ``Ack``);
        None: the receiver answers with its own small JSON."""
        ...

    @property
    def call_stats(self) -> CallStats: ...

    def close(self) -> None: ...
