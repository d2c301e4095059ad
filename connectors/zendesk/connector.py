"""``ZendeskConnector``: Zendesk Support organizations as ``CrmRecord``s, over Zendesk's REST API.

One stream, ``organizations``. How each promise of ``sync.connector.Connector`` is kept:

- ``pull(stream, None)`` — the first full read, with cursor pagination (``GET /api/v2/organizations?page[size]=100``,
  then ``page[after]=<meta.after_cursor>`` while ``meta.has_more``): n/100 requests. Each page's cursor can resume an
  interrupted full read; the last one holds where the incremental export takes over (the first answer's ``Date``
  less ``full_read_overlap_s``).
- ``pull(stream, cursor)`` — the time-based incremental export (``GET /api/v2/incremental/organizations?
  start_time=``): up to 1,000 organizations a page, each page's cursor its ``end_time``, until ``end_of_stream``.
  The export has its own per-minute limit; its requests pay from its own budget too.
- ``fetch`` — ``GET /api/v2/organizations/show_many?ids=`` (100 ids a request); an id Zendesk does not answer is
  a deleted organization.
- ``push`` — custom organization fields (``organization_fields.<key>``; ``crmsync setup zendesk`` creates them):
  one ``PUT /api/v2/organizations/{id}`` when one organization changed, else ``PUT /api/v2/organizations/
  update_many`` with up to 100 organizations a job, whose status (``GET /api/v2/job_statuses/{id}``) is followed
  to its end for a result per organization.
- ``system_id`` — the account's host (``acme.zendesk.com``): a Zendesk account is its subdomain.
- ``verify_webhook``/``parse_webhook`` — signed organization events (``webhooks.py``).

Every request goes through ``ZendeskClient`` and so through the one call path of every vendor (``sync.calls``: budgets,
rate headers, retries, statistics, one error table); ``from_config`` takes the mapped ``StreamFields``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
import redis

from connectors.zendesk import webhooks
from connectors.zendesk.client import JOB_DONE, ZendeskClient
from connectors.zendesk.config import ZendeskConfig, load_zendesk_config
from connectors.zendesk.cursor import ZendeskCursor
from connectors.zendesk.errors import ZendeskNotFound, ZendeskRequestFailed
from connectors.zendesk.facts import FACTS
from connectors.zendesk.records import (
    SOURCE,
    STREAM,
    deleted_record,
    field_key,
    organization_fields,
    organization_record,
)
from sync.connector import (
    CrmRecord,
    Cursor,
    Page,
    PushResult,
    PushUpdate,
    StreamFields,
    WebhookAck,
    WebhookEvent,
    WebhookRequest,
)
from sync.errors import ConfigError, RetryableError
from sync.paging import follow
from sync.retry import RetryPolicy
from sync.vendor import CallStats
from sync.vendor_facts import VendorFacts

MAX_IDS = 100
"""``show_many`` and ``update_many`` take up to 100 organizations a request."""


class ZendeskConnector:
    """The Zendesk organizations connector. One instance per Zendesk account (its own client and budgets)."""

    source: ClassVar[str] = SOURCE
    facts: ClassVar[VendorFacts] = FACTS
    streams: ClassVar[tuple[str, ...]] = (STREAM,)
    cursor_type: ClassVar[type[Cursor]] = ZendeskCursor

    def __init__(
        self,
        config: ZendeskConfig,
        redis_client: redis.Redis | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.client = ZendeskClient(config, redis_client, retry, transport)

    @classmethod
    def from_config(
        cls,
        raw: Mapping[str, Any],
        redis_client: redis.Redis | None = None,
        fields: Mapping[str, StreamFields] | None = None,
        key: str = "sources.zendesk.config",
    ) -> ZendeskConnector:
        """The connector for a ``sources.zendesk.config`` block (``connectors.registry``), validated (a bad entry
        raises ``ConfigError`` naming ``<key>.<field>``), paying from the account's shared budgets when Redis is
        given; a mapping whose push-back writes anything but custom organization fields fails here, naming
        ``mappings.zendesk.organizations``."""
        mapped = (fields or {}).get(STREAM)
        refused = [path for path in (mapped.write if mapped is not None else ()) if field_key(path) is None]
        if mapped is not None and refused:
            raise ConfigError(mapped.key, f"{refused[0]}: push-back writes organization_fields.<key> only")
        return cls(load_zendesk_config(raw, key), redis_client)

    def close(self) -> None:
        self.client.close()

    @property
    def call_stats(self) -> CallStats:
        """Requests sent to Zendesk (retries included) and 429s, since the worker last reported them."""
        return self.client.stats

    def system_id(self) -> str:
        """The account's host: one Zendesk account is one subdomain (no request needed)."""
        return f"zendesk:{self.config.host}"

    # -- reads ------------------------------------------------------------------------------------------------

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of organizations: all of them when ``cursor`` is None (or a full read to resume), else those
        changed since (see the module docstring)."""
        self._check_stream(stream)
        if cursor is not None and not isinstance(cursor, ZendeskCursor):
            raise ConfigError("cursor", f"expected a ZendeskCursor, got {type(cursor).__name__}")
        if cursor is None or cursor.in_full_read:
            yield from self._pull_full(cursor)
        else:
            yield from self._pull_since(cursor)

    def _pull_full(self, resume: ZendeskCursor | None) -> Iterator[Page]:
        """Cursor pagination from the start, or from a committed page of an interrupted full read."""
        start_time = resume.start_time if resume is not None else None
        pages = resume.pages if resume is not None else 0

        def fetch(after: str | None) -> tuple[Page, str | None]:
            nonlocal start_time, pages
            token = after if after is not None else (resume.after if resume is not None else None)
            params: dict[str, str | int] = {"page[size]": self.config.page_size}
            if token is not None:
                params["page[after]"] = token
            answer = self.client.call("list organizations", "GET", "/api/v2/organizations", params=params)
            if start_time is None:  # the export takes over from Zendesk's clock at the first answer, less an overlap
                seen_at = answer.server_time if answer.server_time is not None else self.clock()
                start_time = max(0, int(seen_at) - self.config.full_read_overlap_s)
            meta = answer.body.get("meta") or {}
            next_after = str(meta["after_cursor"]) if meta.get("has_more") and meta.get("after_cursor") else None
            pages += 1
            records = [organization_record(org) for org in answer.body.get("organizations") or ()]
            if next_after is None:
                return Page(records, ZendeskCursor(start_time=start_time)), None
            return Page(records, ZendeskCursor(start_time=start_time, after=next_after, pages=pages)), next_after

        yield from follow(fetch, "zendesk organizations")

    def _pull_since(self, cursor: ZendeskCursor) -> Iterator[Page]:
        """The time-based export from the cursor's ``start_time``, each page's ``end_time`` the next one's start."""

        def fetch(start: int | None) -> tuple[Page, int | None]:
            start_time = cursor.start_time if start is None else start
            answer = self.client.call(
                "export organizations",
                "GET",
                "/api/v2/incremental/organizations",
                params={"start_time": start_time},
                export=True,
            )
            body = answer.body
            end_time = body.get("end_time")
            next_start = max(start_time, int(end_time)) if isinstance(end_time, int | float) else start_time
            records = [organization_record(org) for org in body.get("organizations") or ()]
            done = bool(body.get("end_of_stream", True)) or next_start == start_time
            return Page(records, ZendeskCursor(start_time=next_start)), None if done else next_start

        yield from follow(fetch, "zendesk incremental organizations")

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]:
        """Current state by id, 100 a request; ids Zendesk does not answer come back ``deleted=True``."""
        self._check_stream(stream)
        wanted = list(dict.fromkeys(ids))
        found: dict[str, CrmRecord] = {}
        numeric = [i for i in wanted if i.isdigit()]
        for start in range(0, len(numeric), MAX_IDS):
            chunk = numeric[start : start + MAX_IDS]
            answer = self.client.call(
                "show organizations", "GET", "/api/v2/organizations/show_many", params={"ids": ",".join(chunk)}
            )
            for org in answer.body.get("organizations") or ():
                record = organization_record(org)
                found[record.id] = record
        return [found.get(i) or deleted_record(i) for i in wanted]

    # -- writes -----------------------------------------------------------------------------------------------

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]:
        """Write custom organization fields: one PUT for a single organization, else bulk jobs of up to 100."""
        self._check_stream(stream)
        results: list[PushResult] = []
        bodies: list[tuple[str, dict[str, Any]]] = []
        for update in updates:
            if not update.record_id.isdigit():
                results.append(PushResult(update.record_id, ok=False, error="not a Zendesk organization id"))
                continue
            try:
                fields = organization_fields(update.fields)
            except ValueError as exc:
                results.append(PushResult(update.record_id, ok=False, error=str(exc)))
                continue
            bodies.append((update.record_id, {"id": int(update.record_id), "organization_fields": fields}))
        if len(bodies) == 1:
            results.append(self._push_one(*bodies[0]))
            return results
        for start in range(0, len(bodies), MAX_IDS):
            results.extend(self._push_job(bodies[start : start + MAX_IDS]))
        return results

    def _push_one(self, record_id: str, body: dict[str, Any]) -> PushResult:
        update = {"organization": {"organization_fields": body["organization_fields"]}}
        try:
            self.client.call("update organization", "PUT", f"/api/v2/organizations/{record_id}", json=update)
        except ZendeskNotFound:
            return PushResult(record_id, ok=False, error="the organization no longer exists")
        except ZendeskRequestFailed as exc:  # refused as invalid (422: e.g. a field `crmsync setup zendesk` makes)
            return PushResult(record_id, ok=False, error=str(exc))
        except RetryableError as exc:
            return PushResult(record_id, ok=False, error=str(exc), retryable=True)
        return PushResult(record_id, ok=True)

    def _push_job(self, chunk: list[tuple[str, dict[str, Any]]]) -> list[PushResult]:
        """One ``update_many`` job for ``chunk`` and its status followed to the end: a result per organization."""
        ids = [record_id for record_id, _ in chunk]
        try:
            answer = self.client.call(
                "update organizations",
                "PUT",
                "/api/v2/organizations/update_many",
                json={"organizations": [body for _, body in chunk]},
            )
            job = answer.body.get("job_status") or {}
            if str(job.get("status")) not in JOB_DONE:
                job = self.client.job_status(str(job.get("id")))
        except RetryableError as exc:
            return [PushResult(i, ok=False, error=str(exc), retryable=True) for i in ids]
        except (ZendeskRequestFailed, ZendeskNotFound) as exc:  # auth failures go up: they stop the run
            return [PushResult(i, ok=False, error=str(exc)) for i in ids]
        return job_results(job, ids)

    # -- webhooks ---------------------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = self.config.webhook_secret.get_secret_value() if self.config.webhook_secret else None
        webhooks.verify(request, secret, self.config.webhook_tolerance_s, self.clock())

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        return webhooks.parse(request)

    def webhook_ack(self) -> WebhookAck | None:
        return None

    def _check_stream(self, stream: str) -> None:
        if stream != STREAM:
            raise ConfigError("stream", f"zendesk has one stream, {STREAM}; not {stream}")


def job_results(job: Mapping[str, Any], ids: list[str]) -> list[PushResult]:
    """A result per organization of a finished ``update_many`` job (``results`` name each by ``id`` or by its
    ``index`` in the request); an organization the job does not mention was not written (retryable)."""
    by_id: dict[str, PushResult] = {}
    for item in job.get("results") or ():
        if not isinstance(item, dict):
            continue
        record_id = str(item["id"]) if item.get("id") is not None else None
        index = item.get("index")
        if record_id not in ids and isinstance(index, int) and 0 <= index < len(ids):
            record_id = ids[index]
        if record_id is None or record_id not in ids:
            continue
        ok = item.get("success") is True or str(item.get("status")) in ("Updated", "Created")
        error = None if ok else str(item.get("details") or item.get("error") or item.get("status") or "failed")
        by_id[record_id] = PushResult(record_id, ok=ok, error=error)
    status = str(job.get("status"))
    missing = f"the update job ended {status} without a result for it"
    return [by_id.get(i) or PushResult(i, ok=False, error=missing, retryable=status != "completed") for i in ids]
