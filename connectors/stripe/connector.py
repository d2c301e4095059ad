"""``StripeConnector``: Stripe customers as ``CrmRecord``s, through the official SDK (``stripe.StripeClient``).

One stream, ``customers``. How each promise of ``sync.connector.Connector`` is kept:

- ``pull(stream, None)`` — full sync: ended subscriptions in bulk (``status=ended``, 100 a page), then every
  customer newest first, ``limit=100`` with ``starting_after``, current subscriptions embedded. About n/100 list
  requests plus the bulk subscription read; never one request per customer. Each page's cursor can resume an
  interrupted full sync; the last one holds the time the sync started.
- ``pull(stream, cursor)`` — incremental: ``/v1/events`` since the cursor (minus a lookback), the whole window
  collected and de-duplicated by event id (``EventWindow``), then each changed customer's current state read
  once (one request each, or the whole customer list when that is cheaper), applied, and only then the cursor
  moved, on the window's last page. A cursor older than Stripe's event retention runs a full sync instead, and
  the page notes (copied into the run report) say so.
- ``fetch`` — current state by id; deleted and unknown customers come back ``deleted=True``.
- ``push`` — ``metadata.<key>`` and a few top-level fields, one idempotent request per customer (``push.py``).
- ``verify_webhook``/``parse_webhook`` — ``Stripe-Signature`` with several secrets and a tolerance (``webhooks.py``).

Every request goes through the one call path (``connectors.stripe.client``, ``sync.calls``): one token of the
account's shared Redis budget per attempt, Stripe's retry rule, SDK errors translated into ``sync.errors``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import redis

from connectors.stripe import webhooks
from connectors.stripe.client import StripeCalls
from connectors.stripe.config import ENDED_STATUSES, StripeConfig, load_stripe_config
from connectors.stripe.cursor import StripeCursor
from connectors.stripe.errors import StripeRequestFailed
from connectors.stripe.events import EventWindow
from connectors.stripe.facts import FACTS
from connectors.stripe.push import StripePusher
from connectors.stripe.reader import StripeReader
from connectors.stripe.records import JSON, STREAM, customer_record, deleted_record
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
from sync.ratelimit import TokenBucket
from sync.vendor import CallStats
from sync.vendor_facts import VendorFacts

_STALE_MARGIN_S = 3600.0
"""A cursor this close to the retention edge already counts as stale: its oldest events may be pruned mid-read."""


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class StripeConnector:
    """The Stripe customers connector. One instance per Stripe account (its own client, key and budget)."""

    source: ClassVar[str] = "stripe"
    facts: ClassVar[VendorFacts] = FACTS
    streams: ClassVar[tuple[str, ...]] = (STREAM,)
    cursor_type: ClassVar[type[Cursor]] = StripeCursor

    def __init__(
        self,
        config: StripeConfig,
        budget: TokenBucket | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.client = StripeCalls(config, budget)
        self.reader = StripeReader(self.client, config)
        self.pusher = StripePusher(self.client, config.idempotency_prefix)
        self._system: str | None = None
        self.last_window: EventWindow | None = None
        """The event window of the latest incremental read (its counters say what was de-duplicated)."""

    @classmethod
    def from_config(
        cls,
        raw: Mapping[str, Any],
        redis_client: redis.Redis | None = None,
        fields: Mapping[str, StreamFields] | None = None,
        key: str = "sources.stripe.config",
    ) -> StripeConnector:
        """The connector for a ``sources.stripe.config`` block (``connectors.registry``), validated (a bad entry
        raises ``ConfigError`` naming ``<key>.<field>``), paying from the account's shared budget when Redis is
        given. The mapped fields are not needed: the customer fields read are the SDK's whole object."""
        config = load_stripe_config(raw, key)
        return cls(config) if redis_client is None else cls.with_shared_budget(config, redis_client)

    @classmethod
    def with_shared_budget(cls, config: StripeConfig, redis_client: redis.Redis) -> StripeConnector:
        """A connector whose requests pay from the account's budget in Redis, shared by every worker."""
        bucket = TokenBucket(redis_client, config.bucket_key, config.burst, config.requests_per_s)
        return cls(config, bucket)

    @property
    def call_stats(self) -> CallStats:
        """HTTP attempts sent to Stripe (retries included) and 429s, since the worker last reported them."""
        return self.client.calls.stats

    def _check(self, stream: str) -> None:
        if stream not in self.streams:
            raise ConfigError(f"mappings.stripe.{stream}", "the Stripe connector syncs only the customers stream")

    # -- pull -----------------------------------------------------------------------------------------------

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of customers since ``cursor`` (all of them when ``None``); see the module docstring."""
        self._check(stream)
        if cursor is not None and not isinstance(cursor, StripeCursor):
            raise ConfigError(f"cursor:stripe:{stream}", f"not a Stripe cursor: {type(cursor).__name__}")
        if cursor is None:
            yield from self._full(None, ())
            return
        retention_s = self.config.event_retention_days * 86_400
        if cursor.is_stale(self.clock(), retention_s, self.config.event_lookback_s, _STALE_MARGIN_S):
            note = (
                f"stripe: cursor at {_iso(cursor.created)} is older than the {self.config.event_retention_days:g}-day "
                "event retention; ran a full sync instead of an incremental one"
            )
            yield from self._full(None, (note,))
        elif cursor.in_full_sync:
            yield from self._resume(cursor)
        else:
            yield from self._incremental(cursor)

    def _resume(self, cursor: StripeCursor) -> Iterator[Page]:
        """Go on with an interrupted full sync; start it over if Stripe no longer knows the resume point."""
        pages = self._full(cursor, (f"stripe: resumed an interrupted full sync after customer {cursor.resume_after}",))
        try:
            first = next(pages)
        except StripeRequestFailed as exc:
            if exc.status != 404:
                raise
            note = f"stripe: the resume point {cursor.resume_after} is gone; started the full sync over"
            yield from self._full(None, (note,))
            return
        yield first
        yield from pages

    def _full(self, resume: StripeCursor | None, notes: tuple[str, ...]) -> Iterator[Page]:
        """Every customer, newest first, ``page_size`` a page; ``resume`` continues an interrupted full sync."""
        mark = resume.created if resume is not None else int(self.clock())
        pages = resume.pages if resume is not None else 0
        listed = (resume.customers or 0) if resume is not None else 0
        ended, ended_count = self.reader.ended_by_customer()
        after = resume.resume_after if resume is not None else None
        after_created = resume.resume_created if resume is not None else None
        yielded = False
        for page in self.reader.customer_pages(after, after_created):
            pages += 1
            listed += len(page.customers)
            records = [
                customer_record(c, self.reader.current_subscriptions(c), ended.get(str(c["id"])), self.config)
                for c in page.customers
            ]
            cursor = StripeCursor(
                created=mark,
                resume_after=page.last_id if page.has_more else None,
                resume_created=page.last_created if page.has_more else None,
                pages=pages if page.has_more else 0,
                customers=listed,
                ended_subscriptions=ended_count,
            )
            self._remember_metadata(records)
            yield Page(records, cursor, () if yielded else notes)
            yielded = True
        if not yielded:
            yield Page([], StripeCursor(created=mark, customers=listed, ended_subscriptions=ended_count), notes)

    def _incremental(self, cursor: StripeCursor) -> Iterator[Page]:
        """Collect the event window, re-read each changed customer once, then move the cursor."""
        lookback = self.config.event_lookback_s
        started = int(self.clock())
        window = EventWindow.after(cursor.seen, self.config.idempotency_prefix, started - 2 * lookback)
        for event in self.reader.events(cursor.created - lookback):
            window.add(event)
        self.last_window = window
        created = max(cursor.created, window.newest or 0, started - lookback)
        next_cursor = StripeCursor(
            created=created,
            seen=window.seen_since(created - lookback),
            customers=cursor.customers,
            ended_subscriptions=cursor.ended_subscriptions,
        )
        changes = window.to_refresh()
        records = [deleted_record(c.customer_id, c.newest) for c in changes if c.deleted]
        live = {c.customer_id: c.newest for c in changes if not c.deleted}
        records.extend(self._read_current(list(live), live, cursor))
        size = self.config.page_size
        chunks = [records[n : n + size] for n in range(0, len(records), size)] or [[]]
        for n, chunk in enumerate(chunks):
            yield Page(chunk, next_cursor if n == len(chunks) - 1 else None)

    # -- reading current state ------------------------------------------------------------------------------

    def _read_current(
        self, ids: Sequence[str], event_times: dict[str, int], sizes: StripeCursor | None
    ) -> list[CrmRecord]:
        """Current state of ``ids``, in that order, at the fewest requests the known account sizes allow."""
        found: dict[str, JSON] = {}
        known = sizes.customers if sizes is not None else None
        if known is not None and ids and math.ceil(known / self.config.page_size) < len(ids):
            found = self._scan(set(ids))
        for customer_id in ids:
            if customer_id not in found:
                customer = self.reader.retrieve(customer_id)
                if customer is not None:
                    found[customer_id] = customer
        current = {cid: self.reader.current_subscriptions(c) for cid, c in found.items()}
        lacking = [cid for cid, subs in current.items() if all(s.get("status") in ENDED_STATUSES for s in subs)]
        ended = self._ended(lacking, sizes)
        records: list[CrmRecord] = []
        for customer_id in ids:
            customer = found.get(customer_id)
            if customer is None:
                records.append(deleted_record(customer_id, event_times.get(customer_id)))
            else:
                records.append(
                    customer_record(
                        customer,
                        current[customer_id],
                        ended.get(customer_id),
                        self.config,
                        event_times.get(customer_id),
                    )
                )
        self._remember_metadata(records)
        return records

    def _remember_metadata(self, records: Sequence[CrmRecord]) -> None:
        """Each customer's metadata keys as read, for the pusher's check of the merged total."""
        for record in records:
            if not record.deleted:
                self.pusher.remember(record.id, record.fields.get("metadata"))

    def _scan(self, wanted: set[str]) -> dict[str, JSON]:
        """Find ``wanted`` customers by listing them all (stops once every one is found)."""
        found: dict[str, JSON] = {}
        for page in self.reader.customer_pages():
            for customer in page.customers:
                if customer["id"] in wanted:
                    found[str(customer["id"])] = customer
            if len(found) == len(wanted):
                break
        return found

    def _ended(self, customer_ids: list[str], sizes: StripeCursor | None) -> dict[str, JSON]:
        """Newest ended subscription of each customer: in bulk when that costs fewer requests."""
        if not customer_ids:
            return {}
        known = sizes.ended_subscriptions if sizes is not None else None
        if known is not None and math.ceil(known / 100) < len(customer_ids):
            return self.reader.ended_by_customer()[0]
        out: dict[str, JSON] = {}
        for customer_id in customer_ids:
            subscription = self.reader.ended_for(customer_id)
            if subscription is not None:
                out[customer_id] = subscription
        return out

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]:
        """Current state of ``ids`` (one request each, plus one for a customer without a current subscription)."""
        self._check(stream)
        unique = list(dict.fromkeys(ids))
        return self._read_current(unique, {}, None)

    # -- push -----------------------------------------------------------------------------------------------

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]:
        """One idempotent update per customer; when Stripe or the budget says stop, the rest wait for a retry."""
        self._check(stream)
        results: list[PushResult] = []
        for n, update in enumerate(updates):
            try:
                results.append(self.pusher.push(update))
            except RetryableError as exc:
                reason = f"not sent: {exc}"
                results.extend(PushResult(u.record_id, ok=False, error=reason, retryable=True) for u in updates[n:])
                break
        return results

    # -- webhooks -------------------------------------------------------------------------------------------

    def system_id(self) -> str:
        """``acct_... (test mode)``: the account the key belongs to (``GET /v1/account``, once, then cached) and
        the key's mode, since test and live data of one account are separate."""
        if self._system is None:
            account = self.client.call("retrieve account", lambda sdk: sdk.v1.accounts.retrieve_current())
            key = self.config.api_key.get_secret_value()
            mode = "live" if key.startswith(("sk_live_", "rk_live_")) else "test"
            self._system = f"{account.id} ({mode} mode)"
        return self._system

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Reject unless signed by a configured secret (any ``v1``) within the tolerance; see ``webhooks.py``."""
        webhooks.verify(request, self.config.webhook_secrets, self.config.webhook_tolerance_s, self.clock)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """The customer to refresh (or unlink, on ``customer.deleted``); our own echoes give nothing."""
        return webhooks.parse(request, self.config.idempotency_prefix)

    def webhook_ack(self) -> WebhookAck | None:
        """Stripe wants any 2xx, nothing more."""
        return None

    def close(self) -> None:
        """Close the HTTP sessions of this connector's client."""
        self.client.close()
