"""``HubSpotConnector``: HubSpot deals as CRM records, and PostHog's account ids written back onto them.

One stream, ``deals`` (the account link is ``hubspot_deal_id``); each deal comes with its primary company and its
owner (``connectors.hubspot.records``). How it reads:

- **Full** (no cursor): ``get_page`` in id order, ``page_size`` deals per request with their company links; the
  companies of each page in one batch read; owners listed once (and again only for an owner never seen). Then the
  archived deals, as deletions. Only the last page carries a cursor (the time the read started), so a full read
  that stops halfway commits no position.
- **Incremental**: ``WindowedSearch`` over ``hs_lastmodifieddate`` from the cursor minus ``lookback_ms`` (past the
  10,000-result cap, never looping), the page's company links by one v4 batch read, companies and owners as above.
  Then (``follow_company_changes``) companies modified since their own cursor, and the deals linked to them, so a
  renamed company or a new external id reaches its accounts. Each page's cursor is capped at the read's start time
  and never goes below the cursor the read began from.
- **Deletes and merges**: archived deals (full reads, ``fetch``) are deletion records; a deal whose
  ``hs_merged_object_ids`` lists other ids is preceded, in the same page, by a deletion record for each of them,
  so the engine drops the old link and the surviving deal takes it.
- **Push**: ``batch/update`` of ``batch_size`` deals per request; properties missing from the portal are created
  first (once per connector); a batch HubSpot refuses as a whole (400) is split in halves to isolate the bad record.

Rate budgets, retries, timeouts and error translation live in ``HubSpotClient``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import redis

from connectors.hubspot.client import HsObject, HubSpotClient, ObjectPage, Owner, SearchFilter
from connectors.hubspot.config import HubSpotConfig, load_hubspot_config
from connectors.hubspot.cursor import HubSpotCursor
from connectors.hubspot.errors import HubSpotPagingLoop, HubSpotRequestError
from connectors.hubspot.facts import FACTS
from connectors.hubspot.properties import ensure_properties, push_properties
from connectors.hubspot.records import SOURCE, STREAM, deal_record, deleted_record, merged_ids, primary_company
from connectors.hubspot.search import Checkpoint, WindowedSearch
from connectors.hubspot.webhooks import COMPANY_REF, parse_events, verify_v3
from sync.connector import (
    CrmRecord,
    Cursor,
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
from sync.vendor import CallStats
from sync.vendor_facts import VendorFacts


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class HubSpotConnector:
    """The HubSpot ``Connector`` (``sync.connector``); one instance per portal and worker process."""

    source: ClassVar[str] = SOURCE
    facts: ClassVar[VendorFacts] = FACTS
    streams: ClassVar[tuple[str, ...]] = (STREAM,)
    cursor_type: ClassVar[type[Cursor]] = HubSpotCursor

    def __init__(
        self,
        config: HubSpotConfig,
        redis_client: redis.Redis | None = None,
        *,
        fields: StreamFields | None = None,
        key: str = "sources.hubspot.config",
        client: HubSpotClient | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = config
        self.push_properties = push_properties(config, fields, key)
        # every read asks for the configured deal properties plus those push-back writes (to see what a deal holds)
        self.read_properties = list(dict.fromkeys([*config.deal_properties, *self.push_properties]))
        self.client = client or HubSpotClient(config, redis_client)
        self.clock = clock
        self._owners: dict[str, Owner] = {}
        self._owners_loaded_ms: int | None = None
        self._owners_missing: set[str] = set()
        self._writable: set[str] = set()
        self._system: str | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        raw: Mapping[str, Any],
        redis_client: redis.Redis | None = None,
        fields: Mapping[str, StreamFields] | None = None,
        key: str = "sources.hubspot.config",
    ) -> HubSpotConnector:
        """The connector for a ``sources.hubspot.config`` block (``connectors.registry``), validated (a bad entry
        raises ``ConfigError`` naming ``<key>.<field>``), with the shared budgets in Redis and the fields of the
        ``mappings.hubspot.deals`` section when there is one: they say which properties push-back writes (and
        every read asks for), see ``properties.push_properties``."""
        deals = (fields or {}).get(STREAM)
        return cls(load_hubspot_config(raw, key), redis_client, fields=deals, key=key)

    def close(self) -> None:
        """Close the SDK's connection pools (one per API this connector calls)."""
        self.client.close()

    @property
    def call_stats(self) -> CallStats:
        """Requests sent to HubSpot (retries included) and 429s, since the worker last reported them."""
        return self.client.stats

    # -- reads ------------------------------------------------------------------------------------------------

    def pull(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of deals: all of them when ``cursor`` is None, else those changed since (see the module doc)."""
        self._check_stream(stream)
        started = self.clock()
        if cursor is None:
            yield from self._pull_full(started)
            return
        if not isinstance(cursor, HubSpotCursor):
            raise ConfigError("cursor", f"expected a HubSpotCursor, got {type(cursor).__name__}")
        yield from self._pull_since(cursor, started)

    def _pull_full(self, started: int) -> Iterator[Page]:
        final = HubSpotCursor(modified_ms=started, companies_ms=started)
        properties = self.read_properties
        for archived in (False, True):

            def page(after: str | None, archived: bool = archived) -> tuple[ObjectPage, str | None]:
                listed = self.client.list_deals(after, properties, archived=archived)
                return listed, listed.next_after

            for listed in follow(page, "HubSpot deals.get_page", HubSpotPagingLoop):
                last = listed.next_after is None
                if archived:
                    records = [deleted_record(d.id, d.properties) for d in listed.results]
                else:
                    records = self._shape(listed.results)
                yield Page(records, final if archived and last else None)

    def _pull_since(self, cursor: HubSpotCursor, started: int) -> Iterator[Page]:
        lookback = self.config.lookback_ms
        position = cursor
        self.client.reset_search_page()
        deals = self._windowed("deals", self.read_properties)
        start = Checkpoint(max(0, cursor.modified_ms - lookback), cursor.object_id if lookback == 0 else 0)
        for batch in deals.since(start):
            cp = batch.checkpoint
            moved = HubSpotCursor(
                modified_ms=min(cp.modified_ms, started),
                object_id=cp.object_id if cp.modified_ms <= started else 0,
                companies_ms=position.companies_ms,
            )
            position = max(position, moved, key=HubSpotCursor.sort_key)
            yield Page(self._shape(batch.records), position)
        if not self.config.follow_company_changes:
            return
        companies = self._windowed("companies", self.config.company_read_properties)
        for batch in companies.since(Checkpoint(max(0, cursor.companies_ms - lookback))):
            deal_ids = self._deals_of([c.id for c in batch.records])
            found, _ = self.client.read_deals(deal_ids, self.read_properties) if deal_ids else ([], [])
            companies_ms = max(position.companies_ms, min(batch.checkpoint.modified_ms, started))
            position = position.model_copy(update={"companies_ms": companies_ms})
            yield Page(self._shape(found), position)

    def _windowed(self, object_type: str, properties: list[str]) -> WindowedSearch:
        size = self.config.search_page_size

        def search(filters: list[SearchFilter], sort: str, after: int) -> ObjectPage:
            return self.client.search(object_type, filters, sort, after, size, properties)

        return WindowedSearch(search, size)

    def _deals_of(self, company_ids: Sequence[str]) -> list[str]:
        if not company_ids:
            return []
        links = self.client.associations("companies", "deals", company_ids)
        return list(dict.fromkeys(link.to_id for cid in company_ids for link in links.get(cid, [])))

    def system_id(self) -> str:
        """``portal <Hub ID>`` (one ``account-info`` call per connector, then cached)."""
        if self._system is None:
            self._system = f"portal {self.client.portal_id()}"
        return self._system

    def fetch(self, stream: str, ids: Sequence[str]) -> list[CrmRecord]:
        """Current state of ``ids``: live deals enriched as in ``pull``; ids no longer active come back deleted.
        ``company:<id>`` (from a company webhook) stands for every deal associated with that company."""
        self._check_stream(stream)
        wanted = [str(i) for i in dict.fromkeys(ids) if str(i) and not str(i).startswith(COMPANY_REF)]
        companies = [str(i).removeprefix(COMPANY_REF) for i in ids if str(i).startswith(COMPANY_REF)]
        wanted = list(dict.fromkeys([*wanted, *self._deals_of(companies)]))  # a company webhook: all its deals
        if not wanted:
            return []
        found, missing = self.client.read_deals(wanted, self.read_properties)
        return _unique([*(deleted_record(i) for i in missing), *self._shape(found)])

    def _shape(self, deals: Sequence[HsObject]) -> list[CrmRecord]:
        """Deals → records: company links (one v4 batch read for deals read without them), their primary
        companies (batch read), owners (cached list); merged-away ids come first, as deletions."""
        if not deals:
            return []
        unlinked = [d.id for d in deals if d.company_links is None]
        looked_up = self.client.associations("deals", "companies", unlinked) if unlinked else {}
        primary: dict[str, str | None] = {}
        for deal in deals:
            links = deal.company_links if deal.company_links is not None else tuple(looked_up.get(deal.id, []))
            primary[deal.id] = primary_company(links)
        company_ids = [c for c in dict.fromkeys(primary.values()) if c]
        companies = self.client.read_companies(company_ids, self.config.company_read_properties) if company_ids else {}
        owners = self._owners_for({d.properties.get("hubspot_owner_id") or "" for d in deals} - {""})
        records: list[CrmRecord] = []
        for deal in deals:
            records.extend(deleted_record(old) for old in merged_ids(deal.properties) if old != deal.id)
            company_id = primary[deal.id]
            owner_id = deal.properties.get("hubspot_owner_id") or ""
            records.append(
                deal_record(
                    deal,
                    companies.get(company_id) if company_id else None,
                    owners.get(owner_id),
                    self.config.link_rule,
                    self.config.closed_stages,
                )
            )
        # Deletions first (a merged-away id before its survivor), then the strongest claim on a company's link,
        # so that the deals a company's link does not go to are the ones reported as superseded.
        records.sort(key=lambda r: (not r.deleted, -r.link_rank))
        return _unique(records)

    def _owners_for(self, ids: set[str]) -> dict[str, Owner]:
        """The owner list, loaded once per ``owners_ttl_s`` and again only when an unseen owner id shows up."""
        now = self.clock()
        stale = self._owners_loaded_ms is None or now - self._owners_loaded_ms > self.config.owners_ttl_s * 1000
        unknown = ids - set(self._owners) - self._owners_missing
        if ids and (stale or unknown):
            self._owners = self.client.owners()
            self._owners_loaded_ms = now
            self._owners_missing = set() if stale else self._owners_missing
            self._owners_missing |= ids - set(self._owners)
        return self._owners

    # -- push-back --------------------------------------------------------------------------------------------

    def push(self, stream: str, updates: Sequence[PushUpdate]) -> list[PushResult]:
        """Write deal properties in batches of ``batch_size``; a result per update."""
        self._check_stream(stream)
        results: list[PushResult] = []
        writable: list[PushUpdate] = []
        for update in updates:
            nested = [path for path in update.fields if "." in path]
            if nested:
                results.append(PushResult(update.record_id, ok=False, error=f"not a deal property: {nested[0]}"))
            else:
                writable.append(update)
        if not writable:
            return results
        try:
            self._ensure_writable({name for u in writable for name in u.fields})
        except RetryableError as exc:
            return results + [PushResult(u.record_id, False, str(exc), retryable=True) for u in writable]
        size = self.config.batch_size
        for start in range(0, len(writable), size):
            results.extend(self._push_batch(writable[start : start + size]))
        return results

    def _ensure_writable(self, names: set[str]) -> None:
        missing = names - self._writable
        if missing:
            ensure_properties(self.client, "deals", sorted(missing), self.config.property_group)
            self._writable |= missing

    def _push_batch(self, batch: Sequence[PushUpdate]) -> list[PushResult]:
        inputs = [(u.record_id, {k: "" if v is None else v for k, v in u.fields.items()}) for u in batch]
        try:
            outcome = self.client.update_deals(inputs)
        except HubSpotRequestError as exc:
            if len(batch) == 1:
                return [PushResult(batch[0].record_id, ok=False, error=str(exc))]
            middle = len(batch) // 2
            return self._push_batch(batch[:middle]) + self._push_batch(batch[middle:])
        except RetryableError as exc:
            return [PushResult(u.record_id, ok=False, error=str(exc), retryable=True) for u in batch]
        written = set(outcome.ok)
        results: list[PushResult] = []
        for update in batch:
            if update.record_id in outcome.errors:
                results.append(PushResult(update.record_id, ok=False, error=outcome.errors[update.record_id]))
            elif update.record_id in written:
                results.append(PushResult(update.record_id, ok=True))
            else:
                results.append(
                    PushResult(update.record_id, ok=False, error="missing from HubSpot's answer", retryable=True)
                )
        return results

    # -- webhooks ---------------------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """``WebhookRejected`` unless the delivery has a valid, fresh ``X-HubSpot-Signature-v3``."""
        if self.config.client_secret is None:
            raise WebhookRejected("no client_secret configured for HubSpot webhooks")
        verify_v3(
            request,
            self.config.client_secret.get_secret_value(),
            self.clock(),
            self.config.webhook_max_age_s,
            uri=self.config.webhook_url,
        )

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """The deal events of a verified delivery (see ``connectors.hubspot.webhooks``)."""
        return parse_events(request.body, SOURCE, STREAM)

    def webhook_ack(self) -> WebhookAck | None:
        """HubSpot wants any 2xx, nothing more."""
        return None

    # -- helpers ----------------------------------------------------------------------------------------------

    def _check_stream(self, stream: str) -> None:
        if stream not in self.streams:
            raise ConfigError(f"mappings.hubspot.{stream}", f"HubSpot streams are {', '.join(self.streams)}")


def _unique(records: Iterable[CrmRecord]) -> list[CrmRecord]:
    """Each id once (the first occurrence: deletions of merged-away ids come before their survivor)."""
    seen: set[str] = set()
    out: list[CrmRecord] = []
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            out.append(record)
    return out
