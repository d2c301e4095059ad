"""The connector contract (``tests/contract/suite.py``) for Stripe: the official SDK against the stand-in."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import stripe

from connectors.stripe import StripeConnector
from sync.connector import Connector, WebhookRequest
from sync.mapping import get_path
from tests.connectors.stripe.conftest import WEBHOOK_SECRET, StripeStandIn, stripe_event_body
from tests.contract.suite import ConnectorContract


class StripeHarness:
    """Drives the stand-in directly (admin routes, raw API reads), never through the connector."""

    stream = "customers"
    push_field = "metadata.posthog_account_id"

    def __init__(self, standin: StripeStandIn, connector: StripeConnector) -> None:
        self.standin = standin
        self.connector: Connector = connector
        self._next = 0

    def seed(self, n: int) -> list[str]:
        ids = self.standin.seed(n, start=self._next)
        self._next += n
        return ids

    def touch(self, record_id: str) -> None:
        self.standin.edit(record_id, description=f"touched {uuid.uuid4().hex[:8]}")

    def read_field(self, record_id: str, path: str) -> Any:
        return get_path(self.standin.api(f"/v1/customers/{record_id}"), path)

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        """Real ``customer.updated`` events of the stand-in for these customers, signed as Stripe signs."""
        for record_id in record_ids:
            self.touch(record_id)
        newest: dict[str, dict[str, Any]] = {}
        for event in self.standin.events(type="customer.updated"):
            newest.setdefault(event["data"]["object"]["id"], event)
        body = stripe_event_body([newest[rid] for rid in record_ids])
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
        return WebhookRequest("POST", "https://crmsync.example.com/webhooks/stripe", {"Stripe-Signature": header}, body)


class TestStripeConnectorContract(ConnectorContract):
    @pytest.fixture
    def harness(self, standin: StripeStandIn, connector: StripeConnector) -> StripeHarness:
        return StripeHarness(standin, connector)
