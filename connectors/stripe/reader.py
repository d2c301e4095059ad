"""Every read the connector makes, through the SDK, with errors translated and each kind of request counted.

Costs, in requests (each also one token of the shared budget):

- customers, listed: one per ``page_size`` customers, current subscriptions embedded (``expand[]=data.subscriptions``);
- ended subscriptions, listed in bulk (``status=ended``): one per 100, once per full sync or incremental batch;
- one customer by id (``expand[]=subscriptions``): one each; its newest ended subscription, when it has no
  current one: one more each;
- events: one per ``page_size`` events.

Stripe embeds at most 10 subscriptions in a customer; a customer with more costs one extra list (rare).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import stripe

from connectors.stripe.client import StripeCalls
from connectors.stripe.config import StripeConfig
from connectors.stripe.errors import StripeRequestFailed, missing
from connectors.stripe.records import JSON, newest_ended
from sync.paging import follow


@dataclass(frozen=True)
class CustomerPage:
    """One list page: the customers not listed before, whether more follow, and where the listing stands
    (the last customer Stripe returned, to resume after)."""

    customers: list[JSON]
    has_more: bool
    last_id: str | None
    last_created: int | None


@dataclass
class ReadStats:
    """Requests made per kind (what the stand-in's counters see, from the connector's side)."""

    customer_pages: int = 0
    customer_retrieves: int = 0
    subscription_pages: int = 0
    event_pages: int = 0


def _dict(obj: Any) -> JSON:
    return cast(JSON, obj.to_dict())


def _age(subscription: Mapping[str, Any]) -> tuple[int, str]:
    return int(subscription.get("created") or 0), str(subscription.get("id"))


class StripeReader:
    """Reads customers, subscriptions and events of one Stripe account."""

    def __init__(self, client: StripeCalls, config: StripeConfig) -> None:
        self.client = client
        self.config = config
        self.stats = ReadStats()

    # -- customers ------------------------------------------------------------------------------------------

    def customer_pages(
        self, starting_after: str | None = None, resume_created: int | None = None
    ) -> Iterator[CustomerPage]:
        """Pages of customers, newest first, with their current subscriptions embedded.

        Paging follows ``starting_after``. Stripe may refuse a ``starting_after`` naming an object deleted since
        (404 ``resource_missing``, documented for some object types); when that happens the listing goes on by
        creation time instead:
        ``created[lte]`` the vanished customer's ``created``, skipping those of that second already listed.
        ``resume_created`` is that time for a ``starting_after`` taken from an earlier run.
        """
        last_created = resume_created
        same_second: set[str] = {starting_after} if starting_after is not None else set()
        Position = tuple[str | None, int | None]  # (starting_after, created[lte])

        def listed(after: str | None, upto: int | None) -> Any:
            params: stripe.params.CustomerListParams = {
                "limit": self.config.page_size,
                "expand": ["data.subscriptions"],
            }
            if after is not None:
                params["starting_after"] = after
            if upto is not None:
                params["created"] = {"lte": upto}
            try:
                return self.client.call("list customers", lambda sdk: sdk.v1.customers.list(params=params))
            finally:
                self.stats.customer_pages += 1

        def page(position: Position | None) -> tuple[CustomerPage, Position | None]:
            nonlocal last_created, same_second
            after, upto = position if position is not None else (starting_after, None)
            try:
                answer = listed(after, upto)
            except StripeRequestFailed as error:
                if after is None or last_created is None or not missing(error):
                    raise
                after, upto = None, last_created  # the cursor customer is gone: continue by creation time
                answer = listed(after, upto)
            customers = [_dict(c) for c in answer.data]
            fresh = [c for c in customers if not (c.get("created") == upto and c["id"] in same_second)]
            for customer in customers:
                created = int(customer.get("created") or 0)
                if created != last_created:
                    last_created, same_second = created, set()
                same_second.add(str(customer["id"]))
            more = bool(answer.has_more) and bool(customers)
            last_id = str(customers[-1]["id"]) if customers else after
            return CustomerPage(fresh, more, last_id, last_created), (last_id, upto) if more else None

        yield from follow(page, "stripe: list customers")

    def retrieve(self, customer_id: str) -> JSON | None:
        """One customer with its current subscriptions; ``None`` if it was deleted or never existed."""
        self.stats.customer_retrieves += 1
        try:
            customer = self.client.call(
                f"retrieve customer {customer_id}",
                lambda sdk: sdk.v1.customers.retrieve(customer_id, params={"expand": ["subscriptions"]}),
            )
        except StripeRequestFailed as error:
            if missing(error):
                return None
            raise
        data = _dict(customer)
        return None if data.get("deleted") else data

    def current_subscriptions(self, customer: Mapping[str, Any]) -> list[JSON]:
        """The customer's subscriptions that have not ended: the embedded list, or all of them when Stripe
        embedded only the first 10."""
        embedded = customer.get("subscriptions") or {}
        data = [dict(s) for s in embedded.get("data") or []]
        if not embedded.get("has_more"):
            return data
        return list(self._subscriptions({"customer": str(customer["id"])}))

    # -- subscriptions --------------------------------------------------------------------------------------

    def _subscriptions(self, params: stripe.params.SubscriptionListParams) -> Iterator[JSON]:
        def page(after: str | None) -> tuple[list[JSON], str | None]:
            query: stripe.params.SubscriptionListParams = {**params, "limit": 100}
            if after is not None:
                query["starting_after"] = after
            listed = self.client.call("list subscriptions", lambda sdk: sdk.v1.subscriptions.list(params=query))
            self.stats.subscription_pages += 1
            data = [_dict(s) for s in listed.data]
            return data, str(data[-1]["id"]) if listed.has_more and data else None

        for data in follow(page, "stripe: list subscriptions"):
            yield from data

    def ended_by_customer(self) -> tuple[dict[str, JSON], int]:
        """Every ended subscription of the account, in bulk: customer id → its newest ended subscription, and
        how many ended subscriptions there were (what the next bulk read will cost, in hundreds)."""
        newest: dict[str, JSON] = {}
        count = 0
        for subscription in self._subscriptions({"status": "ended"}):
            count += 1
            customer_id = str(subscription.get("customer"))
            held = newest.get(customer_id)
            if held is None or _age(subscription) > _age(held):
                newest[customer_id] = subscription
        return newest, count

    def ended_for(self, customer_id: str) -> JSON | None:
        """The newest ended subscription of one customer (one request)."""
        page = self.client.call(
            f"list subscriptions of {customer_id}",
            lambda sdk: sdk.v1.subscriptions.list(params={"customer": customer_id, "status": "ended", "limit": 1}),
        )
        self.stats.subscription_pages += 1
        chosen = newest_ended([_dict(s) for s in page.data])
        return dict(chosen) if chosen is not None else None

    # -- events ---------------------------------------------------------------------------------------------

    def events(self, since: int) -> Iterator[JSON]:
        """Events of the configured types created at or after ``since`` (unix s), as Stripe lists them."""

        def page(after: str | None) -> tuple[list[JSON], str | None]:
            params: stripe.params.EventListParams = {
                "types": list(self.config.event_types),
                "created": {"gte": since},
                "limit": self.config.page_size,
            }
            if after is not None:
                params["starting_after"] = after
            listed = self.client.call("list events", lambda sdk: sdk.v1.events.list(params=params))
            self.stats.event_pages += 1
            data = [_dict(e) for e in listed.data]
            return data, str(data[-1]["id"]) if listed.has_more and data else None

        for data in follow(page, "stripe: list events"):
            yield from data
