"""Push-back: batch updates of 100, properties created on the first push, bad records isolated."""

from __future__ import annotations

import math

import redis

from connectors.hubspot import HubSpotConnector
from connectors.registry import stream_fields
from sync.connector import PushUpdate
from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig, load_mapping_config
from sync.posthog import PostHogClient
from tests.connectors.hubspot.conftest import HubSpotSandbox, make_config


def updates(ids: list[str], prefix: str = "acct") -> list[PushUpdate]:
    return [PushUpdate(rid, {"posthog_account_id": f"{prefix}-{rid}"}, f"fp-{rid}") for rid in ids]


def test_push_of_n_records_costs_ceil_n_over_100_batch_requests(
    hubspot: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    ids = hubspot.seed(220)  # 252 deals
    results = connector.push("deals", updates(ids))

    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert hubspot.count("/deals/batch/update", "POST", 200) == math.ceil(len(ids) / 100) == 3
    # The first push created the missing custom property (one listing, one create); the next creates nothing.
    assert hubspot.count("/properties/{objectType}", "GET") == 1
    assert hubspot.count("/properties/{objectType}", "POST", 201) == 1
    assert hubspot.property_value(ids[-1], "posthog_account_id") == f"acct-{ids[-1]}"

    hubspot.reset_counters()
    connector.push("deals", updates(ids[:101], "again"))
    assert hubspot.stats()["total"] == hubspot.count("/deals/batch/update") == 2


def test_a_value_hubspot_refuses_fails_only_its_record(hubspot: HubSpotSandbox, connector: HubSpotConnector) -> None:
    ids = hubspot.seed(8)  # 10 deals
    batch = updates(ids)
    batch[6] = PushUpdate(ids[6], {"posthog_account_id": "x", "hs_object_id": "1"}, "fp")  # read-only: 400

    results = {r.record_id: r for r in connector.push("deals", batch)}

    assert [rid for rid, r in results.items() if not r.ok] == [ids[6]]
    assert "READ_ONLY_VALUE" in (results[ids[6]].error or "") and not results[ids[6]].retryable
    assert all(hubspot.property_value(rid, "posthog_account_id") for rid in ids if rid != ids[6])
    # Halving isolates it: 10 (400) → 0-4 (ok) + 5-9 (400) → 5-6 (400) + 7-9 (ok) → 5 (ok) + 6 (400).
    assert hubspot.count("/deals/batch/update", status=400) == 4
    assert hubspot.count("/deals/batch/update", status=200) == 3


def test_unknown_ids_and_nested_paths_are_per_record_errors(
    hubspot: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    ids = hubspot.seed(3)
    batch = [*updates(ids), PushUpdate("123", {"posthog_account_id": "a"}, "fp")]
    batch.append(PushUpdate(ids[0], {"company.name": "nope"}, "fp"))

    results = connector.push("deals", batch)

    failed = {r.record_id: r.error for r in results if not r.ok}
    assert set(failed) == {"123", ids[0]}
    assert "OBJECT_NOT_FOUND" in (failed["123"] or "")
    assert sum(r.ok for r in results) == len(ids)
    assert hubspot.count("/deals/batch/update", status=207) == 1  # one request: the unknown id is named in it


def test_engine_push_back_costs_ceil_n_over_100_and_nothing_when_unchanged(
    hubspot: HubSpotSandbox, connector: HubSpotConnector, engine: SyncEngine, ph_reps: PostHogClient
) -> None:
    ids = hubspot.seed(110)  # 126 deals: a page of 100 and a page of 26
    report = engine.run(connector, "deals", "full")

    assert report.counts["pushed"] == len(ids) == 126
    assert hubspot.count("/deals/batch/update", "POST", 200) == 2
    accounts = {a.properties.payload().get("hubspot_deal_id"): a.id for a in ph_reps.iter_accounts()}
    assert hubspot.property_value(ids[0], "posthog_account_id") == accounts[ids[0]]

    hubspot.reset_counters()
    again = engine.run(connector, "deals", "full")
    assert again.counts["unchanged"] == 126 and again.counts["pushed"] == 0
    assert hubspot.count("/deals/batch/update") == 0


def test_the_properties_push_back_writes_and_reads_back_come_from_the_mapping(
    hubspot: HubSpotSandbox,
    redis_client: redis.Redis,
    budget_namespace: str,
    ph_reps: PostHogClient,
    ledger: Ledger,
    mapping: MappingConfig,
) -> None:
    raw = mapping.model_dump(mode="json")
    deals = raw["mappings"]["hubspot"]["deals"]
    deals["account_id_field"] = "crm_account_ref"
    for field in deals["fields"]:
        if field["direction"] == "outbound":
            field["source"] = "crm_csm_email"
    moved = load_mapping_config(raw)
    config = make_config(hubspot.url, budget_namespace)
    connector = HubSpotConnector(config, redis_client, fields=stream_fields("hubspot", moved)["deals"])
    assert connector.push_properties == ("crm_account_ref", "crm_csm_email")
    ids = hubspot.seed(3)

    report = SyncEngine(ph_reps, ledger, moved).run(connector, "deals", "full")
    assert report.counts["pushed"] == len(ids), report.as_dict()
    names = {p["name"] for p in hubspot.api("GET", "/crm/v3/properties/deals")["results"]}
    assert {"crm_account_ref", "crm_csm_email"} <= names and "posthog_account_id" not in names
    accounts = {a.properties.payload().get("hubspot_deal_id"): a.id for a in ph_reps.iter_accounts()}
    assert all(hubspot.property_value(deal, "crm_account_ref") == account for deal, account in accounts.items())

    read = {r.id: r.fields for page in connector.pull("deals", None) for r in page.records}  # read back
    assert all(read[deal]["crm_account_ref"] == account for deal, account in accounts.items())
    assert all("posthog_account_id" not in fields for fields in read.values())
