"""The size rule of issue 22: no module outside ``sandbox/`` and ``tests/`` is over 500 lines, so each one can be
read in one sitting. A module that grows past it is split by job (as the engine, the ledger and the CLI were)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500
PACKAGES = ("sync", "connectors", "workers", "bench")


def sizes() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_the_scan_reads_the_source_tree() -> None:
    found = sizes()
    assert "sync/connector.py" in found and found["sync/connector.py"] > 50


def test_no_module_is_over_500_lines() -> None:
    assert {path: n for path, n in sizes().items() if n > LIMIT} == {}
