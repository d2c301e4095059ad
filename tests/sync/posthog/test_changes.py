"""The change feed over PostHog's query API (``sync/posthog/changes.py``) against the stand-in."""

from __future__ import annotations

from sync.custom_values import DisplayType
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
