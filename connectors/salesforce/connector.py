"""The Salesforce connector: Accounts in (SOQL ``queryAll``), PostHog ids out (sObject Collections), Outbound
Messages as webhooks. Implements ``sync.connector.Connector`` through simple-salesforce.

- ``pull`` reads ``SELECT <fields> FROM Account WHERE <after the settled position> ORDER BY SystemModstamp, Id``
  through ``queryAll`` (so deleted rows arrive with ``IsDeleted = true`` and unlink their account), following
  ``nextRecordsUrl`` page by page; each page carries the cursor to commit after it (``cursor.py``). Before each
  further page it checks the org's API allowance and, past this run's share, ends the pull with a note.
- ``fetch`` reads given ids with ``Id IN (...)`` (``queryAll``); ids that no longer exist come back deleted.
- ``push`` writes fields with ``PATCH composite/sobjects`` (``allOrNone: false``), up to 200 records a request;
  each record's success or error is reported on its own.
- ``verify_webhook`` / ``parse_webhook`` accept Outbound Messages from the configured org on the endpoint holding
  the secret token; ``webhook_ack`` is the SOAP answer Salesforce expects.
- ``upsert_by_external_id`` / ``find_by_external_id`` address Accounts by External ID in the URL, percent-encoded.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote_plus, urlsplit

import redis
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from connectors.salesforce import soql
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.config import FIELD_RE, SYSTEM_FIELDS, SalesforceConfig, load_salesforce_config, unique_paths
from connectors.salesforce.cursor import ReadProgress, SalesforceCursor, position
from connectors.salesforce.errors import SalesforceRequestFailed, error_items
from connectors.salesforce.facts import FACTS
from connectors.salesforce.fields import mapping_fields, written_fields
from connectors.salesforce.records import SOURCE, epoch_ms, gone, modstamp_ms, parse_datetime, to_record
from connectors.salesforce.webhooks import ACK_CONTENT_TYPE, NotAnOutboundMessage, ack_body, message_of, same_org
from sync.connector import (
    CrmRecord,
    Cursor,
    EventKind,
    MalformedWebhook,
    Page,
    PushResult,
    PushUpdate,
    StreamFields,
    WebhookAck,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)
from sync.errors import ConfigError, RetryableError
from sync.paging import follow
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import CallStats
from sync.vendor_facts import VendorFacts

log = logging.getLogger(__name__)

RETRYABLE_RECORD_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"})
"""Per-record ``statusCode``s that a later push of the same record may get past."""
MAX_LOCATOR_RESTARTS = 3
ORIGIN = position(0, "")
SYSTEM_NAMES = frozenset(name.lower() for name in SYSTEM_FIELDS)


def _batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SalesforceConnector:
    """Accounts of one Salesforce org. One instance per org and worker; ``close()`` releases its connections.

    ``fields`` (what the ``mappings.salesforce.Account`` section reads and writes, ``sync.connector.StreamFields``)
    says what push-back writes (``written_fields``) and adds the fields the mapping reads to those of ``config``,
    so the records always carry what the mapping addresses;
    ``key`` is where ``config`` came from, for errors. ``redis_client`` enables the shared request budget
    (``config.requests_per_s``).
    """

    source: ClassVar[str] = SOURCE
    facts: ClassVar[VendorFacts] = FACTS
    streams: ClassVar[tuple[str, ...]] = ("Account",)
    cursor_type: ClassVar[type[Cursor]] = SalesforceCursor

    def __init__(
        self,
        config: SalesforceConfig,
        redis_client: redis.Redis | None = None,
        fields: StreamFields | None = None,
        retry: RetryPolicy | None = None,
        *,
        key: str = "sources.salesforce.config",
    ) -> None:
        self.config = config
        self.written = written_fields(config, fields, key)
        budget = (
            TokenBucket(redis_client, config.bucket_key, config.burst, config.requests_per_s)
            if redis_client is not None
            else None
        )
        self.client = SalesforceClient(config, budget, retry)
        read, _ = mapping_fields(fields) if fields is not None else (set(), set())
        self.fields: tuple[str, ...] = unique_paths([*config.read_fields, *self.written, *sorted(read)])
        self._batch_header = {"Sforce-Query-Options": f"batchSize={config.page_size}"}
        self._system: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        raw: Mapping[str, Any],
        redis_client: redis.Redis | None = None,
        fields: Mapping[str, StreamFields] | None = None,
        key: str = "sources.salesforce.config",
    ) -> SalesforceConnector:
        """The connector for a ``sources.salesforce.config`` block (``connectors.registry``): the block validated
        (a bad entry raises ``ConfigError`` naming ``<key>.<field>``), the shared request budget in Redis, and the
        fields the ``mappings.salesforce.Account`` section reads and writes when there is one, so every field it
        addresses is read, a bad field path fails at start-up, and so does a legacy setting that disagrees with it
        (``written_fields``)."""
        account = (fields or {}).get("Account")
        return cls(load_salesforce_config(raw, key), redis_client, account, key=key)

    def close(self) -> None:
        """Close the HTTP session (its pooled TLS connections)."""
        self.client.close()

    @property
    def call_stats(self) -> CallStats:
        """Requests sent to Salesforce (logins included) and refusals, since the worker last reported them."""
        return self.client.stats

    def system_id(self) -> str:
        """``org <18-character organisation id>``: ``organization_id`` of the OAuth UserInfo endpoint
        (``GET <instance>/services/oauth2/userinfo``), asked once per connector, then cached.

        A configured ``organization_id`` (the org Outbound Messages are accepted from) that names another org is
        a config error: the login and the webhooks would be two different orgs."""
        if self._system is None:
            info = self.client.call("userinfo", lambda sf: sf.oauth2("userinfo"))
            org = info.get("organization_id") if isinstance(info, Mapping) else None
            if not isinstance(org, str) or len(org) not in (15, 18):
                raise SalesforceRequestFailed("userinfo: the answer names no organization_id", 200, None)
            configured = self.config.organization_id
            if configured and not same_org(org, configured):
                raise ConfigError(
                    "sources.salesforce.config.organization_id",
                    f"the login belongs to org {org}, not {configured}",
                )
            self._system = f"org {org}"
        return self._system

    # -- reads ---------------------------------------------------------------------------------------------

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of records changed after ``cursor`` (everything when None), each with the cursor to commit."""
        self._check_stream(stream)
        start = self._own_cursor(cursor)
        allowance = self.client.allowance
        allowance.begin_run()
        reason = allowance.stop_reason()
        if reason is not None:
            yield Page((), start, (reason,))
            return
        progress: ReadProgress | None = None
        committed = start
        restarts = 0

        def step(url: str | None) -> tuple[Page, str | None]:
            """One page: the query's first (``url`` None) or the one at ``nextRecordsUrl``; an expired query
            locator opens the query again after the committed position (at most ``MAX_LOCATOR_RESTARTS`` times)."""
            nonlocal progress, committed, restarts
            if url is None:
                answer, progress = self._open_query(stream, start)
            else:
                reason = allowance.stop_reason()
                if reason is not None:
                    return Page((), committed, (reason,)), None
                try:
                    answer = self._next_page(f"query {stream} (next page)", url)
                except SalesforceRequestFailed as exc:
                    if exc.code != "INVALID_QUERY_LOCATOR" or restarts >= MAX_LOCATOR_RESTARTS:
                        raise
                    restarts += 1
                    log.warning("salesforce query locator expired; querying again after the committed position")
                    answer, progress = self._open_query(stream, committed)
            rows: list[Mapping[str, Any]] = list(answer.get("records") or [])
            records = [to_record(row, stream) for row in rows]
            done = bool(answer.get("done"))
            assert progress is not None  # every branch above opened or continued a query
            progress.advance(records, [modstamp_ms(row) for row in rows], done)
            committed = progress.cursor()
            if done:
                return Page(records, committed), None
            next_url = answer.get("nextRecordsUrl")
            if not isinstance(next_url, str) or not next_url:
                raise SalesforceRequestFailed(f"query {stream}: a page not done has no nextRecordsUrl", None, None)
            return Page(records, committed), next_url

        yield from follow(step, f"salesforce: query {stream}")

    def _open_query(self, stream: str, start: SalesforceCursor | None) -> tuple[dict[str, Any], ReadProgress]:
        where = None
        if start is not None and start.settled != ORIGIN:
            where = soql.after(start.settled_ms, start.settled_id)
        text = soql.select(self.fields, stream, where)
        sent_at = time.time()
        page = self._first_page(f"query {stream}", text)
        now = min(sent_at, self.client.server_time or sent_at)
        horizon_ms = (int(now) - self.config.overlap_s) * 1000
        return page, ReadProgress.start(start, horizon_ms)

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]:
        """Current state of ``ids`` (15- or 18-character); ids that no longer exist come back ``deleted``."""
        self._check_stream(stream)
        canonical = {rid: soql.canonical_id(rid) for rid in ids}
        wanted = list(dict.fromkeys(c for c in canonical.values() if c))
        found: dict[str, CrmRecord] = {}
        for chunk in self._id_batches(stream, wanted):
            text = soql.select(self.fields, stream, f"Id IN {soql.id_list(chunk)}", ordered=False)
            for row in self._all_rows(stream, text):
                record = to_record(row, stream)
                found[record.id] = record
        out: dict[str, CrmRecord] = {}
        for rid, c in canonical.items():
            key = c or rid
            if key not in out:
                out[key] = found.get(key) or gone(key, stream)
        return list(out.values())

    def _id_batches(self, stream: str, ids: Sequence[str]) -> Iterator[list[str]]:
        """``ids`` in groups of at most ``fetch_batch_size`` whose ``queryAll/?q=...`` URI stays within
        ``max_uri_chars`` (2,000: Salesforce's recommendation, Help article 000386264) and, with the headers sent
        with it, within ``max_request_bytes`` (Salesforce answers 431/414 past 16,384 bytes)."""
        if not ids:
            return
        path, header_bytes = self.client.request_overhead(self._batch_header)
        head = soql.select(self.fields, stream, "Id IN ", ordered=False)
        uri = len(f"{path}queryAll/?q=") + len(quote_plus(head))
        room = min(self.config.max_request_bytes - uri - header_bytes, self.config.max_uri_chars - uri)
        yield from soql.id_batches(ids, self.config.fetch_batch_size, max(room, 1))

    def _all_rows(self, stream: str, text: str) -> Iterator[Mapping[str, Any]]:
        def page(url: str | None) -> tuple[list[Mapping[str, Any]], str | None]:
            if url is None:
                answer = self._first_page(f"read {stream}", text)
            else:
                answer = self._next_page(f"read {stream} (next page)", url)
            next_url = answer.get("nextRecordsUrl")
            more = not answer.get("done") and isinstance(next_url, str) and next_url
            return list(answer.get("records") or []), str(next_url) if more else None

        for rows in follow(page, f"salesforce: read {stream}"):
            yield from rows

    def _first_page(self, what: str, text: str) -> dict[str, Any]:
        """``GET queryAll/?q=...`` with the configured page size."""

        def run(sf: Salesforce) -> dict[str, Any]:
            return dict(sf.query(text, include_deleted=True, headers=self._batch_header))

        return self.client.call(what, run)

    def _next_page(self, what: str, url: str) -> dict[str, Any]:
        """``GET <nextRecordsUrl>`` with the configured page size."""

        def run(sf: Salesforce) -> dict[str, Any]:
            return dict(sf.query_more(url, identifier_is_url=True, headers=self._batch_header))

        return self.client.call(what, run)

    # -- writes --------------------------------------------------------------------------------------------

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]:
        """Write each update's fields (``None`` clears one) with sObject Collections, 200 records a request.

        Per-record errors come back as ``PushResult(ok=False)`` while the other records land; a request that
        fails as a whole for a transient reason fails its records as retryable; authentication and allowance
        failures raise (the run stops).
        """
        self._check_stream(stream)
        results: dict[int, PushResult] = {}
        sendable: list[tuple[int, PushUpdate, dict[str, Any]]] = []
        for n, update in enumerate(updates):
            problem, body = self._collection_record(stream, update)
            if problem is not None:
                results[n] = PushResult(update.record_id, False, problem)
            else:
                sendable.append((n, update, body))
        for chunk in _batched(sendable, self.config.push_batch_size):
            payload = {"allOrNone": False, "records": [body for _, _, body in chunk]}
            try:
                answer = self._collection_patch(f"push {len(chunk)} {stream}", payload)
            except RetryableError as exc:
                for n, update, _ in chunk:
                    results[n] = PushResult(update.record_id, False, str(exc), retryable=True)
                continue
            items = answer if isinstance(answer, list) else []
            if len(items) != len(chunk):
                for n, update, _ in chunk:
                    text = f"sObject Collections answered {len(items)} results for {len(chunk)} records"
                    results[n] = PushResult(update.record_id, False, text, retryable=True)
                continue
            for (n, update, _), item in zip(chunk, items, strict=True):
                results[n] = self._push_result(update, item)
        return [results[n] for n in range(len(updates))]

    def _collection_patch(self, what: str, payload: dict[str, Any]) -> Any:
        def run(sf: Salesforce) -> Any:
            return sf.restful("composite/sobjects", method="PATCH", json=payload)

        return self.client.call(what, run)

    def _collection_record(self, stream: str, update: PushUpdate) -> tuple[str | None, dict[str, Any]]:
        record_id = soql.canonical_id(update.record_id)
        if record_id is None:
            return f"not a Salesforce record id: {update.record_id!r}", {}
        body: dict[str, Any] = {"attributes": {"type": stream}, "id": record_id}
        for name, value in update.fields.items():
            if not FIELD_RE.match(name):
                return f"{name}: only plain fields can be written, not relationship paths", {}
            if name.lower() in SYSTEM_NAMES:
                return f"{name}: a system field cannot be written", {}
            body[name] = value
        return None, body

    @staticmethod
    def _push_result(update: PushUpdate, item: Any) -> PushResult:
        if isinstance(item, Mapping) and item.get("success") is True:
            return PushResult(update.record_id, True)
        errors = error_items(item.get("errors") if isinstance(item, Mapping) else None)
        if not errors:
            return PushResult(update.record_id, False, "rejected without a reason", retryable=False)
        text = "; ".join(f"{code}: {message}" for code, message in errors)
        retryable = all(code in RETRYABLE_RECORD_ERRORS for code, _ in errors)
        return PushResult(update.record_id, False, text, retryable=retryable)

    # -- External IDs --------------------------------------------------------------------------------------

    def _external_path(self, stream: str, external_id: str) -> str:
        self._check_stream(stream)
        return f"sobjects/{stream}/{self.config.external_id_field}/{soql.path_segment(external_id)}"

    def find_by_external_id(self, external_ids: Sequence[str], stream: str = "Account") -> dict[str, list[str]]:
        """Record ids per External ID value (``GET sobjects/Account/<field>/<value>``, one request each).

        Values no record holds map to ``[]``; a value several records hold maps to all of them. Matching is
        Salesforce's: case-insensitive, recycle bin excluded.
        """
        out: dict[str, list[str]] = {}
        for value in dict.fromkeys(external_ids):
            try:
                path = self._external_path(stream, value)
            except ValueError:
                out[value] = []
                continue

            def lookup(sf: Salesforce, path: str = path) -> list[str]:
                try:
                    found = sf.restful(path, params={"fields": "Id"})
                except SalesforceResourceNotFound as exc:
                    if any("external id field" in message.lower() for _, message in error_items(exc.content)):
                        raise
                    return []
                except SalesforceMoreThanOneRecord as exc:
                    urls: list[Any] = exc.content if isinstance(exc.content, list) else []
                    return [str(url).rstrip("/").rsplit("/", 1)[-1] for url in urls]
                return [str(found["Id"])] if isinstance(found, Mapping) and found.get("Id") else []

            out[value] = self.client.call(f"find {stream} by External ID", lookup)
        return out

    def upsert_by_external_id(
        self, external_id: str, fields: Mapping[str, str | None], stream: str = "Account"
    ) -> tuple[PushResult, bool]:
        """Update the record holding ``external_id`` or create it (``PATCH .../<field>/<value>``).

        Returns the result (``record_id`` is the Salesforce id when it worked) and whether a record was created.
        Record errors and several matching records come back as ``ok=False``.
        """
        try:
            path = self._external_path(stream, external_id)
        except ValueError as exc:
            return PushResult(external_id, False, str(exc)), False
        for name in fields:
            if not FIELD_RE.match(name) or name.lower() == self.config.external_id_field.lower():
                return PushResult(external_id, False, f"{name}: cannot be written by External ID upsert"), False

        def upsert(sf: Salesforce) -> tuple[str | None, bool, str | None]:
            try:
                answer = sf.restful(path, method="PATCH", json=dict(fields))
            except SalesforceMoreThanOneRecord:
                return None, False, f"MULTIPLE_RECORDS: several {stream} records hold this External ID"
            except SalesforceMalformedRequest as exc:
                return None, False, "; ".join(f"{c}: {m}" for c, m in error_items(exc.content)) or "rejected"
            if isinstance(answer, Mapping) and answer.get("id"):
                return str(answer["id"]), bool(answer.get("created")), None
            return None, False, None  # 204 from API versions before 46.0: updated, id not returned

        record_id, created, error = self.client.call(f"upsert {stream} by External ID", upsert)
        if error is not None:
            return PushResult(external_id, False, error), False
        if record_id is None:
            found = self.find_by_external_id([external_id], stream).get(external_id) or []
            record_id = found[0] if len(found) == 1 else None
        if record_id is None:
            return PushResult(external_id, False, "saved, but the record id could not be read back"), created
        return PushResult(record_id, True), created

    # -- webhooks ------------------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Accept only an Outbound Message from the configured org, posted to the endpoint holding the token.

        Outbound Messages carry no signature. Besides the token and the organisation id, the body must be exactly
        as long as its ``Content-Length`` says (when the header is there) and be a well-formed message.
        """
        config = self.config
        if not config.organization_id or config.webhook_token is None:
            raise WebhookRejected("Outbound Messages are not configured (organization_id and webhook_token)")
        if request.method.upper() != "POST":
            raise WebhookRejected(f"Outbound Messages are POSTed, not {request.method}")
        token = request.path_params.get("token") or urlsplit(request.url).path.rstrip("/").rsplit("/", 1)[-1]
        if not hmac.compare_digest(token.encode(), config.webhook_token.get_secret_value().encode()):
            raise WebhookRejected("unknown endpoint token")
        if len(request.body) > config.webhook_max_body_bytes:
            raise WebhookRejected(f"body larger than {config.webhook_max_body_bytes} bytes")
        declared = request.header("Content-Length")
        if declared is not None and declared.strip() != str(len(request.body)):
            raise WebhookRejected("body length differs from its Content-Length: altered or truncated")
        content_type = request.header("Content-Type")
        if content_type is not None and "xml" not in content_type.lower():
            raise WebhookRejected(f"expected a SOAP (text/xml) body, got {content_type.split(';')[0]}")
        try:
            message = message_of(request)
        except NotAnOutboundMessage as exc:
            raise WebhookRejected(f"not an Outbound Message: {exc}") from None
        if not same_org(message.organization_id, config.organization_id):
            raise WebhookRejected("Outbound Message from another organization")

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """One refresh event per notification of a synced sObject (others are ignored)."""
        try:
            message = message_of(request)
        except NotAnOutboundMessage as exc:
            raise MalformedWebhook(str(exc)) from None
        events: list[WebhookEvent] = []
        for note in message.notifications:
            if note.sobject not in self.streams:
                log.info("ignoring an Outbound Message notification for %s", note.sobject)
                continue
            record_id = soql.canonical_id(note.record_id)
            if record_id is None:
                raise MalformedWebhook(f"notification {note.id}: not a record id")
            stamp = parse_datetime(note.fields.get("SystemModstamp") or note.fields.get("LastModifiedDate"))
            events.append(
                WebhookEvent(
                    source=self.source,
                    object=note.sobject,
                    id=record_id,
                    event_id=note.id,
                    kind=EventKind.UPSERT,
                    occurred_at_ms=epoch_ms(stamp) if stamp else None,
                )
            )
        return events

    def webhook_ack(self) -> WebhookAck | None:
        """Salesforce retries an Outbound Message until it is answered with the SOAP ``Ack`` true."""
        return WebhookAck(ack_body(True), ACK_CONTENT_TYPE)

    # -- helpers -------------------------------------------------------------------------------------------

    def _check_stream(self, stream: str) -> None:
        if stream not in self.streams:
            raise ConfigError(f"streams.{stream}", f"the Salesforce connector syncs {', '.join(self.streams)}")

    @staticmethod
    def _own_cursor(cursor: Cursor | None) -> SalesforceCursor | None:
        if cursor is None or isinstance(cursor, SalesforceCursor):
            return cursor
        return SalesforceCursor.load(cursor.dump())
