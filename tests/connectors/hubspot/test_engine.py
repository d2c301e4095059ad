"""The HubSpot connector under the sync engine: HubSpot stand-in → connector (official SDK) → engine → Redis
ledger → PostHog stand-in, and account ids pushed back. Asserted by what the stand-ins hold and their counters."""

from __future__ import annotations

from typing import Any

import redis

from connectors.hubspot import HubSpotConnector
from sandbox.hubspot.seeding import OWNER_ID_BASE, company_id, deal_id
from sandbox.identities import company, sales_rep_email
from sync.engine import SyncEngine
from sync.posthog import PostHogClient
from sync.posthog.models import Account
from tests.conftest import PostHogSandbox
from tests.connectors.hubspot.conftest import HubSpotSandbox, WebhookReceiver, drain_webhooks, make_config
from tests.support.roles import assign_in_posthog, role_holders


def accounts_by_external_id(ph: PostHogClient) -> dict[str | None, Account]:
    return {a.external_id: a for a in ph.iter_accounts()}


def link_of(account: Account) -> Any:
    return account.properties.payload().get("hubspot_deal_id")


def test_full_sync_makes_one_account_per_company_and_pushes_the_ids_back(
    hubspot: HubSpotSandbox,
    connector: HubSpotConnector,
    engine: SyncEngine,
    ph_reps: PostHogClient,
    posthog_reps: PostHogSandbox,
) -> None:
    deals = hubspot.seed(15)  # 18 deals: companies 0, 7 and 14 also have an older, lost deal

    report = engine.run(connector, "deals", "full")

    assert report.status == "succeeded"
    assert report.counts["created"] == 15 and report.counts["failed"] == 0 and report.errors == []
    assert report.counts["superseded"] == 3  # a company's other deals are not errors
    accounts = accounts_by_external_id(ph_reps)
    for i in range(15):
        account = accounts[company(i).external_id]
        assert account.name == company(i).name
        assert link_of(account) == str(deal_id(i))  # the open, newer deal holds the link
        assert role_holders(ph_reps, account.id)["account_executive"] == sales_rep_email(i % 10)
    for rid in deals:  # every deal of a company carries its account id, superseded ones too
        i = (int(rid) - deal_id(0)) // 2
        assert hubspot.property_value(rid, "posthog_account_id") == accounts[company(i).external_id].id
    assert hubspot.count("/crm/v3/objects/deals", "GET") == 2  # live deals, then archived ones
    assert hubspot.count("/companies/batch/read") == 1 and hubspot.count("/deals/batch/update") == 1

    hubspot.reset_counters()
    posthog_reps.reset_counters()
    again = engine.run(connector, "deals", "full")
    assert again.counts["unchanged"] == 18 and again.counts["pushed"] == 0
    assert posthog_reps.count("POST") == posthog_reps.count("PATCH") == 0
    assert hubspot.count("/batch/update") == 0


