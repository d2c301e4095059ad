"""The benchmark machinery on a tiny input (50 records per CRM, scenarios 1 and 2), so ``bench/`` cannot rot.

Real stand-ins, a private ``redis-server``, real Celery worker processes. Asserted by counts: the re-sync with
nothing changed makes no write to PostHog or to any CRM, and the results file and Markdown table are written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.__main__ import Bench
from bench.harness import is_write

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")


def test_write_classification() -> None:
    assert not is_write("GET", "/v1/customers")
    assert not is_write("POST", "/crm/v3/objects/deals/search")
    assert not is_write("POST", "/crm/v3/objects/companies/batch/read")
    assert is_write("POST", "/crm/v3/objects/deals/batch/update")
    assert is_write("PATCH", "/api/environments/{project_id}/accounts/{id}/")


@pytest.mark.timeout(120)
def test_scenarios_1_and_2_on_50_records(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nProse kept.\n")
    bench = Bench(50, {"1", "2"}, tmp_path / "results", docs, "python -m bench --records 50 --scenarios 1,2")
    path = bench.run()

    results = json.loads(path.read_text())
    by_scenario = {m["scenario"]: m for m in results["crmsync"]}
    first, second = by_scenario["1"], by_scenario["2"]
    assert first["run_counts"].get("runs_not_succeeded", 0) == 0
    assert first["records"] >= 150  # 50 per CRM, plus the second deals of some HubSpot companies
    assert first["run_counts"]["failed"] == 0
    assert first["posthog_writes"] > 0
    assert second["run_counts"].get("runs_not_succeeded", 0) == 0
    assert second["posthog_writes"] == 0
    assert second["crm_writes"] == 0
    assert second["run_counts"]["updated"] == second["run_counts"]["created"] == second["run_counts"]["pushed"] == 0
    assert results["ceiling"]["stand_ins"]["posthog"]["requests"] == first["posthog_requests"]
    assert {m["scenario"] for m in results["naive"]} == {"1", "2"}
    assert all(m["posthog_writes"] > 0 for m in results["naive"])
    target = next(t for t in results["targets"] if t["target"] == "scenario 2: 0 writes")
    assert target["met"] is True
    memory = results["ledger_memory"]  # the ledger's size after scenarios 1 and 2 (not asserted: 50 records)
    assert memory["records"] == first["records"] == memory["records_in_ledger"] and memory["dataset_bytes"] > 0
    assert {"rec", "idx", "acct"} <= set(memory["memory_usage_by_family"])
    text = docs.read_text()
    assert "bytes per record" in text
    assert text.startswith("# Performance\n\nProse kept.")
    assert "| 2 | crmsync |" in text
