"""A webhook receiver on a real stack's config (real connectors, real Redis ledger under a prefix of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from sandbox.stack import POSTHOG_KEY, SALESFORCE_ORG, Credentials, SandboxStack
from sync.ledger import delete_keys
from tests.faults.harness import REDIS_URL
from workers.config import parse_config
from workers.runtime import Runtime
from workers.webhooks import create_webhook_app


@dataclass
class Receiver:
    client: TestClient
    runtime: Runtime
    enqueued: list[tuple[str, str, float]] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack() -> Iterator[SandboxStack]:
    import uuid

    with SandboxStack(
        seed=6,
        redis_url=REDIS_URL,
        webhooks=False,
        ledger_prefix=f"crmsync-sec-{uuid.uuid4().hex[:10]}",
        credentials=Credentials(salesforce_org=SALESFORCE_ORG),  # the org the signed test bodies name
    ) as running:
        yield running


@pytest.fixture
def receiver(stack: SandboxStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    runtime = Runtime(parse_config(stack.config()))
    enqueued: list[tuple[str, str, float]] = []
    app = create_webhook_app(runtime, enqueue=lambda s, o, c: enqueued.append((s, o, c)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Receiver(client, runtime, enqueued)
    delete_keys(runtime.redis, f"{stack.ledger_prefix}:*")
    runtime.close()
