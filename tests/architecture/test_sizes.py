"""No module outside ``sandbox/`` and ``tests/`` over 500 lines (issue 22, item 7), but those still being split."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500
NOT_YET_SPLIT = {
    "connectors/hubspot/client.py",
    "connectors/salesforce/connector.py",
}
"""Modules still over the limit: each leaves this set when it is split (the test then keeps it under)."""


def sizes() -> dict[str, int]:
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for package in ("sync", "connectors", "workers", "bench")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_module_is_over_500_lines() -> None:
    found = sizes()
    assert "sync/ledger.py" in found and "workers/cli_ops.py" in found
    over = {module for module, lines in found.items() if lines > LIMIT}
    assert over - NOT_YET_SPLIT == set()
