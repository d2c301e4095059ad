"""The stand-in's state: customers, subscriptions and events in memory, indexed for newest-first paging.

Every change goes through this class, which records the Stripe event for it (``customer.created``,
``customer.updated`` with ``previous_attributes``, ``customer.deleted``, ``customer.subscription.created``,
``.updated``, ``.deleted``) and hands the event to ``on_event`` (the webhook sender). Events older than the
retention (30 days by default) are dropped and never served. All methods are thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.stripe import objects, seed
from sandbox.stripe.customers import CustomerPatch, apply_patch
from sandbox.stripe.errors import StripeError, invalid_param, no_such
from sandbox.stripe.forms import ListArgs
from sandbox.stripe.index import Key, SortedIndex, Window, page
from sandbox.stripe.objects import JSON, SUBSCRIPTION_STATUSES
from sandbox.stripe.search import Query

ENDED_STATUSES = ("canceled", "incomplete_expired")
EMBEDDED_LIST_LIMIT = 10
"""Stripe embeds at most 10 items of a sub-list (``customer.subscriptions``) when expanded."""


@dataclass(frozen=True)
class RequestInfo:
    """The API request behind a change, as events report it; both ``None`` for admin (dashboard) changes."""

    id: str | None = None
    idempotency_key: str | None = None


ADMIN = RequestInfo()


def _index_add(table: dict[Any, set[str]], key: Any, object_id: str) -> None:
    table.setdefault(key, set()).add(object_id)


def _index_discard(table: dict[Any, set[str]], key: Any, object_id: str) -> None:
    ids = table.get(key)
    if ids is not None:
        ids.discard(object_id)
        if not ids:
            del table[key]


def _encode_page(key: Key) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def _decode_page(token: str) -> Key:
    try:
        created, object_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":", 1)
        return int(created), object_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise invalid_param(f"Invalid page: {token}", "page") from None


class StripeStore:
    """Customers, subscriptions and events of one Stripe account."""

    def __init__(
        self,
        *,
        livemode: bool = False,
        clock: Callable[[], float] = time.time,
        event_retention_days: float = 30,
        seed_base_time: int = seed.DEFAULT_BASE_TIME,
        webhook_endpoints: Callable[[], int] = lambda: 0,
    ) -> None:
        self.livemode = livemode
        self.clock = clock
        self.event_retention_s = event_retention_days * 86400
        self.seed_base_time = seed_base_time
        self.webhook_endpoints = webhook_endpoints
        """How many endpoints each new event is pending for (its ``pending_webhooks``)."""
        self.on_event: Callable[[JSON], None] | None = None
        self._lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._customers: dict[str, JSON] = {}
        self._customer_keys: dict[str, Key] = {}
        """Keys of live *and* deleted customers: a cursor on a since-deleted customer keeps working."""
        self._customer_index = SortedIndex()
        self._by_email: dict[str, set[str]] = {}
        self._by_email_folded: dict[str, set[str]] = {}
        self._by_metadata: dict[tuple[str, str], set[str]] = {}
        self._subscriptions: dict[str, JSON] = {}
        self._subscription_index = {status: SortedIndex() for status in SUBSCRIPTION_STATUSES}
        self._subscriptions_of: dict[str, list[str]] = {}
        self._events: dict[str, JSON] = {}
        self._event_index: dict[str, SortedIndex] = {}
        self._counters = {"customer": 0, "subscription": 0, "event": 0}

    def reset(self) -> None:
        """Forget everything (``POST /_sandbox/reset``)."""
        with self._lock:
            self._clear()

    def now(self) -> int:
        """The current time in unix seconds, from the configured clock."""
        return int(self.clock())

    def _next_id(self, kind: str, prefix: str) -> str:
        self._counters[kind] += 1
        return f"{prefix}{self._counters[kind]:013d}"

    def counts(self) -> dict[str, int]:
        """How many records of each kind are held (``GET /_sandbox/counts``); events within retention."""
        with self._lock:
            self._expire_events()
            return {
                "customers": len(self._customers),
                "deleted_customers": len(self._customer_keys) - len(self._customers),
                "subscriptions": len(self._subscriptions),
                "events": len(self._events),
            }

    # -- events -------------------------------------------------------------------------------------------

    def _emit(
        self,
        event_type: str,
        obj: JSON,
        request: RequestInfo,
        *,
        previous: JSON | None = None,
        created: int | None = None,
        notify: bool = True,
    ) -> None:
        created = self.now() if created is None else created
        if created < self._event_cutoff():
            return
        event_id = self._next_id("event", "evt_E")
        event = objects.event(
            event_id,
            event_type,
            created,
            obj,
            self.livemode,
            previous_attributes=previous,
            request_id=request.id,
            idempotency_key=request.idempotency_key,
            pending_webhooks=self.webhook_endpoints() if notify else 0,
        )
        self._events[event_id] = event
        self._event_index.setdefault(event_type, SortedIndex()).add((created, event_id))
        if notify and self.on_event is not None:
            self.on_event(event)

    def _event_cutoff(self) -> int:
        return self.now() - int(self.event_retention_s)

    def _expire_events(self) -> int:
        cutoff: Key = (self._event_cutoff(), "")
        expired = 0
        for index in self._event_index.values():
            for _, event_id in index.drop_before(cutoff):
                del self._events[event_id]
                expired += 1
        return expired

    def list_events(self, args: ListArgs, type_patterns: list[str] | None) -> tuple[list[JSON], bool]:
        """Events newest first; ``type_patterns`` (exact names or ``customer.*`` wildcards) filter by type."""
        with self._lock:
            self._expire_events()
            if type_patterns is None:
                indexes = list(self._event_index.values())
            else:
                indexes = [
                    index
                    for name, index in self._event_index.items()
                    if any(fnmatch.fnmatchcase(name, pattern) for pattern in type_patterns)
                ]
            window = self._window(args, self._event_key, "event")
            keys, has_more = page(indexes, window, args.limit, backwards=args.ending_before is not None)
            return [self._events[event_id] for _, event_id in keys], has_more

    def _event_key(self, event_id: str) -> Key | None:
        event = self._events.get(event_id)
        return None if event is None else (event["created"], event_id)

    def get_event(self, event_id: str) -> JSON:
        """An event still within the retention; 404 otherwise."""
        with self._lock:
            self._expire_events()
            event = self._events.get(event_id)
            if event is None:
                raise no_such("event", event_id)
            return event

    def age_events(self, seconds: int, event_ids: Iterable[str] | None = None) -> dict[str, int]:
        """Move events ``seconds`` into the past (all, or the listed ids), then expire what fell out."""
        with self._lock:
            wanted = set(self._events) if event_ids is None else set(event_ids) & set(self._events)
            for event_id in wanted:
                event = self._events[event_id]
                index = self._event_index[event["type"]]
                index.remove((event["created"], event_id))
                aged = {**event, "created": event["created"] - seconds}
                self._events[event_id] = aged
                index.add((aged["created"], event_id))
            return {"aged": len(wanted), "expired": self._expire_events()}

    # -- paging helpers -------------------------------------------------------------------------------------

    def _window(self, args: ListArgs, key_of: Callable[[str], Key | None], kind: str) -> Window:
        """The key window of a list request: its ``created`` bounds narrowed by its cursor (404 if unknown)."""
        window = Window.for_created(args.created_lo, args.created_hi)
        for param, cursor in (("starting_after", args.starting_after), ("ending_before", args.ending_before)):
            if cursor is None:
                continue
            key = key_of(cursor)
            if key is None:
                raise no_such(kind, cursor, param)
            window = window.older_than(key) if param == "starting_after" else window.newer_than(key)
        return window

    # -- customers ----------------------------------------------------------------------------------------

    def _index_customer(self, customer: JSON, add: bool) -> None:
        update = _index_add if add else _index_discard
        customer_id = customer["id"]
        email = customer.get("email")
        if email:
            update(self._by_email, email, customer_id)
            update(self._by_email_folded, email.lower(), customer_id)
        for key, value in (customer.get("metadata") or {}).items():
            update(self._by_metadata, (key, value.lower()), customer_id)

    def _put_customer(self, customer: JSON, previous: JSON | None) -> None:
        if previous is not None:
            self._index_customer(previous, add=False)
        self._customers[customer["id"]] = customer
        self._index_customer(customer, add=True)

    def _live_customer(self, customer_id: str) -> JSON:
        customer = self._customers.get(customer_id)
        if customer is None:
            raise no_such("customer", customer_id)
        return customer

    def create_customer(self, patch: CustomerPatch, request: RequestInfo) -> JSON:
        """Create a customer (``cus_A...``) now; records ``customer.created``."""
        with self._lock:
            customer_id = self._next_id("customer", "cus_A")
            created = self.now()
            customer, _ = apply_patch(objects.customer(customer_id, created, self.livemode, {}), patch)
            self._customer_keys[customer_id] = (created, customer_id)
            self._customer_index.add((created, customer_id))
            self._put_customer(customer, None)
            self._emit("customer.created", customer, request)
            return customer

    def update_customer(self, customer_id: str, patch: CustomerPatch, request: RequestInfo) -> JSON:
        """Apply ``patch``; records ``customer.updated`` only if something actually changed."""
        with self._lock:
            current = self._live_customer(customer_id)
            updated, previous = apply_patch(current, patch)
            if previous:
                self._put_customer(updated, current)
                self._emit("customer.updated", updated, request, previous=previous)
            return updated if previous else current

    def delete_customer(self, customer_id: str, request: RequestInfo) -> JSON:
        """Delete for good; like Stripe, first cancels the customer's subscriptions that have not ended."""
        with self._lock:
            customer = self._live_customer(customer_id)
            for subscription_id in self._subscriptions_of.get(customer_id, []):
                if self._subscriptions[subscription_id]["status"] not in ENDED_STATUSES:
                    self._set_status(subscription_id, "canceled", request)
            self._index_customer(customer, add=False)
            del self._customers[customer_id]
            self._customer_index.remove(self._customer_keys[customer_id])
            self._emit("customer.deleted", customer, request)
            return objects.deleted_customer(customer_id)

    def get_customer(self, customer_id: str, expand_subscriptions: bool = False) -> JSON:
        """A live customer, or ``{"id", "object", "deleted": true}`` for a deleted one; 404 if unknown."""
        with self._lock:
            customer = self._customers.get(customer_id)
            if customer is None:
                if customer_id in self._customer_keys:
                    return objects.deleted_customer(customer_id)
                raise no_such("customer", customer_id)
            return self._with_subscriptions(customer) if expand_subscriptions else customer

    def _with_subscriptions(self, customer: JSON) -> JSON:
        customer_id = customer["id"]
        current = sorted(
            (
                self._subscriptions[subscription_id]
                for subscription_id in self._subscriptions_of.get(customer_id, [])
                if self._subscriptions[subscription_id]["status"] not in ENDED_STATUSES
            ),
            key=lambda sub: (sub["created"], sub["id"]),
            reverse=True,
        )
        embedded = objects.list_object(
            current[:EMBEDDED_LIST_LIMIT],
            len(current) > EMBEDDED_LIST_LIMIT,
            f"/v1/customers/{customer_id}/subscriptions",
            total_count=len(current),
        )
        return {**customer, "subscriptions": embedded}

    def list_customers(
        self, args: ListArgs, email: str | None = None, expand_subscriptions: bool = False
    ) -> tuple[list[JSON], bool]:
        """Customers newest first; ``email`` is Stripe's case-sensitive exact filter."""
        with self._lock:
            window = self._window(args, self._customer_keys.get, "customer")
            if email is None:
                index = self._customer_index
            else:
                index = SortedIndex(self._customer_keys[c] for c in self._by_email.get(email, ()))
            keys, has_more = page([index], window, args.limit, backwards=args.ending_before is not None)
            customers = [self._customers[customer_id] for _, customer_id in keys]
            if expand_subscriptions:
                customers = [self._with_subscriptions(customer) for customer in customers]
            return customers, has_more

    def _search_candidates(self, query: Query) -> set[str] | None:
        """Ids a query can only match among, from the email/metadata indexes; ``None`` means scan all."""
        hits: list[set[str] | None] = []
        exact = set(query.exact_clauses())
        for clause in query.clauses:
            indexable = clause in exact and clause.field in ("email", "metadata")
            if not indexable:
                hits.append(None)
            elif clause.field == "email":
                hits.append(self._by_email_folded.get(str(clause.value).lower(), set()))
            else:
                hits.append(self._by_metadata.get((clause.key or "", str(clause.value).lower()), set()))
        found = [ids for ids in hits if ids is not None]
        if query.connective == "AND":
            return min(found, key=len) if found else None
        if len(found) < len(hits):
            return None
        return set().union(*found)

    def search_customers(
        self,
        query: Query,
        limit: int,
        page_token: str | None,
        with_total: bool = False,
        expand_subscriptions: bool = False,
    ) -> tuple[list[JSON], bool, str | None, int | None]:
        """One page of matches, newest first: (data, has_more, next_page, total_count if asked)."""
        with self._lock:
            candidates = self._search_candidates(query)
            pool = self._customers.values() if candidates is None else (self._customers[c] for c in candidates)
            keys = sorted(((c["created"], c["id"]) for c in pool if query.matches(c)), reverse=True)
            total = len(keys) if with_total else None
            if page_token:
                after = _decode_page(page_token)
                keys = [key for key in keys if key < after]
            chunk = keys[:limit]
            has_more = len(keys) > limit
            next_page = _encode_page(chunk[-1]) if has_more else None
            data = [self._customers[customer_id] for _, customer_id in chunk]
            if expand_subscriptions:
                data = [self._with_subscriptions(customer) for customer in data]
            return data, has_more, next_page, total

    # -- subscriptions ------------------------------------------------------------------------------------

    def _add_subscription(self, subscription: JSON) -> None:
        subscription_id = subscription["id"]
        self._subscriptions[subscription_id] = subscription
        self._subscription_index[subscription["status"]].add((subscription["created"], subscription_id))
        self._subscriptions_of.setdefault(subscription["customer"], []).append(subscription_id)

    def create_subscription(
        self, customer_id: str, status: str, plan: str, request: RequestInfo, terms: JSON | None = None
    ) -> JSON:
        """Give a live customer a new subscription (``sub_A...``); records ``customer.subscription.created``.
        ``terms`` (``sandbox.stripe.subscription_create``): ``items``, ``trial_s`` and top-level ``fields``."""
        with self._lock:
            self._live_customer(customer_id)
            terms = terms or {}
            subscription = objects.subscription(
                self._next_id("subscription", "sub_A"),
                customer_id,
                self.now(),
                status,
                plan,
                self.livemode,
                canceled_at=self.now() if status in ENDED_STATUSES else None,
                items=terms.get("items"),
                trial_s=terms.get("trial_s", objects.TRIAL_S),
            )
            subscription.update(terms.get("fields", {}))
            self._add_subscription(subscription)
            self._emit("customer.subscription.created", subscription, request)
            return subscription

    def get_subscription(self, subscription_id: str) -> JSON:
        """A subscription by id, canceled ones included; 404 if unknown."""
        with self._lock:
            subscription = self._subscriptions.get(subscription_id)
            if subscription is None:
                raise no_such("subscription", subscription_id)
            return subscription

    def set_subscription_status(self, subscription_id: str, status: str, request: RequestInfo) -> JSON:
        """Move a subscription to ``status``; ``canceled`` records ``customer.subscription.deleted``."""
        with self._lock:
            current = self.get_subscription(subscription_id)
            if current["status"] in ENDED_STATUSES and status != current["status"]:
                raise StripeError(
                    400,
                    f"A {current['status']} subscription can only update its cancellation_details and metadata.",
                    param="status",
                )
            return self._set_status(subscription_id, status, request)

    def _set_status(self, subscription_id: str, status: str, request: RequestInfo) -> JSON:
        current = self._subscriptions[subscription_id]
        if current["status"] == status:
            return current
        key = (current["created"], subscription_id)
        updated = {**current, "status": status}
        previous: JSON = {"status": current["status"]}
        if status in ENDED_STATUSES:
            now = self.now()
            updated["canceled_at"] = updated["ended_at"] = now
            updated["cancellation_details"] = {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested",
            }
        self._subscription_index[current["status"]].remove(key)
        self._subscription_index[status].add(key)
        self._subscriptions[subscription_id] = updated
        if status == "canceled":
            self._emit("customer.subscription.deleted", updated, request)
        else:
            self._emit("customer.subscription.updated", updated, request, previous=previous)
        return updated

    def list_subscriptions(
        self, args: ListArgs, statuses: Iterable[str], customer_id: str | None = None
    ) -> tuple[list[JSON], bool]:
        """Subscriptions newest first among ``statuses``, optionally of one customer."""
        with self._lock:
            wanted = tuple(statuses)
            if customer_id is not None:
                if customer_id not in self._customer_keys:
                    raise no_such("customer", customer_id, "customer")
                mine = (self._subscriptions[s] for s in self._subscriptions_of.get(customer_id, []))
                indexes = [SortedIndex((s["created"], s["id"]) for s in mine if s["status"] in wanted)]
            else:
                indexes = [self._subscription_index[status] for status in wanted]

            def key_of(subscription_id: str) -> Key | None:
                subscription = self._subscriptions.get(subscription_id)
                return None if subscription is None else (subscription["created"], subscription_id)

            window = self._window(args, key_of, "subscription")
            keys, has_more = page(indexes, window, args.limit, backwards=args.ending_before is not None)
            return [self._subscriptions[subscription_id] for _, subscription_id in keys], has_more

    # -- seeding --------------------------------------------------------------------------------------------

    def seed(self, count: int, start: int = 0, notify: bool = False) -> dict[str, int]:
        """Add identities ``start .. start+count-1`` (see ``sandbox.stripe.seed``); existing ids are skipped.

        Creation events are recorded at the records' own ``created`` times, so with the default base time
        they are already past the retention and dropped; ``notify`` sends webhooks for those that are kept.
        """
        with self._lock:
            created = skipped = 0
            customer_keys: list[Key] = []
            subscription_keys: dict[str, list[Key]] = {}
            for i in range(start, start + count):
                customer_id = seed.customer_id(i)
                if customer_id in self._customer_keys:
                    skipped += 1
                    continue
                customer = seed.seed_customer(i, self.seed_base_time, self.livemode)
                subscription = seed.seed_subscription(i, self.seed_base_time, self.livemode)
                key = (customer["created"], customer_id)
                self._customer_keys[customer_id] = key
                customer_keys.append(key)
                self._put_customer(customer, None)
                self._subscriptions[subscription["id"]] = subscription
                self._subscriptions_of.setdefault(customer_id, []).append(subscription["id"])
                subscription_keys.setdefault(subscription["status"], []).append(
                    (subscription["created"], subscription["id"])
                )
                self._emit("customer.created", customer, ADMIN, created=customer["created"], notify=notify)
                self._emit(
                    "customer.subscription.created",
                    subscription,
                    ADMIN,
                    created=subscription["created"],
                    notify=notify,
                )
                created += 1
            self._customer_index.add_many(customer_keys)
            for status, keys in subscription_keys.items():
                self._subscription_index[status].add_many(keys)
            return {"created": created, "skipped": skipped, "customers": len(self._customers)}
