"""Full sync: every customer, about n/100 list requests plus a bulk read of ended subscriptions, resumable;
and what each record carries (subscription status, email domain, link rank)."""

from __future__ import annotations

import math
import time

import pytest

from connectors.stripe import StripeConnector, StripeCursor
from sandbox.identities import company
from sandbox.stripe.seed import DEFAULT_BASE_TIME, created_for, customer_id, status_for
from sync.connector import CrmRecord, Page
from sync.errors import FatalError
from tests.connectors.stripe.conftest import Connect, StripeStandIn


def pull(connector: StripeConnector, cursor: StripeCursor | None = None) -> list[Page]:
    return list(connector.pull("customers", cursor))


def records_of(pages: list[Page]) -> dict[str, CrmRecord]:
    return {r.id: r for page in pages for r in page.records}


def test_full_sync_costs_n_over_100_list_requests_plus_bulk_subscription_reads(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    n = 1050
    standin.seed(n)
    ended = sum(1 for i in range(n) if status_for(i) == "canceled")
    pages = pull(connector)
    records = records_of(pages)
    assert len(records) == n and all(not r.deleted for r in records.values())
    list_requests = standin.count("GET", "/v1/customers")
    subscription_reads = standin.count("GET", "/v1/subscriptions")
    assert list_requests == math.ceil(n / 100) == len(pages)
    assert subscription_reads == math.ceil(ended / 100)
    assert standin.count() == list_requests + subscription_reads  # nothing per customer
    assert connector.call_stats.requests == standin.count()
    final = pages[-1].cursor
    assert isinstance(final, StripeCursor) and not final.in_full_sync
    assert final.customers == n and final.ended_subscriptions == ended


def test_records_carry_status_domain_external_id_and_vendor_fields(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(12)
    records = records_of(pull(connector))
    for i in range(12):
        record = records[customer_id(i)]
        identity = company(i)
        assert record.source == "stripe" and record.object == "customers"
        assert record.fields["name"] == identity.name and record.fields["email"] == identity.contact_email
        assert record.fields["email_domain"] == identity.contact_email.split("@")[1]
        assert record.fields["subscription_status"] == status_for(i)  # canceled ones from the bulk ended read
        assert record.fields["subscription"]["id"] == f"sub_S{i:013d}"
        assert "subscriptions" not in record.fields  # the embedded list is summarised, not passed on
        expected_ext = None if i % 5 == 4 else identity.external_id
        assert record.fields["metadata"].get("posthog_external_id") == expected_ext
        assert record.version is not None and record.version >= record.fields["created"] * 1000


def test_the_subscription_that_speaks_for_a_customer(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(6)  # statuses: active, trialing, active, past_due, active, canceled
    standin.add_subscription(customer_id(1), "active")  # trialing + active → active
    standin.add_subscription(customer_id(3), "trialing")  # past_due + trialing → trialing
    standin.add_subscription(customer_id(5), "incomplete")  # canceled + incomplete → incomplete (not ended)
    records = records_of(pull(connector))
    status = {rid: r.fields["subscription_status"] for rid, r in records.items()}
    assert status == {
        customer_id(0): "active",
        customer_id(1): "active",
        customer_id(2): "active",
        customer_id(3): "trialing",
        customer_id(4): "active",
        customer_id(5): "incomplete",
    }


def test_a_customer_without_any_subscription_has_no_status(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(1)
    created = standin.admin.post(
        "/v1/customers", data={"name": "Loner"}, headers={"Authorization": "Bearer sk_test_sandbox"}
    ).json()
    records = records_of(pull(connector))
    assert records[created["id"]].fields["subscription_status"] is None
    assert records[created["id"]].fields["subscription"] is None


def test_link_rank_prefers_active_then_newest_or_oldest(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(6)
    newest_first = connect()
    ranks = {rid: r.link_rank for rid, r in records_of(pull(newest_first)).items()}
    actives = [customer_id(i) for i in (0, 2, 4)]
    others = [customer_id(i) for i in (1, 3, 5)]
    assert min(ranks[a] for a in actives) > max(ranks[o] for o in others)
    assert ranks[customer_id(4)] > ranks[customer_id(2)] > ranks[customer_id(0)]  # then the newest

    oldest_first = connect(link_tiebreak="oldest", link_statuses=("trialing", "active"))
    ranks = {rid: r.link_rank for rid, r in records_of(pull(oldest_first)).items()}
    assert ranks[customer_id(1)] > ranks[customer_id(0)] > ranks[customer_id(2)] > ranks[customer_id(3)]


def test_more_than_ten_current_subscriptions_costs_one_extra_list(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(3)
    for _ in range(11):
        standin.add_subscription(customer_id(1), "past_due")
    standin.add_subscription(customer_id(1), "active")  # the 13th; Stripe embeds only 10, newest first
    standin.reset_counters()
    records = records_of(pull(connector))
    assert records[customer_id(1)].fields["subscription_status"] == "active"
    assert standin.count("GET", "/v1/customers") == 1
    assert standin.count("GET", "/v1/subscriptions") == 2  # the bulk ended read, and this customer's list


def test_an_interrupted_full_sync_resumes_where_it_stopped(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(450)
    connector = connect(page_size=100)
    partial: list[Page] = []
    for page in connector.pull("customers", None):
        partial.append(page)
        if len(partial) == 2:
            break  # the worker dies after committing two pages
    cursor = partial[-1].cursor
    assert isinstance(cursor, StripeCursor) and cursor.in_full_sync and cursor.pages == 2
    assert [p.cursor.sort_key() for p in partial if p.cursor] == sorted(
        p.cursor.sort_key() for p in partial if p.cursor
    )

    standin.reset_counters()
    rest = pull(connect(page_size=100), StripeCursor.load(cursor.dump()))
    assert any("resumed an interrupted full sync" in note for note in rest[0].notes)
    assert standin.count("GET", "/v1/customers") == 3  # only the pages not yet committed
    seen = set(records_of(partial)) | set(records_of(rest))
    assert seen == {customer_id(i) for i in range(450)}
    final = rest[-1].cursor
    assert isinstance(final, StripeCursor) and not final.in_full_sync
    assert final.created == cursor.created and final.customers == 450
    assert final.sort_key() > cursor.sort_key()


def test_a_stale_cursor_runs_a_full_sync_and_says_so(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(150)
    stale = StripeCursor(created=int(time.time()) - 31 * 86_400)
    pages = pull(connector, stale)
    assert len(records_of(pages)) == 150
    assert any("older than the 30-day event retention" in note for note in pages[0].notes)
    assert standin.count("GET", "/v1/events") == 0
    final = pages[-1].cursor
    assert isinstance(final, StripeCursor) and final.created > stale.created

    fresh = StripeCursor(created=int(time.time()) - 29 * 86_400 + 7200)
    standin.reset_counters()
    pages = pull(connector, fresh)
    assert standin.count("GET", "/v1/customers") == 0 and standin.count("GET", "/v1/events") == 1
    assert not any(page.notes for page in pages)


def test_retention_is_configurable(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(3)
    week_old = StripeCursor(created=int(time.time()) - 7 * 86_400)
    pages = pull(connect(event_retention_days=5), week_old)
    assert any("5-day event retention" in note for note in pages[0].notes)
    assert len(records_of(pages)) == 3


def test_an_empty_account_still_ends_with_a_cursor(standin: StripeStandIn, connector: StripeConnector) -> None:
    pages = pull(connector)
    assert len(pages) == 1 and pages[0].records == []
    assert isinstance(pages[0].cursor, StripeCursor) and pages[0].cursor.customers == 0


def test_a_vanished_resume_point_goes_on_by_creation_time(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(250)
    gone = StripeCursor(
        created=int(time.time()),
        resume_after="cus_deleted_since",
        resume_created=created_for(120, DEFAULT_BASE_TIME),
        pages=1,
    )
    pages = pull(connector, gone)  # Stripe answers 404 for a starting_after it no longer knows
    assert set(records_of(pages)) == {customer_id(i) for i in range(121)}  # created at or before the resume point
    assert any("resumed an interrupted full sync" in note for note in pages[0].notes)
    assert standin.count("GET", "/v1/customers", status=404) == 1
    assert standin.count("GET", "/v1/customers", status=200) == 2


def test_a_resume_point_stripe_no_longer_knows_starts_the_full_sync_over(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(3)
    broken = StripeCursor(created=int(time.time()), resume_after="cus_nope", pages=1)
    pages = pull(connector, broken)
    assert len(records_of(pages)) == 3
    assert any("is gone; started the full sync over" in note for note in pages[0].notes)
    assert standin.count("GET", "/v1/customers", status=404) == 1


def test_only_the_customers_stream_exists(connector: StripeConnector) -> None:
    with pytest.raises(FatalError, match="only the customers stream"):
        next(iter(connector.pull("invoices", None)))
