"""Every Redis key from one module (``sync.keys``): the same strings as before it existed (existing ledgers and
budgets stay valid), each read back into the family and the state the table says, and a source's state drop that
takes its last dry run and nothing of another source."""

from __future__ import annotations

import redis

from sync.keys import (
    BUCKETED,
    FAMILIES,
    BudgetKeys,
    ProjectKeys,
    State,
    crm_budget,
    family,
    family_of,
    namespace,
    owner_of,
    posthog_budget,
)
from sync.ledger import Ledger
from sync.report import RunReport
from sync.state import describe_state
from workers import dry_runs

NS = "crmsync:7"
K = ProjectKeys(NS)

BUILT = {
    K.rec_bucket("hubspot", "deals", "1f"): ("crmsync:7:r:hubspot:deals:1f", "hubspot", "rec"),
    K.idx_bucket("external_id", "3a"): ("crmsync:7:x:external_id:3a", "posthog", "idx"),
    K.acct("0190-acct"): ("crmsync:7:a:0190-acct", "posthog", "acct"),
    K.layout(): ("crmsync:7:layout", None, "layout"),
    K.idxmeta(): ("crmsync:7:idxmeta", "posthog", "idxmeta"),
    K.notags(): ("crmsync:7:notags", "posthog", "notags"),
    K.cursor("stripe", "customers"): ("crmsync:7:cursor:stripe:customers", "stripe", "cursor"),
    K.cursor_at("stripe", "customers"): ("crmsync:7:cursor_at:stripe:customers", "stripe", "cursor_at"),
    K.cursor("posthog", "outwm:stripe:customers"): (
        "crmsync:7:cursor:posthog:outwm:stripe:customers",
        "stripe",
        "outwm",
    ),
    K.cursor_at("posthog", "outwm:hubspot:deals:roles"): (
        "crmsync:7:cursor_at:posthog:outwm:hubspot:deals:roles",
        "hubspot",
        "outwm_at",
    ),
    K.system("salesforce"): ("crmsync:7:system:salesforce", "salesforce", "system"),
    K.system("posthog"): ("crmsync:7:system:posthog", "posthog", "system"),
    K.evt("hubspot", "deal.creation:1:2:3"): ("crmsync:7:evt:hubspot:deal.creation:1:2:3", "hubspot", "evt"),
    K.lock("run:hubspot:deals"): ("crmsync:7:lock:run:hubspot:deals", None, "lock"),
    K.runs(): ("crmsync:7:runs", None, "runs"),
    K.dlq(): ("crmsync:7:dlq", "posthog", "dlq"),
    K.pending("salesforce", "Account"): ("crmsync:7:pending:salesforce:Account", "salesforce", "pending"),
    K.pending_scheduled("salesforce", "Account"): (
        "crmsync:7:pending:salesforce:Account:scheduled",
        "salesforce",
        "pending",
    ),
    K.claims("salesforce", "Account"): ("crmsync:7:claim:salesforce:Account", "salesforce", "claim"),
    K.claim("salesforce", "Account", "t1"): ("crmsync:7:claim:salesforce:Account:t1", "salesforce", "claim"),
    K.claim_lease("salesforce", "Account", "t1"): (
        "crmsync:7:claim:salesforce:Account:t1:lease",
        "salesforce",
        "claim",
    ),
    K.dryrun("stripe", "customers"): ("crmsync:7:dryrun:stripe:customers", "stripe", "dryrun"),
    K.dlqreplay(): ("crmsync:7:dlqreplay", "posthog", "dlqreplay"),
    K.metrics(): ("crmsync:7:metrics", None, "metrics"),
    K.plan("p1", "g:acct-1"): ("crmsync:7:plan:p1:g:acct-1", None, "plan"),
    K.lease("done:t1"): ("crmsync:7:lease:done:t1", None, "lease"),
}


def test_every_key_is_the_string_it_always_was_and_reads_back_into_its_family() -> None:
    for built, (expected, owner, name) in BUILT.items():
        assert built == expected
        assert owner_of(built[len(NS) + 1 :]) == (owner, name), built


def test_every_family_of_the_namespace_is_built_by_some_method() -> None:
    built = {owner_of(key[len(NS) + 1 :])[1] for key in BUILT}
    in_namespace = {f.name for f in FAMILIES if f.state is not State.GLOBAL and not f.legacy}
    assert built == in_namespace


def test_the_namespace_and_the_budgets_outside_it() -> None:
    assert namespace(7) == NS and namespace(7, "demo") == "demo:7"
    base = posthog_budget("crmsync", "us.posthog.com", "abc123")
    assert base == "crmsync:budget:posthog:us.posthog.com:abc123"
    b = BudgetKeys(base)
    assert [b.blocked(), b.stats(), b.window(60.0), b.window(3600), b.rt_waiting(), b.rt_active(), b.history(5)] == [
        f"{base}:blocked",
        f"{base}:stats",
        f"{base}:w:60",
        f"{base}:w:3600",
        f"{base}:rt:waiting",
        f"{base}:rt:active",
        f"{base}:history:5",
    ]
    assert crm_budget("stripe", "k1") == "crmsync:budget:stripe:k1"


def test_layout_1_keys_are_still_attributed_for_the_migration() -> None:
    assert owner_of("rec:hubspot:deals:1") == ("hubspot", "rec")
    assert owner_of("out:hubspot:deals:1") == ("hubspot", "out")
    assert owner_of("idx:external_id:acct-1") == ("posthog", "idx")
    assert owner_of("seen:acct-1") == ("posthog", "seen")
    assert owner_of("somethingnew:x") == ("posthog", "somethingnew")  # unknown: PostHog's, as before


def test_the_table_is_consistent() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    assert BUCKETED == ("rec", "idx")
    assert family("dryrun").state is State.SOURCE and family("dryrun").owner == "workers/dry_runs.py"
    for f in FAMILIES:
        if f.state is not State.GLOBAL:
            example = f.prefix + ":x" if f.pattern != f.prefix else f.prefix
            assert family_of(example) == f, f.name  # no family is shadowed by a shorter prefix before it


def dry_run(source: str, stream: str) -> RunReport:
    report = RunReport(source=source, stream=stream, mode="incremental", dry_run=True)
    report.finish("succeeded")
    return report


def test_dropping_a_source_drops_its_last_dry_run_and_nothing_of_another_source(ledger: Ledger) -> None:
    client: redis.Redis = ledger.redis
    dry_runs.remember(client, ledger.ns, [dry_run("memcrm", "accounts"), dry_run("othercrm", "accounts")])
    ledger.set_cursor("memcrm", "accounts", "1")
    ledger.set_cursor("othercrm", "accounts", "2")
    assert describe_state(ledger, "memcrm") == {"cursor": 1, "cursor_at": 1, "dryrun": 1}

    dropped = ledger.drop_state("memcrm")

    assert dropped == {"cursor": 1, "cursor_at": 1, "dryrun": 1}
    assert dry_runs.latest(client, ledger.ns, [("memcrm", "accounts")]) == {}
    assert dry_runs.latest(client, ledger.ns, [("othercrm", "accounts")]) != {}
    assert ledger.get_cursor("othercrm", "accounts") == "2"
    assert describe_state(ledger, "othercrm") == {"cursor": 1, "cursor_at": 1, "dryrun": 1}
