"""The contract suite run against the in-memory test connector: proves the suite itself can pass and fail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.connector import Connector, WebhookRequest
from tests.contract.suite import ConnectorContract
from tests.support.memory_crm import MemoryConnector, MemoryCrm


class MemoryHarness:
    stream = "accounts"
    push_field = "posthog_account_id"

    def __init__(self) -> None:
        self.crm = MemoryCrm()
        self.memory = MemoryConnector(self.crm, page_size=3)
        self.connector: Connector = self.memory
        self._n = 0

    def seed(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            self._n += 1
            rid = f"m{self._n:04d}"
            self.crm.put(rid, name=f"Company {self._n}")
            ids.append(rid)
        return ids

    def touch(self, record_id: str) -> None:
        self.crm.put(record_id, touched=True)

    def read_field(self, record_id: str, path: str) -> Any:
        return self.crm.records[record_id].get(path)

    def webhook_request(self, record_ids: list[str]) -> WebhookRequest:
        body = json.dumps([{"id": rid, "event_id": f"e-{rid}"} for rid in record_ids]).encode()
        return WebhookRequest(
            "POST", "http://127.0.0.1/webhooks/memcrm", {"X-Memory-Signature": self.memory.sign(body)}, body
        )


class TestMemoryConnectorContract(ConnectorContract):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness()
