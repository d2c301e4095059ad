"""The sync engine end to end: in-memory CRM connectors → real Redis ledger → PostHog stand-in over HTTP.

Costs are asserted by counts (requests the stand-in saw, Redis round trips), never by time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig, load_mapping_config
from sync.posthog import AccountFilter, PostHogClient
from sync.posthog.relationships import RelationshipApi
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.support.redis_counting import CountingConnection

MAPPING: dict[str, Any] = {
    "ownership": {
        "name": {"rule": "precedence", "order": ["memcrm", "othercrm"]},
        "roles.csm": {"rule": "posthog_wins"},
    },
    "mappings": {
        "memcrm": {
            "accounts": {
                "link": "sfdc_id",
                "account_id_field": "posthog_account_id",
                "link_fields": {"hubspot_deal_id": "hubspot_id"},
                "unlink_tag": "memcrm-deleted",
                "fields": [
                    {"source": "name", "target": "name", "transforms": ["strip"]},
                    {"source": "ext", "target": "external_id"},
                    {"source": "owner", "target": "roles.account_owner", "transforms": ["strip", "lower"]},
                    {"source": "plan", "target": "tags", "transforms": [{"template": "plan-{plan}"}]},
                    {"source": "csm_email", "target": "roles.csm", "direction": "outbound"},
                ],
            }
        },
        "othercrm": {
            "accounts": {
                "link": "hubspot_deal_id",
                "account_id_field": "posthog_id",
                "fields": [
                    {"source": "title", "target": "name"},
                    {"source": "ext", "target": "external_id"},
                ],
            }
        },
    },
}


class OtherConnector(MemoryConnector):
    source: ClassVar[str] = "othercrm"


@pytest.fixture
def mapping() -> MappingConfig:
    return load_mapping_config(MAPPING)


@pytest.fixture
def engine(ph: PostHogClient, ledger: Ledger, mapping: MappingConfig) -> SyncEngine:
    return SyncEngine(ph, ledger, mapping)


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
def conn(crm: MemoryCrm) -> MemoryConnector:
    return MemoryConnector(crm)


@pytest.fixture
def other() -> Iterator[OtherConnector]:
    yield OtherConnector(MemoryCrm(source="othercrm"))


def seed(crm: MemoryCrm, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        crm.put(f"001{i:05d}", name=f" Company {i} ", ext=f"acct-{i}", plan="pro" if i % 2 else "free")


def writes(posthog: PostHogSandbox) -> int:
    """Requests that change something: a query API call (``POST .../query/``) only reads."""
    return sum(posthog.count(m) for m in ("POST", "PATCH", "PUT", "DELETE")) - posthog.count("POST", "/query/")


def detail_gets(posthog: PostHogSandbox) -> int:
    return sum(
        r["count"] for r in posthog.stats()["requests"] if r["method"] == "GET" and r["route"].rstrip("/").endswith("}")
    )


# -- the first run, and the second run that costs nothing --------------------------------------------------------


def test_first_run_creates_and_second_run_makes_no_requests(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    seed(crm, 30)
    report = engine.run(conn, "accounts", mode="full")
    assert report.status == "succeeded", report.as_dict()
    assert report.counts["created"] == 30 and report.counts["failed"] == 0
    accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert len(accounts) == 30
    acme = accounts["acct-3"]
    assert acme.name == "Company 3" and acme.properties.sfdc_id == "00100003" and acme.tags == ["plan-pro"]
    assert crm.records["00100003"]["posthog_account_id"] == acme.id  # pushed back
    assert report.counts["pushed"] == 30 and crm.push_requests == 1  # one batch

    posthog.reset_counters()
    again = engine.run(conn, "accounts", mode="full")  # everything again, including our own push echoes
    assert again.counts["unchanged"] == 30 and again.counts["updated"] == 0 and again.counts["pushed"] == 0
    assert writes(posthog) == 0 and detail_gets(posthog) == 0
    assert crm.push_requests == 1


def test_k_changed_records_make_exactly_k_patches(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    seed(crm, 20)
    engine.run(conn, "accounts", mode="full")
    for i in (2, 5, 11):
        crm.put(f"001{i:05d}", name=f"Renamed {i}")
    posthog.reset_counters()
    report = engine.run(conn, "accounts")  # incremental from the committed cursor
    assert report.counts["updated"] == 3
    assert posthog.count("PATCH") == 3 and posthog.count("POST") == 0
    assert detail_gets(posthog) == 0  # a PATCH starts from what PostHog returned last time: no GET
    assert sorted(a.name for a in ph.iter_accounts(AccountFilter(search="Renamed"))) == [
        "Renamed 11",
        "Renamed 2",
        "Renamed 5",
    ]


# -- merge safety: ownership, people's edits, unknown keys ------------------------------------------------------


def test_lower_precedence_source_does_not_overwrite(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, other: OtherConnector, ph: PostHogClient
) -> None:
    crm.put("001A", name="Acme (from memcrm)", ext="acct-acme")
    other.crm.put("deal-1", title="Acme (from othercrm)", ext="acct-acme")
    engine.run(conn, "accounts")
    report = engine.run(other, "accounts")
    assert report.counts["conflicts"] == 1
    (account,) = list(ph.iter_accounts())
    assert account.name == "Acme (from memcrm)"
    # Two sources, one external_id: one account carrying both links.
    assert account.properties.sfdc_id == "001A" and account.properties.hubspot_deal_id == "deal-1"
    assert other.crm.records["deal-1"]["posthog_id"] == account.id


def test_people_edits_and_unknown_keys_survive_every_sync(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    crm.put("001A", name="Acme", ext="acct-acme", plan="free")
    engine.run(conn, "accounts")
    (account,) = list(ph.iter_accounts())
    props = account.properties.payload()
    props.update({"slack_channel_id": "C42", "zendesk_id": "z-1", "email_domains": ["acme.example"]})
    ph.update_account(account.id, properties=props, tags=[*account.tags, "vip"])  # a person's edits
    api = RelationshipApi(ph)
    api.assign(account.id, str(api.create_definition("CSM")["id"]), 7)  # and the CSM, on today's PostHog

    crm.put("001A", name="Acme Inc", plan="pro")
    engine.run(conn, "accounts")
    after = ph.get_account(account.id)
    assert after.name == "Acme Inc"
    assert sorted(after.tags) == ["plan-pro", "vip"]  # the source's old tag replaced, the person's kept
    assert after.properties.payload() == {
        "sfdc_id": "001A",
        "slack_channel_id": "C42",
        "zendesk_id": "z-1",
        "email_domains": ["acme.example"],  # sent back unchanged: only an org admin may change it
    }
    assert [r["user"]["email"] for r in api.active(account.id)] == ["ana@example.com"]


def test_roles_resolve_through_members_and_unknown_emails_are_reported(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    crm.put("001A", name="Acme", owner=" Ben@Example.com ")
    crm.put("001B", name="Bolt", owner="nobody@example.com")
    report = engine.run(conn, "accounts")
    by_name = {a.name: a for a in ph.iter_accounts()}
    api = RelationshipApi(ph)  # today's PostHog keeps roles on relationships (seed: tests/sync/test_roles.py)
    assert [(r["definition"]["name"], r["user"]["id"]) for r in api.active(by_name["Acme"].id)] == [
        ("Account owner", 8)
    ]
    assert api.active(by_name["Bolt"].id) == []  # never invented
    (item,) = report.review  # not a member: a person decides, nothing failed
    assert item["id"] == "001B" and item["field"] == "roles.account_owner"
    assert "no PostHog member with email nobody@example.com" in item["reason"]
    assert not report.errors
    assert report.counts["created"] == 2


# -- echoes and replays -------------------------------------------------------------------------------------------


def test_outbound_push_and_its_echo_cause_no_further_writes(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    crm.put("001A", name="Acme", ext="acct-acme")
    engine.run(conn, "accounts")
    (account,) = list(ph.iter_accounts())
    api = RelationshipApi(ph)
    api.assign(account.id, str(api.create_definition("CSM")["id"]), 7)  # a person sets the CSM in PostHog

    out = engine.push_back_pass(conn, "accounts")
    assert out.counts["pushed"] == 1
    assert crm.records["001A"]["csm_email"] == "ana@example.com"
    pushes = crm.pushed_records
    posthog.reset_counters()
    echo = engine.run(conn, "accounts")  # the CRM now shows our push as a change
    assert writes(posthog) == 0
    assert engine.push_back_pass(conn, "accounts").counts["pushed"] == 0
    assert crm.pushed_records == pushes and writes(posthog) == 0
    assert echo.counts["failed"] == 0


def test_replaying_a_batch_or_a_refresh_has_no_further_effect(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ledger: Ledger
) -> None:
    seed(crm, 5)
    engine.run(conn, "accounts")
    posthog.reset_counters()
    for _ in range(3):
        engine.refresh(conn, "accounts", ["00100001", "00100002", "00100001"])
    assert writes(posthog) == 0
    assert ledger.first_sightings("memcrm", ["evt-1", "evt-2"]) == [True, True]
    assert ledger.first_sightings("memcrm", ["evt-1", "evt-3"]) == [False, True]


# -- bad input, deletes, dry runs, locks, cursors ------------------------------------------------------------------


def test_malformed_records_are_reported_and_the_rest_lands(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    crm.put("001A", name="Good one", ext="acct-a")
    crm.put("001B", ext="acct-b")  # no name: cannot create
    crm.put("001C", name="x" * 401)  # too long for PostHog
    crm.put("001D", name=12345, owner="not-an-email")  # a number where text is expected; a bad email
    crm.put("001E", name="Fine", plan=["not", 3])  # wrong types inside a list
    report = engine.run(conn, "accounts")
    errors = {(e["id"], e["field"]) for e in report.errors}
    assert ("001B", "name") in errors and ("001C", "name") in errors
    assert ("001D", "name") in errors and ("001D", "owner") in errors and ("001E", "plan") in errors
    assert all(e["source"] == "memcrm" and e["reason"] for e in report.errors)
    assert sorted(a.name for a in ph.iter_accounts()) == ["Fine", "Good one"]
    assert report.counts["failed"] == 3 and report.counts["created"] == 2


def test_deleted_record_unlinks_and_tags_the_account(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    crm.put("001A", name="Acme", plan="pro")
    engine.run(conn, "accounts")
    crm.delete("001A")
    report = engine.run(conn, "accounts")
    assert report.counts["unlinked"] == 1
    (account,) = list(ph.iter_accounts())  # never deleted in PostHog
    assert account.properties.sfdc_id is None and account.tags == ["memcrm-deleted"]


def test_dry_run_plans_and_writes_nothing(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ledger: Ledger
) -> None:
    seed(crm, 3)
    report = engine.run(conn, "accounts", dry_run=True)
    assert writes(posthog) == 0 and crm.push_requests == 0
    assert ledger.get_cursor("memcrm", "accounts") is None
    assert ("new:Company 0", "Company 0") in {(p.account, p.after) for p in report.plan if p.field == "name"}
    assert report.as_dict()["plan"]


def test_overlapping_runs_skip_and_cursor_moves_forward_only(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ledger: Ledger
) -> None:
    seed(crm, 3)
    held = ledger.try_lock(["run:memcrm:accounts"], 10_000)
    assert engine.run(conn, "accounts").status == "skipped"
    ledger.release(held)
    assert engine.run(conn, "accounts").status == "succeeded"
    cursor = ledger.get_cursor("memcrm", "accounts")
    assert cursor is not None and '"id":"00100002"' in cursor
    engine._advance(conn, "accounts", conn.cursor_type.load('{"version": 1, "id": "0"}'))
    assert ledger.get_cursor("memcrm", "accounts") == cursor
    assert ledger.recent_runs(2)[0]["status"] == "succeeded"


def test_batch_of_100_costs_a_bounded_number_of_redis_round_trips(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm
) -> None:
    seed(crm, 100)
    engine.index.refresh()
    records = [crm.record(rid, "accounts") for rid in sorted(crm.records)]
    from sync.report import RunReport

    CountingConnection.round_trips = 0
    engine.apply_records(conn, "accounts", records, RunReport("memcrm", "accounts", "test"))
    first = CountingConnection.round_trips
    CountingConnection.round_trips = 0
    engine.apply_records(conn, "accounts", records, RunReport("memcrm", "accounts", "test"))
    unchanged = CountingConnection.round_trips
    # get records, index lookup, locks, account entries, seen accounts, push fingerprints read, the one commit
    # (records, accounts, index, push fingerprints), release; park only when a record was parked
    assert first <= 9, first
    assert unchanged == 1  # a batch of unchanged records is one MGET


def test_parked_records_replay_once_fixed(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ledger: Ledger, ph: PostHogClient
) -> None:
    crm.put("001A", ext="acct-a")  # no name yet: parked
    report = engine.run(conn, "accounts")
    assert report.counts["failed"] == 1 and ledger.dlq_size() == 1
    assert engine.replay_dead_letters(conn, "accounts").counts["failed"] == 1  # still bad: still parked
    assert ledger.dlq_size() == 1
    crm.records["001A"]["name"] = "Acme"  # fixed in the CRM
    replay = engine.replay_dead_letters(conn, "accounts")
    assert replay.counts["created"] == 1 and ledger.dlq_size() == 0
    assert [a.name for a in ph.iter_accounts()] == ["Acme"]


def test_domain_matching_is_opt_in_and_ambiguity_goes_to_review(
    ph: PostHogClient, ledger: Ledger, crm: MemoryCrm, conn: MemoryConnector, other: OtherConnector
) -> None:
    raw = {**MAPPING, "identity": {"match_domain": True}}
    raw["mappings"] = {
        "memcrm": {
            "accounts": {
                **MAPPING["mappings"]["memcrm"]["accounts"],
                "fields": [
                    *MAPPING["mappings"]["memcrm"]["accounts"]["fields"],
                    {"source": "web", "target": "domain", "transforms": ["domain"]},
                ],
            }
        },
        "othercrm": {
            "accounts": {
                **MAPPING["mappings"]["othercrm"]["accounts"],
                "fields": [
                    *MAPPING["mappings"]["othercrm"]["accounts"]["fields"],
                    {"source": "email", "target": "domain", "transforms": ["domain"]},
                ],
            }
        },
    }
    engine = SyncEngine(ph, ledger, load_mapping_config(raw))
    crm.put("001A", name="Acme", web="https://www.acme.com")
    crm.put("001B", name="Bolt", web="bolt.io")
    crm.put("001C", name="Bolt EU", web="https://bolt.io/eu")  # a second account with the same domain
    engine.run(conn, "accounts")
    other.crm.put("d-1", title="Acme deal", email="ana@acme.com")
    other.crm.put("d-2", title="Bolt deal", email="ben@bolt.io")
    report = engine.run(other, "accounts")
    assert report.counts["created"] == 0 and report.counts["updated"] == 1, report.as_dict()
    assert [r["id"] for r in report.review] == ["d-2"]  # ambiguous: reviewed, never a duplicate account
    acme = next(a for a in ph.iter_accounts() if a.name == "Acme")
    assert acme.properties.hubspot_deal_id == "d-1"
    assert len(list(ph.iter_accounts())) == 3


def test_accounts_made_by_people_are_found_not_duplicated(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient, posthog: PostHogSandbox
) -> None:
    ph.create_account("Made by a person", "acct-1", {"zendesk_id": "z-9"})
    crm.put("001A", name="Acme", ext="acct-1")
    report = engine.run(conn, "accounts")  # the index refresh finds it by external_id
    assert report.counts["created"] == 0 and report.counts["updated"] == 1
    # A person creates one after the index was refreshed: the create answers 409 and is resolved, not doubled.
    engine.index.refresh()
    ph.create_account("Also by a person", "acct-2")
    crm.put("001B", name="Bolt", ext="acct-2")
    from sync.report import RunReport

    late = RunReport("memcrm", "accounts", "test")
    engine.apply_records(conn, "accounts", [crm.record("001B", "accounts")], late)
    assert late.counts["conflicts"] == 1 and posthog.count("POST", status=409) == 1
    accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert len(accounts) == 2
    assert accounts["acct-1"].properties.payload() == {"zendesk_id": "z-9", "sfdc_id": "001A"}
    assert accounts["acct-2"].name == "Bolt" and accounts["acct-2"].properties.sfdc_id == "001B"


def test_two_way_field_echo_writes_nothing_either_way(
    ph: PostHogClient, ledger: Ledger, crm: MemoryCrm, conn: MemoryConnector, posthog: PostHogSandbox
) -> None:
    raw = {**MAPPING}
    fields = [
        *MAPPING["mappings"]["memcrm"]["accounts"]["fields"],
        {"source": "billing", "target": "properties.billing_id", "direction": "both"},
    ]
    raw["mappings"] = {
        **MAPPING["mappings"],
        "memcrm": {"accounts": {**MAPPING["mappings"]["memcrm"]["accounts"], "fields": fields}},
    }
    engine = SyncEngine(ph, ledger, load_mapping_config(raw))
    crm.put("001A", name="Acme", billing="b-1")
    engine.run(conn, "accounts")
    (account,) = list(ph.iter_accounts())
    assert account.properties.billing_id == "b-1"
    ph.update_account(account.id, properties={**account.properties.payload(), "billing_id": "b-2"})  # in PostHog
    assert engine.push_back_pass(conn, "accounts").counts["pushed"] == 1
    assert crm.records["001A"]["billing"] == "b-2"
    pushes = crm.pushed_records
    posthog.reset_counters()
    for _ in range(2):  # the CRM shows the pushed value; PostHog shows our earlier writes
        engine.run(conn, "accounts")
        engine.push_back_pass(conn, "accounts")
    assert writes(posthog) == 0 and crm.pushed_records == pushes


def test_reconcile_unlinks_records_gone_from_the_crm(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    seed(crm, 4)
    engine.run(conn, "accounts")
    del crm.records["00100002"], crm.versions["00100002"]  # purged without any event
    report = engine.reconcile_deletes(conn, "accounts")
    assert report.counts["unlinked"] == 1 and report.counts["unchanged"] == 3
    gone = next(a for a in ph.iter_accounts() if a.external_id == "acct-2")
    assert gone.properties.sfdc_id is None
    assert engine.reconcile_deletes(conn, "accounts").counts["seen"] == 3  # the forgotten record is not re-checked


def test_accounts_deleted_in_posthog_are_recreated_once(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient, posthog: PostHogSandbox
) -> None:
    seed(crm, 4)
    engine.run(conn, "accounts")
    doomed = {a.external_id: a.id for a in ph.iter_accounts()}
    ph.delete_account(doomed["acct-1"])  # a person deletes one, unchanged in the CRM...
    ph.delete_account(doomed["acct-2"])
    crm.put("00100002", name="Changed after the delete")  # ...and one that changes too
    report = engine.run(conn, "accounts")
    assert report.counts["created"] == 1 and report.counts["failed"] == 0  # the changed one: re-created at once
    reconciled = engine.reconcile_accounts({"memcrm": conn})
    assert reconciled.counts["created"] == 1 and reconciled.counts["failed"] == 0  # the unchanged one
    assert sorted(a.external_id or "" for a in ph.iter_accounts()) == ["acct-0", "acct-1", "acct-2", "acct-3"]
    posthog.reset_counters()
    assert engine.run(conn, "accounts").counts["failed"] == 0
    assert engine.reconcile_accounts({"memcrm": conn}).counts["created"] == 0
    assert writes(posthog) == 0  # settled once: never an error or a write on every run


def test_accounts_deleted_in_posthog_can_be_unlinked_for_good(
    ph: PostHogClient, ledger: Ledger, crm: MemoryCrm, conn: MemoryConnector, posthog: PostHogSandbox
) -> None:
    engine = SyncEngine(ph, ledger, load_mapping_config({**MAPPING, "identity": {"on_account_deleted": "unlink"}}))
    seed(crm, 3)
    engine.run(conn, "accounts")
    doomed = {a.external_id: a.id for a in ph.iter_accounts()}
    ph.delete_account(doomed["acct-1"])
    ph.delete_account(doomed["acct-2"])
    crm.put("00100002", name="Changed after the delete")
    assert engine.run(conn, "accounts").counts["unlinked"] == 1
    assert engine.reconcile_accounts({"memcrm": conn}).counts["unlinked"] == 1
    crm.put("00100001", name="Changed much later")
    posthog.reset_counters()
    report = engine.run(conn, "accounts")
    assert report.counts["created"] == 0 and writes(posthog) == 0
    assert [a.external_id for a in ph.iter_accounts()] == ["acct-0"]
