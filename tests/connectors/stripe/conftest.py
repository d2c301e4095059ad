"""Fixtures for the Stripe connector's tests: the Stripe stand-in on loopback, driven by the official SDK.

One stand-in serves the whole session and is reset before each test (data, counters, faults, idempotency keys,
webhook target). Costs are read from its request counters (``StripeStandIn.count``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from connectors.stripe import StripeConfig, StripeConnector
from sandbox.stripe import StripeSandboxConfig, create_app
from workers.serving import ServerThread

KEY = "sk_test_sandbox"
WEBHOOK_SECRET = "whsec_sandbox"


@dataclass
class StripeStandIn:
    """A running Stripe stand-in with helpers for its admin routes and counters."""

    server: ServerThread
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        self.admin.post("/_sandbox/reset").raise_for_status()
        self.admin.put("/_sandbox/webhooks", json={"url": None, "secret": WEBHOOK_SECRET}).raise_for_status()

    def reset_counters(self) -> None:
        self.admin.post("/_sandbox/stats/reset").raise_for_status()

    def count(self, method: str | None = None, route: str | None = None, status: int | None = None) -> int:
        """Requests the stand-in answered, by method, exact route template and status (faults included)."""
        rows = self.admin.get("/_sandbox/stats").json()["requests"]
        return sum(
            row["count"]
            for row in rows
            if (method is None or row["method"] == method)
            and (route is None or row["route"] == route)
            and (status is None or row["status"] == status)
        )

    def faults(self, **config: Any) -> None:
        self.admin.post("/_sandbox/faults", json=config).raise_for_status()

    def seed(self, count: int, start: int = 0) -> list[str]:
        response = self.admin.post("/_sandbox/seed", json={"count": count, "start": start})
        response.raise_for_status()
        return [f"cus_S{i:013d}" for i in range(start, start + count)]

    def edit(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        response = self.admin.post(f"/_sandbox/customers/{customer_id}", json=fields)
        response.raise_for_status()
        return dict(response.json())

    def delete(self, customer_id: str) -> None:
        self.admin.delete(f"/_sandbox/customers/{customer_id}").raise_for_status()

    def add_subscription(self, customer_id: str, status: str = "active") -> str:
        response = self.admin.post("/_sandbox/subscriptions", json={"customer": customer_id, "status": status})
        response.raise_for_status()
        return str(response.json()["id"])

    def set_subscription(self, subscription_id: str, status: str) -> None:
        self.admin.post(f"/_sandbox/subscriptions/{subscription_id}", json={"status": status}).raise_for_status()

    def age_events(self, seconds: int, ids: list[str] | None = None) -> dict[str, int]:
        body: dict[str, Any] = {"seconds": seconds}
        if ids is not None:
            body["ids"] = ids
        response = self.admin.post("/_sandbox/events/age", json=body)
        response.raise_for_status()
        return dict(response.json())

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        """A raw API read (not through the connector), e.g. ``api("/v1/customers/cus_x")``."""
        response = self.admin.get(path, params=params, headers={"Authorization": f"Bearer {KEY}"})
        response.raise_for_status()
        return dict(response.json())

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw API call (not through the connector) with the stand-in's key; the response whatever its status."""
        return self.admin.request(method, path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)

    def events(self, **params: Any) -> list[dict[str, Any]]:
        """Every retained event (newest first), read raw."""
        out: list[dict[str, Any]] = []
        query: dict[str, Any] = {"limit": 100, **params}
        while True:
            page = self.api("/v1/events", **query)
            out.extend(page["data"])
            if not page["has_more"]:
                return out
            query["starting_after"] = page["data"][-1]["id"]


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeStandIn]:
    server = ServerThread(create_app(StripeSandboxConfig()))
    with server, httpx.Client(base_url=server.url, trust_env=False, timeout=30) as admin:
        yield StripeStandIn(server, admin)


@pytest.fixture
def standin(stripe_server: StripeStandIn) -> Iterator[StripeStandIn]:
    """The shared stand-in, emptied, with counters, faults and webhook target cleared for this test."""
    stripe_server.reset()
    yield stripe_server
    stripe_server.faults()


def make_config(url: str, **overrides: Any) -> StripeConfig:
    values: dict[str, Any] = {
        "api_key": SecretStr(KEY),
        "api_base": url,
        "max_network_retries": 0,
        "webhook_secrets": (SecretStr(WEBHOOK_SECRET),),
        "budget_key": f"test-{uuid.uuid4().hex[:12]}",
        "requests_per_s": 1000,
        "burst": 1000,
        **overrides,
    }
    return StripeConfig(**values)


@pytest.fixture
def budget_keys(redis_client: redis.Redis) -> Iterator[list[str]]:
    """Budget bucket keys made by a test, deleted afterwards."""
    keys: list[str] = []
    yield keys
    if keys:
        redis_client.delete(*keys)


Connect = Callable[..., StripeConnector]


@pytest.fixture
def connect(standin: StripeStandIn, redis_client: redis.Redis, budget_keys: list[str]) -> Iterator[Connect]:
    """``connect(**config overrides)`` → a ``StripeConnector`` on the stand-in, paying from a Redis budget."""
    made: list[StripeConnector] = []

    def factory(**overrides: Any) -> StripeConnector:
        config = make_config(standin.url, **overrides)
        budget_keys.append(config.bucket_key)
        connector = StripeConnector.with_shared_budget(config, redis_client)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        connector.close()


@pytest.fixture
def connector(connect: Connect) -> StripeConnector:
    return connect()


def stripe_event_body(events: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    return json.dumps(events, indent=2).encode()
