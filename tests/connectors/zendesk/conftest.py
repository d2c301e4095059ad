"""Fixtures for the Zendesk connector's tests: the Zendesk stand-in on loopback and a connector pointed at it.

One stand-in serves the whole session and is reset before each test (data, fields, counters, faults, limits,
webhook target). Costs are read from its request counters (``ZendeskStandIn.count``), never from a clock.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from connectors.zendesk import ZendeskConnector, load_zendesk_config
from sandbox.zendesk.app import create_app
from sandbox.zendesk.config import EMAIL, TOKEN, WEBHOOK_SECRET, ZendeskSandboxConfig
from sync.retry import RetryPolicy
from workers.serving import ServerThread

FIELD = "posthog_account_id"


@dataclass
class ZendeskStandIn:
    """A running Zendesk stand-in with helpers for its admin routes, its API and its counters."""

    server: ServerThread
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()}

    def reset(self) -> None:
        self.admin.post("/_sandbox/reset").raise_for_status()
        self.admin.put("/_sandbox/webhooks", json={"url": None, "secret": WEBHOOK_SECRET}).raise_for_status()
        self.limits(requests_per_minute=0, export_requests_per_minute=0, export_page_size=1000, job_polls=1)
        self.admin.post("/_sandbox/fields", json={"key": FIELD}).raise_for_status()

    def limits(self, **values: int) -> None:
        self.admin.post("/_sandbox/limits", json=values).raise_for_status()

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

    def create(self, **values: Any) -> str:
        values.setdefault("name", f"Org {uuid.uuid4().hex[:8]}")
        response = self.admin.post("/_sandbox/organizations", json=values)
        response.raise_for_status()
        return str(response.json()["id"])

    def edit(self, org_id: str, **values: Any) -> dict[str, Any]:
        response = self.admin.patch(f"/_sandbox/organizations/{org_id}", json=values)
        response.raise_for_status()
        return dict(response.json()["organization"])

    def api(self, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        return self.admin.request(method, path, headers=self.auth_header, **kwargs)

    def org(self, org_id: str) -> dict[str, Any]:
        response = self.api(f"/api/v2/organizations/{org_id}")
        response.raise_for_status()
        return dict(response.json()["organization"])


@pytest.fixture(scope="session")
def zendesk_server() -> Iterator[ServerThread]:
    server = ServerThread(create_app(ZendeskSandboxConfig())).start()
    yield server
    server.stop()


@pytest.fixture
def standin(zendesk_server: ServerThread) -> Iterator[ZendeskStandIn]:
    with httpx.Client(base_url=zendesk_server.url, timeout=30) as admin:
        kit = ZendeskStandIn(zendesk_server, admin)
        kit.reset()
        yield kit


def block(standin: ZendeskStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "url": standin.url,
        "email": EMAIL,
        "api_token": TOKEN,
        "webhook_secret": WEBHOOK_SECRET,
        "requests_per_minute": 100_000,
        "export_requests_per_minute": 1_000,
        **extra,
    }


def fast_retry() -> RetryPolicy:
    """The connector's policy with waits too short to matter (tests count requests, not time)."""
    return RetryPolicy(max_retries=4, backoff_s=0.001, max_backoff_s=1.0, max_total_s=10.0)


@pytest.fixture
def connector(standin: ZendeskStandIn, redis_client: redis.Redis) -> Iterator[ZendeskConnector]:
    config = load_zendesk_config(block(standin))
    made = ZendeskConnector(config, redis_client, retry=fast_retry())
    redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
    yield made
    made.close()
