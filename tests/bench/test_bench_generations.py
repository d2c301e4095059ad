"""Scenario 9 on a tiny input (30 records per CRM), so the request economy per PostHog generation cannot rot.

Real stand-ins (one per generation), a private ``redis-server``, real Celery worker processes. Asserted by counts
from the PostHog stand-in's ``/_sandbox/stats``: on ``current`` one account write per account, one relationship
POST per role set and one custom value POST per value set, nothing else written but the definitions; on ``seed``
and ``transitional`` one account write per account and nothing else; an unchanged re-sync writes nothing anywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.__main__ import Bench
from bench.generations import route_kind

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")


def test_route_kinds() -> None:
    assert route_kind("POST", "/api/environments/{project_id}/accounts/") == "accounts"
    assert route_kind("PATCH", "/api/environments/{project_id}/accounts/{id}/") == "accounts"
    assert route_kind("POST", "/api/projects/{project_id}/accounts/{account_id}/relationships/") == "relationships"
    assert route_kind("POST", "/api/projects/{project_id}/accounts/{account_id}/custom_property_values/") == (
        "custom_values"
    )
    assert route_kind("POST", "/api/projects/{project_id}/account_relationship_definitions/") == "definitions"
    assert route_kind("POST", "/api/projects/{project_id}/query/") == "reads"
    assert route_kind("GET", "/api/environments/{project_id}/accounts/") == "reads"


@pytest.mark.timeout(300)
def test_scenario_9_on_30_records(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    bench = Bench(30, {"9"}, tmp_path / "results", docs, "python -m bench --records 30 --scenarios 9")
    results = json.loads(bench.run().read_text())

    rows = {r["generation"]: r for r in results["generations"]}
    assert list(rows) == ["seed", "transitional", "current"]
    for generation, row in rows.items():
        first, kinds, resync = row["first_sync"], row["first_sync"]["by_kind"], row["resync"]
        assert first["run_counts"]["failed"] == 0, generation
        assert first["run_counts"].get("runs_not_succeeded", 0) == 0, generation
        assert row["accounts"] > 0 and kinds["accounts"] == row["accounts"], (generation, kinds)
        assert kinds["other"] == 0, (generation, first["by_route"])
        assert first["over_floor"] == kinds["definitions"] + kinds["reads"], (generation, first["by_route"])
        assert resync["posthog_writes"] == resync["crm_writes"] == 0, (generation, resync["by_route"])
        assert resync["run_counts"].get("runs_not_succeeded", 0) == 0, generation
        assert resync["run_counts"]["updated"] == resync["run_counts"]["created"] == 0, generation
    current = rows["current"]
    kinds = current["first_sync"]["by_kind"]
    assert current["roles_set"] > 0 and kinds["relationships"] == current["roles_set"], kinds
    assert current["custom_values_set"] > 0 and kinds["custom_values"] == current["custom_values_set"], kinds
    assert (
        current["first_sync"]["floor_requests"]
        == current["accounts"] + kinds["relationships"] + (kinds["custom_values"])
    )
    for generation in ("seed", "transitional"):  # roles ride in the account write; no custom properties there
        kinds = rows[generation]["first_sync"]["by_kind"]
        assert kinds["relationships"] == kinds["custom_values"] == kinds["definitions"] == 0, (generation, kinds)
        assert rows[generation]["first_sync"]["floor_requests"] == rows[generation]["accounts"]
    text = docs.read_text()
    assert "PostHog API generation (scenario 9)" in text
    assert "| current |" in text and "| seed |" in text
