"""The connector contract (``tests/contract/suite.py``) for HubSpot: the official SDK against the stand-in,
with webhooks the stand-in really delivers (signed v3) to a loopback receiver."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.hubspot import HubSpotConnector
from sync.connector import Connector, WebhookRequest
from tests.connectors.hubspot.conftest import HubSpotSandbox, WebhookReceiver, drain_webhooks
from tests.contract.suite import ConnectorContract


class HubSpotHarness:
    """Drives the stand-in through its admin routes and raw API calls, never through the connector."""

    stream = "deals"
    push_field = "posthog_account_id"

    def __init__(self, hubspot: HubSpotSandbox, connector: HubSpotConnector, receiver: WebhookReceiver) -> None:
        self.hubspot = hubspot
        self.connector: Connector = connector
        self.receiver = receiver
        self._next = 0

    def seed(self, n: int) -> list[str]:
        ids = self.hubspot.seed(n, start=self._next)
        self._next += n
        return ids

    def touch(self, record_id: str) -> None:
        self.hubspot.edit("deals", record_id, description=f"touched {uuid.uuid4().hex[:8]}")

    def read_field(self, record_id: str, path: str) -> Any:
        return self.hubspot.property_value(record_id, path)

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        """The delivery the stand-in sends for one batch update of these deals, exactly as received."""
        self.receiver.deliveries.clear()
        self.hubspot.update_deals({rid: {"description": f"hook {uuid.uuid4().hex[:8]}"} for rid in record_ids})
        drain_webhooks(self.hubspot)
        [delivery] = self.receiver.deliveries
        return delivery


class TestHubSpotConnectorContract(ConnectorContract):
    @pytest.fixture
    def harness(
        self, hubspot: HubSpotSandbox, connector: HubSpotConnector, webhook_receiver: WebhookReceiver
    ) -> HubSpotHarness:
        return HubSpotHarness(hubspot, connector, webhook_receiver)
