"""The pieces without I/O: SOQL literals and ids, the cursor's progress rules, the allowance arithmetic."""

from __future__ import annotations

import pytest

from connectors.salesforce import SalesforceCursor
from connectors.salesforce.allowance import Allowance, parse_limit_info
from connectors.salesforce.cursor import ReadProgress, position
from connectors.salesforce.soql import after, canonical_id, datetime_literal, id_list, literal
from sandbox.salesforce.ids import normalize_id
from sandbox.salesforce.store import account_id
from sync.connector import CrmRecord


def rec(rid: str) -> CrmRecord:
    return CrmRecord("salesforce", "Account", rid, {})


def test_literals_escape_everything_soql_would_read() -> None:
    assert literal("it's") == "'it\\'s'"
    assert literal("back\\slash\nnew\ttab") == "'back\\\\slash\\nnew\\ttab'"
    assert literal("Zürich") == "'Zürich'"


def test_ids_are_canonical_as_the_api_returns_them() -> None:
    full = account_id(12345)
    assert canonical_id(full) == full and canonical_id(full.lower()) == full == normalize_id(full.lower())
    assert canonical_id(full[:15]) == full
    assert canonical_id("001' OR Name != '") is None and canonical_id("") is None
    with pytest.raises(ValueError):
        id_list([full, "x' OR '1'='1"])


def test_keyset_condition_and_datetimes_use_z() -> None:
    assert datetime_literal(1_704_067_200_999) == "2024-01-01T00:00:00Z"
    assert after(1_704_067_200_000, None) == "SystemModstamp > 2024-01-01T00:00:00Z"
    assert after(1_704_067_200_000, "") == "SystemModstamp >= 2024-01-01T00:00:00Z"
    rid = account_id(1)
    assert after(1_704_067_200_000, rid) == (
        f"SystemModstamp >= 2024-01-01T00:00:00Z AND (SystemModstamp > 2024-01-01T00:00:00Z OR Id > '{rid}')"
    )


def test_progress_settles_old_rows_one_by_one_and_recent_rows_only_when_old() -> None:
    horizon = 10_000
    progress = ReadProgress.start(None, horizon)
    progress.advance([rec("a"), rec("b")], [5_000, 5_000], done=False)
    assert progress.cursor() == SalesforceCursor(modstamp_ms=5_000, last_id="b", settled_ms=5_000, settled_id="b")
    progress.advance([rec("c"), rec("d")], [9_000, 12_000], done=False)
    cursor = progress.cursor()
    assert (cursor.modstamp_ms, cursor.last_id) == (12_000, "d")
    assert cursor.settled == position(9_000, "c")  # d is newer than the horizon: it will be read again
    progress.advance([], [], done=True)
    assert progress.cursor().settled == position(horizon, None)
    assert progress.cursor().sort_key() > cursor.sort_key()


def test_progress_never_moves_a_cursor_back() -> None:
    start = SalesforceCursor(modstamp_ms=20_000, last_id="z", settled_ms=15_000, settled_id=None)
    progress = ReadProgress.start(start, 30_000)
    progress.advance([rec("m")], [16_000], done=False)  # a row re-read from the unsettled window
    cursor = progress.cursor()
    assert (cursor.modstamp_ms, cursor.last_id) == (20_000, "z") and cursor.settled == position(16_000, "m")
    assert cursor.sort_key() >= start.sort_key()
    assert SalesforceCursor.load(cursor.dump()) == cursor


def test_allowance_shares() -> None:
    assert parse_limit_info("api-usage=18/5000") == (18, 5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=x)") == (25, 5000)
    assert parse_limit_info(None) is None and parse_limit_info("nonsense") is None
    allowance = Allowance(per_run=0.25, total=0.8)
    assert allowance.stop_reason() is None  # nothing known yet
    allowance.begin_run()
    allowance.observe("api-usage=101/40")  # someone else overspent: the org's ceiling applies
    assert "max_share_total" in (allowance.stop_reason() or "")
    allowance = Allowance(per_run=0.25, total=0.8)
    allowance.begin_run()
    for used in range(1, 10):  # 25% of 40: ten requests this run
        allowance.observe(f"api-usage={used}/40")
        assert allowance.stop_reason() is None
    allowance.observe("api-usage=10/40")
    assert "max_share_per_run 25%" in (allowance.stop_reason() or "") and allowance.run_used == 10