def test_incremental_applies_deal_and_company_changes(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    hubspot.seed(10)
    engine.run(connector, "deals", "full")
    hubspot.edit("deals", str(deal_id(3)), hubspot_owner_id=str(OWNER_ID_BASE + 5))
    hubspot.edit("companies", str(company_id(4)), name="Globex Renamed")

    report = engine.run(connector, "deals", "incremental")

    assert report.status == "succeeded" and report.counts["failed"] == 0 and report.counts["updated"] == 2
    accounts = accounts_by_external_id(ph_reps)
    assert role_holders(ph_reps, accounts[company(3).external_id].id)["account_executive"] == sales_rep_email(5)
    assert accounts[company(4).external_id].name == "Globex Renamed"  # read through the company pass


def test_the_most_recently_created_open_deal_holds_the_link(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    hubspot.seed(15)
    # Company 7: its newer deal is closed and its older one open; company 14: both closed.
    hubspot.edit("deals", str(deal_id(7)), dealstage="closedwon")
    hubspot.edit("deals", str(deal_id(7, True)), dealstage="qualifiedtobuy")
    hubspot.edit("deals", str(deal_id(14)), dealstage="closedwon")

    report = engine.run(connector, "deals", "full")

    assert report.counts["superseded"] == 3 and report.counts["failed"] == 0
    accounts = accounts_by_external_id(ph_reps)
    assert link_of(accounts[company(0).external_id]) == str(deal_id(0))  # open and newest
    assert link_of(accounts[company(7).external_id]) == str(deal_id(7, True))  # the only open one
    assert link_of(accounts[company(14).external_id]) == str(deal_id(14))  # none open: the newest


def test_the_link_rule_is_configurable(
    hubspot: HubSpotSandbox,
    redis_client: redis.Redis,
    budget_namespace: str,
    engine: SyncEngine,
    ph_reps: PostHogClient,
) -> None:
    hubspot.seed(8)
    oldest = HubSpotConnector(make_config(hubspot.url, budget_namespace, link_rule="oldest"), redis_client)
    engine.run(oldest, "deals", "full")
    assert link_of(accounts_by_external_id(ph_reps)[company(7).external_id]) == str(deal_id(7, True))


def test_a_stage_change_later_moves_the_link(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    hubspot.seed(8)
    engine.run(connector, "deals", "full")
    hubspot.edit("deals", str(deal_id(7)), dealstage="closedwon")
    hubspot.edit("deals", str(deal_id(7, True)), dealstage="qualifiedtobuy")

    engine.run(connector, "deals", "incremental")

    assert link_of(accounts_by_external_id(ph_reps)[company(7).external_id]) == str(deal_id(7, True))


def test_a_deal_without_company_is_named_after_the_deal(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    created = hubspot.api(
        "POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Solo expansion", "pipeline": "default"}}
    )
    engine.run(connector, "deals", "full")
    [account] = list(ph_reps.iter_accounts())
    assert account.name == "Solo expansion" and link_of(account) == created["id"]


def test_archived_deals_unlink_on_a_full_sync_and_by_webhook(
    hubspot: HubSpotSandbox,
    connector: HubSpotConnector,
    engine: SyncEngine,
    ph_reps: PostHogClient,
    webhook_receiver: WebhookReceiver,
) -> None:
    hubspot.seed(6)
    engine.run(connector, "deals", "full")

    hubspot.archive("deals", str(deal_id(2)))
    full = engine.run(connector, "deals", "full")
    assert full.counts["unlinked"] == 1
    assert link_of(accounts_by_external_id(ph_reps)[company(2).external_id]) is None

    drain_webhooks(hubspot)
    webhook_receiver.deliveries.clear()
    hubspot.archive("deals", str(deal_id(5)))
    drain_webhooks(hubspot)
    events = []
    for request in webhook_receiver.deliveries:
        connector.verify_webhook(request)
        events.extend(connector.parse_webhook(request))
    refreshed = engine.refresh(connector, "deals", [e.id for e in events])
    assert refreshed.counts["unlinked"] == 1
    assert link_of(accounts_by_external_id(ph_reps)[company(5).external_id]) is None


def test_a_merge_reads_as_the_old_id_deleted_then_the_survivor(
    hubspot: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    hubspot.seed(8)
    [*_, last] = list(connector.pull("deals", None))
    survivor, merged = str(deal_id(7, True)), str(deal_id(7))
    hubspot.merge("deals", survivor, merged)

    records = [r for page in connector.pull("deals", last.cursor) for r in page.records]
    fetched = connector.fetch("deals", [survivor, merged])

    for batch in (records, fetched):
        ids = [r.id for r in batch]
        assert ids.index(merged) < ids.index(survivor)
        gone = next(r for r in batch if r.id == merged)
        kept = next(r for r in batch if r.id == survivor)
        assert gone.deleted and not kept.deleted and kept.merged_ids == (merged,)
        assert kept.fields["company"]["id"] == str(company_id(7))  # the survivor took over the company link


def test_after_a_merge_whose_survivor_changed_the_account_carries_the_survivor(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    hubspot.seed(8)
    survivor, merged = str(deal_id(7, True)), str(deal_id(7))
    hubspot.edit("deals", survivor, hubspot_owner_id="")  # the duplicate had no owner yet
    engine.run(connector, "deals", "full")
    assert link_of(accounts_by_external_id(ph_reps)[company(7).external_id]) == merged

    hubspot.merge("deals", survivor, merged)  # the survivor takes over the owner of the merged deal
    report = engine.run(connector, "deals", "incremental")

    assert report.counts["failed"] == 0
    account = accounts_by_external_id(ph_reps)[company(7).external_id]
    assert link_of(account) == survivor
    assert hubspot.property_value(survivor, "posthog_account_id") == account.id


def test_after_a_merge_the_account_carries_the_surviving_deal(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    hubspot.seed(8)
    engine.run(connector, "deals", "full")
    survivor, merged = str(deal_id(7, True)), str(deal_id(7))
    hubspot.merge("deals", survivor, merged)  # the account's deal is merged into the company's other deal

    engine.run(connector, "deals", "incremental")

    assert link_of(accounts_by_external_id(ph_reps)[company(7).external_id]) == survivor


def test_a_csm_reassigned_in_posthog_reaches_the_deal(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    """``roles.csm: posthog_wins``, pushed out through ``posthog_csm_email`` (examples/crmsync.yaml): a person
    assigns the CSM on PostHog's relationship endpoint and the next outbound pass writes it to the deal."""
    hubspot.seed(4)
    engine.run(connector, "deals", "full")
    engine.push_back_pass(connector, "deals")
    account = accounts_by_external_id(ph_reps)[company(2).external_id]
    assign_in_posthog(ph_reps, account.id, "csm", 103)

    with engine.queries.sharing():  # as the crmsync.sync_outbound task runs its passes
        report = engine.push_back_pass(connector, "deals")

    assert report.status == "succeeded" and report.counts["pushed"] == 1, report.as_dict()
    assert hubspot.property_value(str(deal_id(2)), "posthog_csm_email") == sales_rep_email(3)
    assert engine.push_back_pass(connector, "deals").counts["pushed"] == 0  # pushed once
