"""The change feed over PostHog's query API (``sync/posthog/changes.py``) against the stand-in."""

from __future__ import annotations

from typing import Any

import pytest

from sync.custom_values import DisplayType
from sync.paging import PagingLoop
from sync.posthog import PostHogClient
from sync.posthog.changes import PAGE, latest_custom_values, read_changes
from sync.posthog.custom_properties import create_definition, set_value
from tests.conftest import PostHogSandbox
from tests.support.current_posthog import posthog_server  # noqa: F401 (this module's stand-in: current)


def test_pages_by_keyset_and_resumes_from_its_watermark(posthog: PostHogSandbox, ph: PostHogClient) -> None:
    account = ph.create_account("Acme", "acme", {})
    score = create_definition(ph, "Score", DisplayType.NUMBER)
    for n in range(PAGE + 20):
        set_value(ph, account.id, score.id, n)
    posthog.reset_counters()
    batch = read_changes(ph, None)
    assert len(batch.events) == PAGE + 20 and len({e.uuid for e in batch.events}) == PAGE + 20
    assert batch.requests == 2 == posthog.count("POST", "/query/")
    assert latest_custom_values(batch.events)[(account.id, "Score")].properties["current_value"] == PAGE + 19
    assert batch.watermark == batch.events[-1].timestamp

    set_value(ph, account.id, score.id, -1)
    again = read_changes(ph, batch.watermark)  # the lookback re-reads recent events; the newest is there
    assert again.requests == 2 and again.events[-1].properties["current_value"] == -1
    assert again.watermark is not None and again.watermark > batch.watermark


class _OneInstant:
    """A query answer of more than ``PAGE`` events at one timestamp, every time: keyset paging by timestamp cannot
    move past them (pure paging logic, no server needed)."""

    def __init__(self) -> None:
        self.calls = 0

    def query_hogql(self, query: str, values: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        rows = [[f"u{n}", "2026-01-01T00:00:00+00:00", "$account_custom_property_changed", "{}"] for n in range(PAGE)]
        return {"columns": ["uuid", "timestamp", "event", "properties"], "results": rows, "hasMore": True}


def test_a_page_that_brings_nothing_new_stops_the_read_instead_of_looping() -> None:
    feed = _OneInstant()
    with pytest.raises(PagingLoop, match="PostHog change feed"):
        read_changes(feed, "2026-01-01T00:05:00+00:00")
    assert feed.calls == 2  # the first page, then the one that brought nothing new
