"""The connector contract (``tests/contract/suite.py``) for Zendesk, against the stand-in over loopback."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from connectors.zendesk import ZendeskConnector
from sandbox.zendesk.webhooks import event_bodies, signed_headers
from sync.connector import Connector, WebhookRequest
from sync.mapping import get_path
from tests.connectors.zendesk.conftest import ZendeskStandIn
from tests.contract.suite import ConnectorContract

WEBHOOK_SECRET = "zendesk-sandbox-signing-secret"


class ZendeskHarness:
    """Drives the stand-in directly (admin routes, raw API reads), never through the connector."""

    stream = "organizations"
    push_field = "organization_fields.posthog_account_id"

    def __init__(self, standin: ZendeskStandIn, connector: ZendeskConnector) -> None:
        self.standin = standin
        self.connector: Connector = connector

    def seed(self, n: int) -> list[str]:
        return [self.standin.create(domain_names=[f"{uuid.uuid4().hex[:8]}.example.com"]) for _ in range(n)]

    def touch(self, record_id: str) -> None:
        self.standin.edit(record_id, tags=[f"touched-{uuid.uuid4().hex[:8]}"])

    def read_field(self, record_id: str, path: str) -> Any:
        return get_path(self.standin.org(record_id), path)

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        """The stand-in's ``organization.tags_changed`` event for one organization, signed as Zendesk signs."""
        (record_id,) = record_ids
        self.touch(record_id)
        (body,) = event_bodies(self.standin.org(record_id), ["tags"])
        assert json.loads(body)["type"] == "zen:event-type:organization.tags_changed"
        headers = signed_headers(WEBHOOK_SECRET, body, time.time())
        return WebhookRequest("POST", "https://crmsync.example.com/webhooks/zendesk", headers, body)


class TestZendeskConnectorContract(ConnectorContract):
    @pytest.fixture
    def harness(self, standin: ZendeskStandIn, connector: ZendeskConnector) -> ZendeskHarness:
        return ZendeskHarness(standin, connector)

    def deliveries(self, harness: Any, record_ids: list[str]) -> list[WebhookRequest]:
        """Zendesk posts one event per delivery."""
        return [harness.webhook_request([record_id]) for record_id in record_ids]
