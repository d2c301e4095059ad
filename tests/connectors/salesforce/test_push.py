"""Writing back: sObject Collections in batches of 200, per-record errors, External IDs in URLs, the engine's echo."""

from __future__ import annotations

import math

import pytest

from connectors.salesforce.soql import path_segment
from sync.connector import PushUpdate
from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig, load_mapping_config
from sync.posthog import PostHogClient
from tests.connectors.salesforce.conftest import StandIn


@pytest.mark.parametrize("n", [1, 200, 401])
def test_push_of_n_accounts_costs_ceil_n_over_200_requests(standin: StandIn, n: int) -> None:
    ids = standin.seed(n)
    connector = standin.connector()
    results = connector.push("Account", [PushUpdate(rid, {"PostHog_Account_Id__c": f"ph-{rid}"}, "fp") for rid in ids])
    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert standin.count("/composite/sobjects", "PATCH", 200) == math.ceil(n / 200)
    landed = standin.sdk().query("SELECT COUNT() FROM Account WHERE PostHog_Account_Id__c != null")["totalSize"]
    assert landed == n


def test_rejected_records_are_reported_while_the_others_land(standin: StandIn) -> None:
    ids = standin.seed(5)
    standin.admin("DELETE", f"/sobjects/Account/{ids[3]}")
    connector = standin.connector()
    updates = [
        PushUpdate(ids[0], {"PostHog_Account_Id__c": "ph-0", "PostHog_CSM_Email__c": "ana.rep0@example.com"}, "a"),
        PushUpdate(ids[1], {"PostHog_CSM_Email__c": "not-an-email"}, "b"),  # the stand-in rejects it
        PushUpdate(ids[2], {"PostHog_Account_Id__c": "ph-2"}, "c"),
        PushUpdate(ids[3], {"PostHog_Account_Id__c": "ph-3"}, "d"),  # in the recycle bin
        PushUpdate(ids[4], {"Owner.Email": "x@example.com"}, "e"),  # a relationship path: refused before sending
        PushUpdate("001-not-an-id", {"PostHog_Account_Id__c": "x"}, "f"),
    ]
    results = connector.push("Account", updates)
    assert [r.record_id for r in results] == [u.record_id for u in updates]
    assert [r.ok for r in results] == [True, False, True, False, False, False]
    assert "INVALID_EMAIL_ADDRESS" in (results[1].error or "") and not results[1].retryable
    assert "ENTITY_IS_DELETED" in (results[3].error or "")
    assert "relationship" in (results[4].error or "") and "not a Salesforce record id" in (results[5].error or "")
    assert standin.count("/composite/sobjects", "PATCH") == 1
    assert standin.record(ids[0])["PostHog_CSM_Email__c"] == "ana.rep0@example.com"
    assert standin.record(ids[2])["PostHog_Account_Id__c"] == "ph-2"
    assert standin.record(ids[1])["PostHog_CSM_Email__c"] is None


def test_none_clears_a_field(standin: StandIn) -> None:
    [rid] = standin.seed(1)
    connector = standin.connector()
    assert connector.push("Account", [PushUpdate(rid, {"PostHog_Account_Id__c": "ph"}, "a")])[0].ok
    assert connector.push("Account", [PushUpdate(rid, {"PostHog_Account_Id__c": None}, "b")])[0].ok
    assert standin.record(rid)["PostHog_Account_Id__c"] is None


def test_a_failing_request_fails_its_records_as_retryable(standin: StandIn) -> None:
    ids = standin.seed(3)
    connector = standin.connector(max_retries=0)
    connector.client.sdk()
    standin.faults(rate_5xx=1.0)
    results = connector.push("Account", [PushUpdate(rid, {"PostHog_Account_Id__c": "x"}, "f") for rid in ids])
    assert [(r.ok, r.retryable) for r in results] == [(False, True)] * 3


EXTERNAL_IDS = ["a#b", "x/y/z", "what?q=1&r=2", "with space", "Zürich-ü", "東京", "100%", "it's \\ odd", "+plus+"]


