"""The Stripe connector under the real engine: Stripe stand-in → engine → real Redis ledger → PostHog stand-in.

The mapping is the ``stripe`` section of ``examples/crmsync.yaml``. Costs are asserted by request counts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import stripe

from connectors.stripe import StripeConnector, StripeCursor
from sandbox.identities import company
from sandbox.stripe.seed import customer_id, status_for, subscription_id
from sync.connector import WebhookRequest
from sync.engine import SyncEngine
from sync.errors import RetryableError
from sync.ledger import Ledger
from sync.mapping import MappingConfig, load_mapping_file
from sync.posthog import PostHogClient
from tests.conftest import PostHogSandbox
from tests.connectors.stripe.conftest import WEBHOOK_SECRET, Connect, StripeStandIn, stripe_event_body

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "crmsync.yaml"


@pytest.fixture
def mapping() -> MappingConfig:
    return load_mapping_file(EXAMPLE)


@pytest.fixture
def engine(posthog: PostHogSandbox, ph: PostHogClient, ledger: Ledger, mapping: MappingConfig) -> SyncEngine:
    return SyncEngine(ph, ledger, mapping)


def writes(posthog: PostHogSandbox) -> int:
    return sum(posthog.count(m) for m in ("POST", "PATCH", "PUT", "DELETE"))


def accounts_by_customer(ph: PostHogClient) -> dict[str, object]:
    return {str(a.properties.stripe_customer_id): a for a in ph.iter_accounts() if a.properties.stripe_customer_id}


def test_a_full_sync_creates_accounts_pushes_ids_back_and_then_costs_nothing(
    engine: SyncEngine,
    connector: StripeConnector,
    standin: StripeStandIn,
    posthog: PostHogSandbox,
    ph: PostHogClient,
) -> None:
    standin.seed(12)
    report = engine.run(connector, "customers", mode="full")
    assert report.status == "succeeded", report.as_dict()
    assert report.counts["created"] == 12 and report.counts["pushed"] == 12 and report.counts["failed"] == 0
    accounts = {a.properties.stripe_customer_id: a for a in ph.iter_accounts()}
    for i in range(12):
        account = accounts[customer_id(i)]
        assert account.name == company(i).name
        assert account.external_id == (None if i % 5 == 4 else company(i).external_id)
        assert account.tags == [f"stripe-{status_for(i)}"]
        assert standin.api(f"/v1/customers/{customer_id(i)}")["metadata"]["posthog_account_id"] == account.id

    posthog.reset_counters()
    standin.reset_counters()
    again = engine.run(connector, "customers", mode="full")
    assert again.counts["unchanged"] == 12 and again.counts["pushed"] == 0
    assert writes(posthog) == 0 and standin.count("POST") == 0
    echo = engine.run(connector, "customers")  # the events of our own pushes: recognised, never re-read
    assert echo.counts["seen"] == 0 and standin.count("GET", "/v1/customers/{customer_id}") == 0
    assert writes(posthog) == 0


def test_several_customers_of_one_account_the_link_goes_to_the_active_newest(
    engine: SyncEngine, connector: StripeConnector, standin: StripeStandIn, ph: PostHogClient
) -> None:
    standin.seed(4)  # 0 active, 1 trialing, 2 active, 3 past_due
    shared = company(0).external_id
    for i in (1, 2, 3):
        standin.edit(customer_id(i), metadata={"posthog_external_id": shared})
    report = engine.run(connector, "customers", mode="full")
    assert report.counts["created"] == 1 and report.counts["superseded"] >= 2, report.as_dict()
    (account,) = list(ph.iter_accounts())
    assert account.properties.stripe_customer_id == customer_id(2)  # active, and newer than customer 0
    assert account.tags == ["stripe-active"]
    for i in range(4):  # every customer of the account is told its id
        assert standin.api(f"/v1/customers/{customer_id(i)}")["metadata"]["posthog_account_id"] == account.id


def test_a_customer_without_a_name_is_named_after_its_email_domain(
    engine: SyncEngine, connector: StripeConnector, standin: StripeStandIn, ph: PostHogClient
) -> None:
    standin.seed(1)
    standin.edit(customer_id(0), name=None, email="billing@Nameless-Corp.io")
    engine.run(connector, "customers", mode="full")
    (account,) = list(ph.iter_accounts())
    assert account.name == "nameless-corp.io"


def test_incremental_applies_each_changed_customer_once(
    engine: SyncEngine,
    connector: StripeConnector,
    standin: StripeStandIn,
    posthog: PostHogSandbox,
    ph: PostHogClient,
) -> None:
    standin.seed(150)
    engine.run(connector, "customers", mode="full")
    changed = range(0, 150, 2)
    for i in changed:
        standin.edit(customer_id(i), name=f"Renamed {i}")
    for i in range(0, 30, 2):  # changed twice; the second event aged to look older than the first
        standin.edit(customer_id(i), name=f"Final {i}")
    final = [
        e["id"] for e in standin.events(type="customer.updated") if e["data"]["object"]["name"].startswith("Final")
    ]
    standin.age_events(20, final)
    standin.set_subscription(subscription_id(2), "past_due")

    posthog.reset_counters()
    report = engine.run(connector, "customers")
    assert report.status == "succeeded" and report.counts["updated"] == len(changed), report.as_dict()
    assert posthog.count("PATCH") == len(changed)  # once each, though many had several events
    names = {str(a.properties.stripe_customer_id): a for a in ph.iter_accounts()}
    assert names[customer_id(4)].name == "Final 4" and names[customer_id(40)].name == "Renamed 40"
    assert names[customer_id(2)].tags == ["stripe-past_due"]

    posthog.reset_counters()
    again = engine.run(connector, "customers")  # overlaps the last window: nothing is applied twice
    assert writes(posthog) == 0 and again.counts["updated"] == 0


def test_customer_deleted_unlinks_the_account(
    engine: SyncEngine, connector: StripeConnector, standin: StripeStandIn, ph: PostHogClient
) -> None:
    standin.seed(3)
    engine.run(connector, "customers", mode="full")
    account_id = {a.properties.stripe_customer_id: a.id for a in ph.iter_accounts()}[customer_id(1)]
    standin.delete(customer_id(1))
    report = engine.run(connector, "customers")
    assert report.counts["unlinked"] == 1, report.as_dict()
    account = ph.get_account(account_id)
    assert account.properties.stripe_customer_id is None and account.tags == []


def test_a_stale_cursor_runs_a_full_sync_and_the_report_says_so(
    engine: SyncEngine, connector: StripeConnector, standin: StripeStandIn, ledger: Ledger
) -> None:
    standin.seed(3)
    engine.run(connector, "customers", mode="full")
    ledger.set_cursor("stripe", "customers", StripeCursor(created=int(time.time()) - 40 * 86_400).dump())
    report = engine.run(connector, "customers")  # asked for an incremental run
    assert report.status == "succeeded" and report.counts["seen"] == 3 and report.counts["unchanged"] == 3
    assert any("older than the 30-day event retention" in note for note in report.notes)
    assert any("older than the 30-day event retention" in note for note in ledger.recent_runs(1)[0]["notes"])
    stored = StripeCursor.load(ledger.get_cursor("stripe", "customers") or "")
    assert stored.created > int(time.time()) - 3600


def test_a_webhook_refreshes_the_customer_it_names(
    engine: SyncEngine, connector: StripeConnector, standin: StripeStandIn, ph: PostHogClient
) -> None:
    standin.seed(3)
    engine.run(connector, "customers", mode="full")
    standin.edit(customer_id(1), name="Renamed by webhook")
    event = next(e for e in standin.events(type="customer.updated") if e["data"]["object"]["id"] == customer_id(1))
    body = stripe_event_body(event)
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    request = WebhookRequest("POST", "https://crmsync.example.com/webhooks/stripe", {"Stripe-Signature": header}, body)
    connector.verify_webhook(request)
    events = connector.parse_webhook(request)
    report = engine.refresh(connector, "customers", [e.id for e in events])
    assert report.counts["updated"] == 1
    assert {a.properties.stripe_customer_id: a.name for a in ph.iter_accounts()}[customer_id(1)] == "Renamed by webhook"


def test_stripe_errors_reach_the_run_report(engine: SyncEngine, connect: Connect, standin: StripeStandIn) -> None:
    standin.seed(2)
    failed = engine.run(connect(api_key="sk_test_wrong"), "customers", mode="full")
    assert failed.status == "failed" and failed.reason is not None and "401" in failed.reason
    standin.faults(rate_429=1.0)
    with pytest.raises(RetryableError):
        engine.run(connect(), "customers", mode="full")
