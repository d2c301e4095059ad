"""Incremental sync through ``/v1/events``: the window is collected and de-duplicated, each changed customer is
read once in its current state, and the cursor moves only at the end of the window."""

from __future__ import annotations

import math
import time
from collections import Counter

from connectors.stripe import StripeConnector, StripeCursor
from sandbox.stripe.seed import customer_id, status_for, subscription_id
from sync.connector import CrmRecord, Page, PushUpdate
from tests.connectors.stripe.conftest import Connect, StripeStandIn


def pull(connector: StripeConnector, cursor: StripeCursor | None) -> tuple[list[CrmRecord], StripeCursor]:
    pages: list[Page] = list(connector.pull("customers", cursor))
    if cursor is not None:
        assert all(p.cursor is None for p in pages[:-1]), "the cursor moves only after the whole window"
    last = pages[-1].cursor
    assert isinstance(last, StripeCursor)
    return [r for p in pages for r in p.records], last


def test_two_thousand_changed_customers_out_of_order_and_repeated_are_each_read_once(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(2400)
    ended = sum(1 for i in range(2400) if status_for(i) == "canceled")
    cursor = StripeCursor(created=int(time.time()), customers=2400, ended_subscriptions=ended)  # as a full sync ends

    for i in range(2000):
        standin.edit(customer_id(i), name=f"Renamed {i}")
    for i in range(500):  # a second change to the same customers...
        standin.edit(customer_id(i), name=f"Final {i}")
    final_events = [
        e["id"] for e in standin.events(type="customer.updated") if e["data"]["object"]["name"].startswith("Final ")
    ]
    assert len(final_events) == 500
    standin.age_events(30, final_events)  # ...whose events now look older than the first: out of order
    paused = [i for i in range(1000, 1300) if status_for(i) != "canceled"]
    for i in paused:
        standin.set_subscription(subscription_id(i), "paused")
    deleted = list(range(1900, 1950))
    for i in deleted:
        standin.delete(customer_id(i))
    events = standin.events()
    per_customer = Counter(e["data"]["object"].get("customer") or e["data"]["object"]["id"] for e in events)
    assert sum(1 for n in per_customer.values() if n > 1) >= 500 + len(paused)  # many events, one customer

    standin.reset_counters()
    records, after = pull(connector, cursor)
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) == 2000  # each changed customer exactly once, none missed
    assert set(ids) == {customer_id(i) for i in range(2000)}
    by_id = {r.id: r for r in records}
    for i in range(2000):
        record = by_id[customer_id(i)]
        if i in deleted:
            assert record.deleted
            continue
        assert record.fields["name"] == (f"Final {i}" if i < 500 else f"Renamed {i}")  # current state
        if i in paused:
            assert record.fields["subscription_status"] == "paused"
    # Batched: the changed customers were found by listing all 2,400 (24 pages), never one request each.
    assert standin.count("GET", "/v1/customers/{customer_id}") == 0
    assert standin.count("GET", "/v1/customers") <= math.ceil(2400 / 100)
    assert standin.count("GET", "/v1/events") == math.ceil(len(events) / 100)
    assert standin.count("GET", "/v1/subscriptions") <= math.ceil(
        standin.api("/_sandbox/counts")["subscriptions"] / 100
    )
    assert after.created >= max(e["created"] for e in events)
    assert after.sort_key() > cursor.sort_key()

    # The same window again (the next run overlaps it by the lookback): nothing is read or applied twice.
    standin.reset_counters()
    again, later = pull(connector, after)
    assert again == []
    assert standin.count("GET", "/v1/customers") == 0 and standin.count("GET", "/v1/customers/{customer_id}") == 0
    assert connector.last_window is not None and connector.last_window.already_applied == len(events)
    assert later.sort_key() >= after.sort_key()


def test_a_late_event_inside_the_lookback_is_still_seen(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(20)
    _, cursor = pull(connector, None)
    _, cursor = pull(connector, cursor)
    standin.edit(customer_id(3), name="Changed late")
    late = [e["id"] for e in standin.events(type="customer.updated")]
    standin.age_events(time.time().__ceil__() - cursor.created + 20, late)  # created 20 s before the cursor
    assert all(e["created"] < cursor.created for e in standin.events())
    records, _ = pull(connector, cursor)
    assert [(r.id, r.fields["name"]) for r in records] == [(customer_id(3), "Changed late")]


def test_a_small_window_reads_each_changed_customer_by_id(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(300)
    _, cursor = pull(connector, None)
    for i in (7, 8, 11):  # 11: canceled, so its ended subscription is read too
        standin.edit(customer_id(i), description="changed")
    standin.reset_counters()
    records, _ = pull(connector, cursor)
    assert sorted(r.id for r in records) == [customer_id(7), customer_id(8), customer_id(11)]
    assert {r.id: r.fields["subscription_status"] for r in records}[customer_id(11)] == "canceled"
    assert standin.count("GET", "/v1/customers/{customer_id}") == 3
    assert standin.count("GET", "/v1/customers") == 0
    assert standin.count("GET", "/v1/subscriptions") == 1


def test_a_deleted_customer_comes_back_deleted_without_a_read(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(5)
    _, cursor = pull(connector, None)
    standin.delete(customer_id(2))
    standin.reset_counters()
    records, _ = pull(connector, cursor)
    assert [(r.id, r.deleted) for r in records] == [(customer_id(2), True)]
    assert records[0].fields == {"id": customer_id(2), "object": "customer", "deleted": True}
    assert standin.count("GET", "/v1/customers/{customer_id}") == 0


def test_our_own_push_echo_costs_no_read(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(4)
    _, cursor = pull(connector, None)
    results = connector.push("customers", [PushUpdate(customer_id(1), {"metadata.posthog_account_id": "acc-1"}, "f")])
    assert results[0].ok
    standin.edit(customer_id(2), name="Someone else's change")
    standin.reset_counters()
    records, _ = pull(connector, cursor)
    assert [r.id for r in records] == [customer_id(2)]
    assert standin.count("GET", "/v1/customers/{customer_id}") == 1
    assert connector.last_window is not None and connector.last_window.echoes == 1


def test_an_idle_cursor_keeps_up_with_the_clock(standin: StripeStandIn, connect: Connect) -> None:
    now = [time.time()]
    connector = connect()
    connector.clock = lambda: now[0]
    standin.seed(2)
    _, cursor = pull(connector, None)
    now[0] += 20 * 86_400  # nothing happens for 20 days
    records, later = pull(connector, cursor)
    assert records == [] and later.created >= int(now[0]) - connector.config.event_lookback_s
    now[0] += 20 * 86_400  # 40 days after the full sync, but only 20 after the last read: still incremental
    records, _ = pull(connector, later)
    assert records == [] and standin.count("GET", "/v1/customers") == 1  # only the first full sync listed


def test_the_window_starts_at_the_cursor_minus_the_lookback(standin: StripeStandIn, connect: Connect) -> None:
    connector = connect(event_lookback_s=0)
    standin.seed(3)
    _, cursor = pull(connector, None)
    standin.edit(customer_id(0), name="Late")
    events = [e["id"] for e in standin.events()]
    standin.age_events(time.time().__ceil__() - cursor.created + 20, events)
    records, _ = pull(connector, cursor)
    assert records == []  # without a lookback, an event that became visible late is missed (documented)
