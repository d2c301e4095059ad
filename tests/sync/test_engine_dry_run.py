"""A dry run's counts say what a real run would change, and its plan is what ``--dry-run`` prints and the page shows.

Against the PostHog stand-in on loopback and the real Redis: a full sync, then edits in the CRM, then a dry run.
The dry run writes nothing (no PATCH, no POST), yet reports ``updated`` for the accounts its plan changes.
"""

from __future__ import annotations

from rich.console import Console

from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import load_mapping_config
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import MAPPING
from workers import dry_runs
from workers.cli_sync import plan_table


def test_dry_run_counts_and_plan_say_what_would_change(posthog: PostHogSandbox, ledger: Ledger) -> None:
    crm = MemoryCrm()
    for i in range(10):
        crm.put(f"r{i}", name=f"Company {i}", ext=f"ext-{i}")
    mapping = load_mapping_config(MAPPING)
    with posthog.client() as client:
        engine = SyncEngine(client, ledger, mapping)
        engine.run(MemoryConnector(crm), "accounts", "full")
        for i in range(4):
            crm.put(f"r{i}", name=f"Renamed {i}")
        crm.put("r99", name="Brand New", ext="ext-99")
        posthog.reset_counters()
        report = engine.run(MemoryConnector(crm), "accounts", "full", dry_run=True)
    assert posthog.count("PATCH") == posthog.count("POST") == 0  # nothing written
    assert report.counts["updated"] == 4 and report.counts["created"] == 1
    assert report.counts["unchanged"] == 6
    renamed = sorted((c.before, c.after) for c in report.plan if c.field == "name" and c.before)
    assert renamed == [(f"Company {i}", f"Renamed {i}") for i in range(4)]
    assert any(c.account == "new:Brand New" for c in report.plan)
    assert ledger.recent_runs(5)[0]["dry_run"] is False  # dry runs stay out of the runs stream ...

    assert dry_runs.remember(ledger.redis, ledger.ns, [report]) == 1  # ... and are kept apart for the page
    stored = dry_runs.latest(ledger.redis, ledger.ns, [("memcrm", "accounts"), ("memcrm", "other")])
    assert list(stored) == [("memcrm", "accounts")]
    assert stored[("memcrm", "accounts")]["plan"] == [c.as_dict() for c in report.plan]

    console = Console(width=200, record=True)
    console.print(plan_table([report.as_dict()]))
    text = console.export_text()
    assert f"Plan: {len(report.plan)} field changes" in text
    assert "Renamed 3" in text and "Company 3" in text and "new:Brand New" in text


def test_a_huge_plan_is_cut_when_stored(ledger: Ledger) -> None:
    from sync.report import PlannedChange, RunReport

    report = RunReport("memcrm", "accounts", "full", dry_run=True)
    report.plan = [PlannedChange(f"a{i}", "name", None, f"n{i}", "memcrm") for i in range(dry_runs.MAX_PLAN + 3)]
    dry_runs.remember(ledger.redis, ledger.ns, [report.finish()])
    stored = dry_runs.latest(ledger.redis, ledger.ns, [("memcrm", "accounts")])[("memcrm", "accounts")]
    assert len(stored["plan"]) == dry_runs.MAX_PLAN and stored["plan_total"] == dry_runs.MAX_PLAN + 3
    assert 0 < ledger.redis.ttl(f"{ledger.ns}:dryrun:memcrm:accounts") <= dry_runs.TTL_S
