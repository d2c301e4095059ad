"""The connector contract, run against the Salesforce stand-in through simple-salesforce over TLS."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from sync.connector import Connector, WebhookRequest
from tests.connectors.salesforce.conftest import Listener, StandIn, deliver
from tests.contract.suite import ConnectorContract


class SalesforceHarness:
    """Drives the stand-in directly (admin routes, an SDK client of its own), never through the connector."""

    stream = "Account"
    push_field = "PostHog_Account_Id__c"

    def __init__(self, standin: StandIn, listener: Listener, connector: Connector) -> None:
        self.standin = standin
        self.listener = listener
        self.connector = connector
        self._next = 0

    def seed(self, n: int) -> list[str]:
        ids = self.standin.seed(n, start=self._next)
        self._next += n
        return ids

    def touch(self, record_id: str) -> None:
        self.standin.admin(
            "PATCH", f"/sobjects/Account/{record_id}", json={"Website": f"https://{uuid.uuid4().hex}.io"}
        )

    def read_field(self, record_id: str, path: str) -> Any:
        return self.standin.record(record_id)[path]

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        """The Outbound Message the stand-in really posts when an integration saves these records at once."""
        before = len(self.listener.received)
        records = [
            {"attributes": {"type": "Account"}, "id": rid, "Website": f"https://{uuid.uuid4().hex}.io"}
            for rid in record_ids
        ]
        self.standin.sdk().restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records})
        received = deliver(self.standin, self.listener)
        assert len(received) == before + 1
        return received[-1]


class TestSalesforceContract(ConnectorContract):
    @pytest.fixture
    def harness(
        self, standin: StandIn, listener: Listener, budget_redis: redis.Redis, budget_key: str
    ) -> SalesforceHarness:
        connector = standin.connector(budget_redis, budget_key=budget_key)
        return SalesforceHarness(standin, listener, connector)
