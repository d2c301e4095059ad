"""State bound to the systems it describes (``sync.state``): in-memory CRMs that are different systems, the real
Redis ledger and the PostHog stand-in over HTTP."""

from __future__ import annotations

from typing import Any

from sync.engine import SyncEngine
from sync.ledger import Ledger, owner_of
from sync.mapping import MappingConfig, load_mapping_config
from sync.posthog import PostHogClient
from sync.state import POSTHOG, describe_state, posthog_system
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm

MAPPING: dict[str, Any] = {
    "mappings": {
        "memcrm": {
            "accounts": {
                "link": "sfdc_id",
                "account_id_field": "posthog_account_id",
                "fields": [
                    {"source": "name", "target": "name"},
                    {"source": "ext", "target": "external_id"},
                ],
            }
        }
    }
}


def mapping() -> MappingConfig:
    return load_mapping_config(MAPPING)


def seed(crm: MemoryCrm, n: int, prefix: str = "acct") -> None:
    for i in range(n):
        crm.put(f"001{i:05d}", name=f"{prefix} company {i}", ext=f"{prefix}-{i}")


def test_keys_are_attributed_to_the_system_they_describe() -> None:
    assert owner_of("rec:hubspot:deals:1") == ("hubspot", "rec")
    assert owner_of("cursor:posthog:outwm:stripe:customers") == ("stripe", "outwm")
    assert owner_of("cursor_at:posthog:outwm:stripe:customers") == ("stripe", "outwm_at")
    assert owner_of("pending:salesforce:Account") == ("salesforce", "pending")
    assert owner_of("claim:salesforce:Account:task-1:lease") == ("salesforce", "claim")
    assert owner_of("idx:external_id:acct-1") == ("posthog", "idx")
    assert owner_of("idxmeta") == ("posthog", "idxmeta")
    assert owner_of("dlq") == ("posthog", "dlq")
    assert owner_of("lock:run:hubspot:deals") == (None, "lock")
    assert owner_of("runs") == (None, "runs")


def test_a_crm_switched_to_another_system_is_synced_from_scratch(
    ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox
) -> None:
    """The sandbox-twice story on one engine: the second CRM's records all have versions at or below the first
    CRM's committed cursor, so a ledger that reused that cursor would read (almost) none of them."""
    engine = SyncEngine(ph, ledger, mapping())
    first = MemoryCrm()
    seed(first, 12, "old")
    assert engine.run(MemoryConnector(first), "accounts").counts["created"] == 12
    assert ledger.get_cursor("memcrm", "accounts") is not None

    second = MemoryCrm()  # another system: same ids, same clock, other data
    seed(second, 12, "new")
    report = engine.run(MemoryConnector(second), "accounts")  # incremental, as the README's "try it" runs
    assert report.status == "succeeded", report.as_dict()
    # every record read and applied (the index, PostHog-side state, still links the same ids to accounts)
    assert report.counts["seen"] == 12 and report.counts["updated"] + report.counts["created"] == 12
    (reset,) = report.state_reset
    assert reset["system"] == "memcrm" and reset["was"] == first.system and reset["now"] == second.system
    assert reset["dropped"]["rec"] == 12 and reset["dropped"]["cursor"] == 1
    assert any("starting clean" in note for note in report.notes)
    assert ledger.systems(["memcrm", POSTHOG]) == [second.system, posthog_system(posthog.url, 1)]
    # the links now point at the second system's records: every one of them was pushed its own account
    assert all(second.records[rid].get("posthog_account_id") for rid in second.records)

    again = engine.run(MemoryConnector(second), "accounts")
    assert again.state_reset == []
    assert again.counts["updated"] == 0 and again.counts["unchanged"] == again.counts["seen"]


def test_another_posthog_drops_everything_but_history_and_locks(
    ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox
) -> None:
    engine = SyncEngine(ph, ledger, mapping())
    crm = MemoryCrm()
    seed(crm, 5)
    engine.run(MemoryConnector(crm), "accounts")
    held = ledger.try_lock(["acct:someone-elses"], ttl_ms=60_000)
    assert describe_state(ledger, POSTHOG)["acct"] == 5

    elsewhere = SyncEngine(ph, ledger, mapping())
    elsewhere.systems.posthog_id = posthog_system("https://eu.posthog.com", 1)
    report = elsewhere.run(MemoryConnector(crm), "accounts")
    (reset,) = report.state_reset
    assert reset["system"] == POSTHOG and reset["dropped"]["acct"] == 5 and reset["dropped"]["idx"] >= 5
    assert reset["dropped"]["rec"] == 5  # the source's links pointed at the other PostHog's accounts
    assert report.counts["seen"] == 5  # and it started clean: a full read
    assert ledger.recent_runs(5)[1]["source"] == "memcrm"  # run history kept
    assert ledger.release(held) == 1  # a live lock is never dropped from under its holder
    assert ledger.systems(["memcrm", POSTHOG]) == [crm.system, "https://eu.posthog.com/project/1"]


def test_a_ledger_from_before_identities_is_adopted_not_wiped(
    ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox
) -> None:
    engine = SyncEngine(ph, ledger, mapping())
    crm = MemoryCrm()
    seed(crm, 4)
    engine.run(MemoryConnector(crm), "accounts")
    ledger.redis.delete(f"{ledger.ns}:system:memcrm", f"{ledger.ns}:system:posthog")  # as an older release left it

    cursor = ledger.get_cursor("memcrm", "accounts")
    report = engine.run(MemoryConnector(crm), "accounts")
    assert report.state_reset == [] and report.counts["unchanged"] == report.counts["seen"]  # nothing re-applied
    assert describe_state(ledger, "memcrm")["rec"] == 4 and ledger.get_cursor("memcrm", "accounts") >= cursor
    assert ledger.systems(["memcrm"]) == [crm.system]


def test_refresh_outbound_and_replay_bind_too(ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox) -> None:
    engine = SyncEngine(ph, ledger, mapping())
    first = MemoryCrm()
    seed(first, 3)
    engine.run(MemoryConnector(first), "accounts")
    second = MemoryCrm()
    seed(second, 3, "new")
    assert engine.push_back_pass(MemoryConnector(second), "accounts").state_reset[0]["was"] == first.system
    third = MemoryCrm()
    seed(third, 3, "third")
    refreshed = engine.refresh(MemoryConnector(third), "accounts", ["00100001"])
    assert refreshed.state_reset[0]["now"] == third.system and refreshed.counts["updated"] == 1
    fourth = MemoryCrm()
    assert engine.replay_dead_letters(MemoryConnector(fourth), "accounts").state_reset[0]["now"] == fourth.system
    assert engine.reconcile_deletes(MemoryConnector(first), "accounts").state_reset[0]["now"] == first.system


def test_a_dry_run_on_another_system_drops_nothing(ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox) -> None:
    engine = SyncEngine(ph, ledger, mapping())
    first = MemoryCrm()
    seed(first, 3)
    engine.run(MemoryConnector(first), "accounts")
    second = MemoryCrm()
    report = engine.run(MemoryConnector(second), "accounts", dry_run=True)
    assert report.state_reset == [] and any("a real run would drop" in note for note in report.notes)
    assert ledger.systems(["memcrm"]) == [first.system] and describe_state(ledger, "memcrm")["rec"] == 3
