"""The contract every CRM connector must pass. A connector's test module subclasses ``ConnectorContract`` and
provides a ``harness`` fixture (a ``ContractHarness``) wired to its stand-in; the tests here do the rest.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import pytest

from connectors.registry import CONNECTORS, vendor_facts
from sync.connector import Connector, CrmRecord, PushUpdate, WebhookRejected, WebhookRequest
from sync.posthog.models import ID_KEYS


class ContractHarness(Protocol):
    """How the contract drives one connector's backing CRM (a stand-in), independently of the connector."""

    connector: Connector
    stream: str
    push_field: str  # a field path the connector can write on this stream

    def seed(self, n: int) -> list[str]:
        """Create ``n`` records in the CRM; return their ids."""
        ...

    def touch(self, record_id: str) -> None:
        """Change one record in the CRM so that its modification time moves forward."""
        ...

    def read_field(self, record_id: str, path: str) -> Any:
        """Read a field of a record straight from the CRM (not through the connector)."""
        ...

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        """A valid, signed webhook delivery announcing changes to these records."""
        ...


def pull_all(connector: Connector, stream: str, cursor: Any = None) -> tuple[list[CrmRecord], list[Any]]:
    records: list[CrmRecord] = []
    cursors: list[Any] = []
    for page in connector.pull(stream, cursor):
        records.extend(page.records)
        if page.cursor is not None:
            cursors.append(page.cursor)
    return records, cursors


class ConnectorContract:
    """Subclass with a ``harness`` fixture. Each test states one promise of ``sync.connector.Connector``."""

    seed_count = 7

    def test_is_a_connector(self, harness: ContractHarness) -> None:
        assert isinstance(harness.connector, Connector)
        assert harness.stream in harness.connector.streams

    def test_declares_its_vendor_facts(self, harness: ContractHarness) -> None:
        source = harness.connector.source
        if source not in CONNECTORS:
            pytest.skip(f"{source} is not a registered source: it has no vendor facts")
        facts = vendor_facts(source)
        assert vars(type(harness.connector)).get("facts") is facts and facts.link_key in ID_KEYS and facts.host_key
        links: dict[str, Any] = {"hubspot_portal": 7, "salesforce_instance": "https://acme.my.salesforce.com"}
        links.update({setting.name: setting.example for setting in facts.ui_links})
        url = facts.record_url(harness.stream, "rec%2F1", links)
        assert url is not None and url.startswith("https://") and url.endswith("/rec%2F1")
        assert isinstance(facts.precedence, int)

    def test_full_pull_returns_every_record_with_ids(self, harness: ContractHarness) -> None:
        ids = harness.seed(self.seed_count)
        records, _ = pull_all(harness.connector, harness.stream)
        seen = {r.id for r in records}
        assert set(ids) <= seen
        for record in records:
            assert record.id and isinstance(record.id, str)
            assert record.source == harness.connector.source and record.object == harness.stream

    def test_cursors_only_move_forward(self, harness: ContractHarness) -> None:
        ids = harness.seed(self.seed_count)
        _, cursors = pull_all(harness.connector, harness.stream)
        assert cursors, "a full pull must end with a cursor"
        keys = [c.sort_key() for c in cursors]
        assert keys == sorted(keys)
        harness.touch(ids[0])
        later, more = pull_all(harness.connector, harness.stream, cursors[-1])
        assert ids[0] in {r.id for r in later}  # the change since the cursor is seen
        assert all(c.sort_key() >= keys[-1] for c in more)

    def test_cursor_survives_save_and_reload(self, harness: ContractHarness) -> None:
        harness.seed(2)
        _, cursors = pull_all(harness.connector, harness.stream)
        for cursor in cursors:
            again = harness.connector.cursor_type.load(cursor.dump())
            assert again == cursor and again.sort_key() == cursor.sort_key()

    def test_fetch_by_id_agrees_with_pull(self, harness: ContractHarness) -> None:
        ids = harness.seed(3)
        pulled = {r.id: r for r in pull_all(harness.connector, harness.stream)[0] if r.id in ids}
        fetched = {r.id: r for r in harness.connector.fetch(harness.stream, ids)}
        assert set(fetched) == set(ids)
        for rid in ids:
            assert replace(fetched[rid], version=None, modified_at=None) == replace(
                pulled[rid], version=None, modified_at=None
            )

    def test_push_reports_a_result_per_record(self, harness: ContractHarness) -> None:
        ids = harness.seed(3)
        updates = [PushUpdate(rid, {harness.push_field: f"acct-{n}"}, f"fp-{n}") for n, rid in enumerate(ids)]
        results = harness.connector.push(harness.stream, updates)
        assert sorted(r.record_id for r in results) == sorted(ids)
        assert all(r.ok for r in results), results
        for n, rid in enumerate(ids):
            assert harness.read_field(rid, harness.push_field) == f"acct-{n}"

    def test_webhook_ack_is_the_connectors_to_give(self, harness: ContractHarness) -> None:
        """The receiver answers what the connector says its vendor expects, or its own JSON (None)."""
        ack = harness.connector.webhook_ack()
        assert ack is None or (isinstance(ack.body, bytes) and ack.body and ack.media_type)

    def deliveries(self, harness: ContractHarness, record_ids: list[str]) -> list[WebhookRequest]:
        """The deliveries announcing changes to these records: one for them all; a vendor that sends one event per
        delivery (Zendesk) overrides this with one delivery per record."""
        return [harness.webhook_request(record_ids)]

    def test_webhook_round_trip(self, harness: ContractHarness) -> None:
        ids = harness.seed(2)
        requests = self.deliveries(harness, ids)
        events = []
        for delivery in requests:
            harness.connector.verify_webhook(delivery)
            events.extend(harness.connector.parse_webhook(delivery))
        request = requests[0]
        assert {e.id for e in events} == set(ids)
        assert all(e.event_id and e.source == harness.connector.source for e in events)
        tampered = replace(request, body=request.body + b" ")
        with pytest.raises(WebhookRejected):
            harness.connector.verify_webhook(tampered)

    def test_call_stats_count_requests_and_hand_over_once(self, harness: ContractHarness) -> None:
        harness.seed(2)
        harness.connector.call_stats.take()
        pull_all(harness.connector, harness.stream)
        requests, throttled = harness.connector.call_stats.take()
        assert requests >= 1 and throttled == 0
        assert harness.connector.call_stats.take() == (0, 0)

    def test_close_can_be_called_and_is_final(self, harness: ContractHarness) -> None:
        harness.connector.close()