def test_external_ids_round_trip_through_urls(standin: StandIn) -> None:
    connector = standin.connector()
    created: dict[str, str] = {}
    for value in EXTERNAL_IDS:
        result, was_created = connector.upsert_by_external_id(value, {"Name": f"Co {value}"})
        assert result.ok and was_created, (value, result)
        created[value] = result.record_id
    assert connector.find_by_external_id([*EXTERNAL_IDS, "nobody"]) == {
        **{value: [rid] for value, rid in created.items()},
        "nobody": [],
    }
    pulled = {r.fields["PostHog_External_Id__c"]: r.id for p in connector.pull("Account", None) for r in p.records}
    assert pulled == created
    result, was_created = connector.upsert_by_external_id("ZÜRICH-Ü", {"Website": "https://zurich.example"})
    assert result.ok and not was_created and result.record_id == created["Zürich-ü"]  # matching ignores case
    assert standin.record(created["Zürich-ü"])["Website"] == "https://zurich.example"
    assert standin.count("/sobjects/{sobject}/{field_name}/{value:path}", "PATCH", 201) == len(EXTERNAL_IDS)


def test_external_ids_a_url_cannot_carry_are_refused(standin: StandIn) -> None:
    connector = standin.connector()
    for value in ("", ".", ".."):
        result, created = connector.upsert_by_external_id(value, {"Name": "Nope"})
        assert not result.ok and not created
    assert path_segment("a#b/c?d e") == "a%23b%2Fc%3Fd%20e" and path_segment("ü") == "%C3%BC"
    assert standin.count() == 0


def test_duplicate_external_ids_are_reported(standin: StandIn) -> None:
    ids = standin.seed(2)
    for rid in ids:
        standin.admin("PATCH", f"/sobjects/Account/{rid}", json={"PostHog_External_Id__c": "shared"})
    connector = standin.connector()
    assert sorted(connector.find_by_external_id(["shared"])["shared"]) == sorted(ids)
    result, _ = connector.upsert_by_external_id("shared", {"Website": "https://x.example"})
    assert not result.ok and "MULTIPLE_RECORDS" in (result.error or "")


def test_engine_pushes_account_ids_once_and_ignores_its_echo(
    standin: StandIn, engine: SyncEngine, sf_ph: PostHogClient
) -> None:
    ids = standin.seed(250)
    connector = standin.connector(mapping=engine.mapping, page_size=200)
    first = engine.run(connector, "Account", "full")
    assert first.counts["created"] == 250 and first.counts["pushed"] == 250, first.as_dict()
    assert standin.count("/composite/sobjects", "PATCH") == 2  # one per page of new accounts
    accounts = {a.properties.sfdc_id: a.id for a in sf_ph.iter_accounts()}
    assert all(standin.record(rid)["PostHog_Account_Id__c"] == accounts[rid] for rid in ids[:5])
    echo = engine.run(connector, "Account")  # the pushes bumped SystemModstamp: every row comes back once
    assert echo.counts["seen"] == 250 and echo.counts["unchanged"] == 250 and echo.counts["pushed"] == 0
    assert standin.count("/composite/sobjects", "PATCH") == 2


def test_the_fields_push_back_writes_and_reads_back_come_from_the_mapping(
    standin: StandIn, sf_ph: PostHogClient, ledger: Ledger, mapping: MappingConfig
) -> None:
    raw = mapping.model_dump(mode="json")
    raw["mappings"]["salesforce"]["Account"]["account_id_field"] = "Legacy_Account_Ref__c"
    moved = load_mapping_config(raw)
    ids = standin.seed(3)
    connector = standin.connector(mapping=moved)
    assert connector.written == ("Legacy_Account_Ref__c", "PostHog_CSM_Email__c", "PostHog_Health_Score__c")

    report = SyncEngine(sf_ph, ledger, moved).run(connector, "Account", "full")
    assert report.counts["pushed"] == 3, report.as_dict()
    accounts = {a.properties.sfdc_id: a.id for a in sf_ph.iter_accounts()}
    for rid in ids:
        written = standin.record(rid)
        assert written["Legacy_Account_Ref__c"] == accounts[rid] and written["PostHog_Account_Id__c"] is None

    [page] = list(connector.pull("Account", None))  # read back: the mapping's field, not the old default
    assert {r.id: r.fields["Legacy_Account_Ref__c"] for r in page.records} == accounts
    assert all("PostHog_Account_Id__c" not in r.fields for r in page.records)
