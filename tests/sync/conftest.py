"""The engine fixtures of ``test_engine`` (mapping, engine, in-memory CRMs), shared by the engine's other tests, and
the budget tests' Redis key prefix."""

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.sync.test_engine import conn, crm, engine, mapping, other

__all__ = ["conn", "crm", "engine", "key", "mapping", "other"]


@pytest.fixture
def key() -> Iterator[str]:
    """A budget key prefix of the test's own; every key under it is removed after the test."""
    base = f"crmsync-test-budget-{uuid.uuid4().hex[:10]}"
    yield base
    client = redis.Redis.from_url(REDIS_URL)
    for k in client.scan_iter(match=f"{base}*"):
        client.delete(k)
    client.close()
