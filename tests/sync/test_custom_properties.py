"""Custom account properties both ways: in-memory CRMs → real Redis ledger → the PostHog stand-in over HTTP, and
PostHog's change feed back to the CRMs. Costs are counted in requests the stand-in saw."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sandbox.posthog.config import PostHogSandboxConfig
from sync.custom_values import DisplayType
from sync.engine import SyncEngine
from sync.errors import ConfigError
from sync.ledger import Ledger
from sync.mapping import load_mapping_config
from sync.posthog import PostHogClient
from sync.posthog.custom_properties import (
    UNAVAILABLE,
    list_definitions,
    require_definitions,
    set_value,
    setup_definitions,
)
from tests.conftest import KEYS, MEMBERS, PostHogSandbox, emptied, running_posthog
from tests.support.current_posthog import posthog_server  # noqa: F401 (this module's stand-in: current)
from tests.support.memory_crm import MemoryConnector, MemoryCrm

MAPPING: dict[str, Any] = {
    "ownership": {"custom.Health score": {"rule": "posthog_wins"}},
    "mappings": {
        "memcrm": {
            "accounts": {
                "link": "sfdc_id",
                "fields": [
                    {"source": "name", "target": "name"},
                    {"source": "ext", "target": "external_id"},
                    {"source": "mrr", "target": "custom.MRR", "type": "currency"},
                    {"source": "stage", "target": "custom.Deal stage", "type": "select", "options": ["open", "won"]},
                    {"source": "renews", "target": "custom.Renews on", "type": "date"},
                    {"source": "active", "target": "custom.Active", "type": "boolean"},
                    {"source": "health", "target": "custom.Health score", "type": "number", "direction": "outbound"},
                ],
            }
        }
    },
}
VALUES = "/custom_property_values/"


@pytest.fixture
def mapping() -> Any:
    return load_mapping_config(MAPPING)


@pytest.fixture
def engine(ph: PostHogClient, ledger: Ledger, mapping: Any) -> SyncEngine:
    setup_definitions(ph, mapping.custom_definitions())
    return SyncEngine(ph, ledger, mapping)


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
def conn(crm: MemoryCrm) -> MemoryConnector:
    return MemoryConnector(crm)


def stored(ph: PostHogClient, account_id: str) -> dict[str, Any]:
    names = {d.id: d.name for d in list_definitions(ph) or []}
    rows = ph.call("GET", f"{ph.projects_path}/accounts/{account_id}/custom_property_values/")
    return {names[r["definition_id"]]: _utc(r["value"]) for r in rows}


def _utc(value: Any) -> Any:
    """A datetime value as an ISO 8601 instant in UTC (DRF answers ``...Z``, crmsync and events ``+00:00``)."""
    if isinstance(value, str) and len(value) > 10 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    return value


def seed(crm: MemoryCrm, n: int) -> None:
    for i in range(n):
        crm.put(
            f"r{i}", name=f"Co {i}", ext=f"e{i}", mrr=100 * i + 0.5, stage="open", renews="2027-01-0" + str(1 + i % 9)
        )


def test_values_land_with_their_types_and_a_second_sync_writes_nothing(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    seed(crm, 5)
    crm.put("r0", name="Co 0", ext="e0", mrr="1200", stage="won", renews="2027-03-01", active="TRUE")
    posthog.reset_counters()
    report = engine.run(conn, "accounts", mode="full")
    assert report.status == "succeeded" and report.counts["failed"] == 0, report.as_dict()
    accounts = {a.external_id: a for a in ph.iter_accounts()}
    assert stored(ph, accounts["e0"].id) == {
        "MRR": 1200.0,
        "Deal stage": "won",
        "Renews on": "2027-03-01T00:00:00+00:00",
        "Active": True,
    }
    assert stored(ph, accounts["e3"].id)["MRR"] == 300.5
    # 1 POST per account, then 1 POST per value (no bulk endpoint): 5 + (4 + 3 * 4)
    assert posthog.count("POST", VALUES) == 4 + 4 * 3 == report.counts["custom_values_written"]

    posthog.reset_counters()
    again = engine.run(conn, "accounts", mode="full")
    assert again.counts["unchanged"] == 5
    assert posthog.count("POST") == 0 and posthog.count("PATCH") == 0

    crm.put("r1", name="Co 1", ext="e1", mrr=999, stage="open", renews="2027-01-02")  # one value changed
    posthog.reset_counters()
    engine.run(conn, "accounts", mode="full")
    assert posthog.count("POST", VALUES) == 1 and posthog.count("PATCH") == 0
    assert stored(ph, accounts["e1"].id)["MRR"] == 999.0


def test_a_value_that_does_not_fit_is_a_record_error_and_the_rest_is_written(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, ph: PostHogClient
) -> None:
    crm.put("r1", name="Bad Co", ext="bad", mrr="lots", stage="lost", renews="2027-02-01", active=True)
    report = engine.run(conn, "accounts", mode="full")
    assert report.counts["created"] == 1
    errors = {e["field"]: e["reason"] or "" for e in report.errors}
    assert set(errors) == {"mrr", "stage"}
    assert "text value 'lots'" in errors["mrr"] and "'MRR' (currency)" in errors["mrr"]
    assert "'Deal stage' (select)" in errors["stage"] and "one of its options: open, won" in errors["stage"]
    assert all(e["source"] == "memcrm" and e["id"] == "r1" for e in report.errors)
    (account,) = ph.iter_accounts()
    assert account.name == "Bad Co"
    assert stored(ph, account.id) == {"Renews on": "2027-02-01T00:00:00+00:00", "Active": True}


def test_posthog_owned_value_reaches_the_crm_with_one_query_per_run(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox, ph: PostHogClient
) -> None:
    seed(crm, 12)
    engine.run(conn, "accounts", mode="full")
    health = {d.name: d for d in list_definitions(ph) or []}["Health score"]
    accounts = {a.external_id: a for a in ph.iter_accounts()}
    for ext, score in (("e2", 80), ("e7", 35.5)):
        set_value(ph, accounts[ext].id, health.id, score)  # a CSM sets it in PostHog

    posthog.reset_counters()
    report = engine.push_back_pass(conn, "accounts")
    assert report.status == "succeeded", report.as_dict()
    assert crm.records["r2"]["health"] == "80" and crm.records["r7"]["health"] == "35.5"
    assert "health" not in crm.records["r3"]
    assert posthog.count("POST", "/query/") == 1  # one query for every account, not one request per account
    assert posthog.count("GET", VALUES) == 0

    posthog.reset_counters()
    again = engine.push_back_pass(conn, "accounts")  # the lookback re-reads both events: nothing pushed again
    assert again.counts["pushed"] == 0 and posthog.count("POST", "/query/") == 1

    set_value(ph, accounts["e2"].id, health.id, 81)
    engine.push_back_pass(conn, "accounts")
    assert crm.records["r2"]["health"] == "81"

    # posthog_wins: the CRM may no longer fill a value PostHog holds
    entry = engine.ledger.get_accounts([accounts["e2"].id])[0]
    assert "Health score" in entry.custom


def test_setup_creates_the_definitions_and_the_start_up_check_names_a_missing_one(
    ph: PostHogClient, mapping: Any
) -> None:
    with pytest.raises(ConfigError) as missing:
        require_definitions(ph, mapping)
    assert missing.value.key == "mappings.memcrm.accounts.fields.2.target"
    assert missing.value.reason == "custom property 'MRR' missing (run `crmsync setup posthog`)"

    dry = setup_definitions(ph, mapping.custom_definitions(), dry_run=True)
    assert all(line.startswith("would create") for line in dry) and list_definitions(ph) == []
    lines = setup_definitions(ph, mapping.custom_definitions())
    assert len(lines) == 5 and all(line.startswith("created") for line in lines)
    require_definitions(ph, mapping)  # passes now
    assert all("exists" in line for line in setup_definitions(ph, mapping.custom_definitions()))
    by_name = {d.name: d for d in list_definitions(ph) or []}
    assert by_name["Deal stage"].display_type == "select" and by_name["Deal stage"].options == ("open", "won")

    other = {"MRR": (DisplayType.TEXT, ())}
    with pytest.raises(ConfigError) as wrong:
        setup_definitions(ph, other)
    assert (
        wrong.value.key == "custom.MRR" and "currency property in PostHog, the mapping says text" in wrong.value.reason
    )


@pytest.fixture(scope="module", params=["seed", "transitional"])
def older_server(request: pytest.FixtureRequest) -> Iterator[PostHogSandbox]:
    config = PostHogSandboxConfig(projects=(1, 2), keys=KEYS, members=MEMBERS, generation=request.param)
    with running_posthog(config) as sandbox:
        yield sandbox


def test_a_server_without_custom_values_gives_one_note_not_record_errors(
    older_server: PostHogSandbox, ledger: Ledger, mapping: Any, crm: MemoryCrm, conn: MemoryConnector
) -> None:
    """Seed: no definitions route (404). Transitional: definitions, but no values route (the first write's 404)."""
    for sandbox in emptied(older_server):
        with sandbox.client() as client:
            transitional = list_definitions(client) is not None
            if transitional:  # no link type there: the rest of the mapping's definitions
                declared = {k: v for k, v in mapping.custom_definitions().items() if v[0] is not DisplayType.LINK}
                setup_definitions(client, declared)
            sandbox.reset_counters()
            seed(crm, 3)
            report = SyncEngine(client, ledger, mapping).run(conn, "accounts", mode="full")
            assert report.counts["created"] == 3 and report.errors == [], report.as_dict()
            assert report.notes.count(UNAVAILABLE) == 1
            assert sandbox.count(status=404) == 1  # one look (seed) or one value write (transitional), then silence


def test_a_dry_run_plans_the_custom_values_and_writes_none(
    engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm, posthog: PostHogSandbox
) -> None:
    crm.put("r1", name="Co 1", ext="e1", mrr=42, stage="won")
    posthog.reset_counters()
    report = engine.run(conn, "accounts", mode="full", dry_run=True)
    planned = {(c.field, c.after) for c in report.plan}
    assert {("custom.MRR", 42.0), ("custom.Deal stage", "won")} <= planned
    assert posthog.count("POST") == 0
