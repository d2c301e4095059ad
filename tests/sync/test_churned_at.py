"""``churned_at`` as a mapping target: the account field of today's PostHog, from epoch seconds (e.g. Stripe's
``ended_at`` when every subscription has ended) or ISO 8601; left out where the server has no such field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import churn_time, load_mapping_config
from tests.conftest import PostHogSandbox, emptied
from tests.support.memory_crm import MemoryConnector, MemoryCrm

MAPPING: dict[str, Any] = {
    "mappings": {
        "memcrm": {
            "accounts": {
                "link": "stripe_customer_id",
                "fields": [
                    {"source": "name", "target": "name"},
                    {"source": "ended_at", "target": "churned_at"},
                ],
            }
        }
    }
}


@pytest.fixture(params=["seed", "current"])
def server(request: pytest.FixtureRequest, posthog_generations: dict[str, PostHogSandbox]) -> Iterator[PostHogSandbox]:
    yield from emptied(posthog_generations[request.param])


def test_churn_times_are_normalised() -> None:
    assert churn_time(1_700_000_000) == "2023-11-14T22:13:20.000000+00:00"
    assert churn_time("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000000+00:00"
    assert churn_time("2024-05-01T10:00:00") == "2024-05-01T10:00:00.000000+00:00"  # naive is UTC
    assert churn_time(None) is None and churn_time("") is None
    with pytest.raises(ValueError):
        churn_time("last tuesday")


def test_churned_at_is_written_as_the_account_field_once(server: PostHogSandbox, ledger: Ledger) -> None:
    crm = MemoryCrm()
    crm.put("cus_1", name="Acme", ended_at=1_700_000_000)
    crm.put("cus_2", name="Bolt")
    engine = SyncEngine(server.client(), ledger, load_mapping_config(MAPPING))
    report = engine.run(MemoryConnector(crm), "accounts", mode="full")
    assert report.counts["created"] == 2 and report.counts["failed"] == 0, report.as_dict()
    by_name = {a.name: a for a in server.client().iter_accounts(None)}
    if engine.generations.relationships:  # today's PostHog has the field
        churned = by_name["Acme"].churned_at
        assert churned is not None and churned.isoformat() == "2023-11-14T22:13:20+00:00"
    else:
        assert by_name["Acme"].churned_at is None  # not sent: the field does not exist there
    assert by_name["Bolt"].churned_at is None

    server.reset_counters()
    crm.put("cus_1", name="Acme Inc")  # another field changes: churned_at is not sent again
    engine.run(MemoryConnector(crm), "accounts")
    assert server.count("PATCH") == 1
