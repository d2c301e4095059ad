"""Fixtures for the HubSpot connector: the HubSpot stand-in on loopback (official SDK against it), a PostHog
stand-in whose members are the stand-in's deal owners, and connectors wired to the real Redis.

Costs are asserted with the stand-ins' request counters, never with timings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from connectors.hubspot import HubSpotConfig, HubSpotConnector
from sandbox.hubspot import HubSpotSandboxConfig
from sandbox.hubspot import create_app as create_hubspot
from sandbox.hubspot.seeding import SECOND_DEAL_EVERY, deal_id
from sandbox.identities import sales_rep_email
from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig
from sync.connector import WebhookRequest
from sync.engine import SyncEngine
from sync.ledger import Ledger, delete_keys
from sync.mapping import MappingConfig, load_mapping_file
from sync.posthog import PostHogClient
from sync.posthog.custom_properties import setup_definitions
from tests.conftest import POSTHOG_KEY, PostHogSandbox, emptied, running_posthog
from workers.serving import ServerThread

TOKEN = "pat-sandbox"
APP_SECRET = "sandbox-secret"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "crmsync.yaml"
REPS = tuple(Member(100 + k, sales_rep_email(k), f"Rep{k}") for k in range(10))


def seeded_deal_ids(start: int, count: int) -> list[str]:
    """The deal ids ``POST /_sandbox/seed {start, count}`` creates (a second, lost deal every seventh company)."""
    ids: list[str] = []
    for i in range(start, start + count):
        ids.append(str(deal_id(i)))
        if i % SECOND_DEAL_EVERY == 0:
            ids.append(str(deal_id(i, True)))
    return ids


@dataclass
class HubSpotSandbox:
    """The running HubSpot stand-in, its admin routes and request counters."""

    server: ServerThread
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def stats(self) -> dict[str, Any]:
        return dict(self.admin.get("/_sandbox/stats").json())

    def count(self, route_suffix: str = "", method: str | None = None, status: int | None = None) -> int:
        """Requests the stand-in answered whose route template ends with ``route_suffix``."""
        return sum(
            row["count"]
            for row in self.stats()["requests"]
            if row["route"].endswith(route_suffix)
            and (method is None or row["method"] == method)
            and (status is None or row["status"] == status)
        )

    def reset_counters(self) -> None:
        self.admin.post("/_sandbox/stats/reset").raise_for_status()

    def seed(self, count: int, start: int = 0) -> list[str]:
        self.admin.post("/_sandbox/seed", json={"count": count, "start": start}).raise_for_status()
        return seeded_deal_ids(start, count)

    def edit(self, kind: str, record_id: str, **properties: Any) -> dict[str, Any]:
        response = self.admin.patch(f"/_sandbox/objects/{kind}/{record_id}", json={"properties": properties})
        response.raise_for_status()
        return dict(response.json())

    def archive(self, kind: str, record_id: str) -> None:
        self.admin.delete(f"/_sandbox/objects/{kind}/{record_id}").raise_for_status()

    def merge(self, kind: str, primary_id: str, merged_id: str) -> dict[str, Any]:
        response = self.admin.post(
            f"/_sandbox/objects/{kind}/merge", json={"primary_id": int(primary_id), "merged_id": int(merged_id)}
        )
        response.raise_for_status()
        return dict(response.json())

    def set_modified(self, kind: str, ids: list[str], timestamp_ms: int) -> None:
        body = {"timestamp": timestamp_ms, "ids": [int(i) for i in ids]}
        self.admin.post(f"/_sandbox/objects/{kind}/modified", json=body).raise_for_status()

    def faults(self, **config: Any) -> None:
        self.admin.post("/_sandbox/faults", json=config).raise_for_status()

    def rate_limits(self, app_limit_per_10s: int = 0, search_limit_per_s: int = 0, daily_limit: int = 0) -> None:
        body = {
            "app_limit_per_10s": app_limit_per_10s,
            "search_limit_per_s": search_limit_per_s,
            "daily_limit": daily_limit,
        }
        self.admin.put("/_sandbox/ratelimits", json=body).raise_for_status()

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A vendor API call made directly (not through the connector), with the stand-in's token."""
        response = self.admin.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def property_value(self, deal: str, name: str) -> Any:
        return self.api("GET", f"/crm/v3/objects/deals/{deal}", params={"properties": name})["properties"].get(name)

    def update_deals(self, changes: dict[str, dict[str, Any]]) -> None:
        """One batch update through the API: one webhook delivery for all of ``changes``."""
        inputs = [{"id": rid, "properties": props} for rid, props in changes.items()]
        self.api("POST", "/crm/v3/objects/deals/batch/update", json={"inputs": inputs})


@pytest.fixture(scope="session")
def hubspot_server() -> Iterator[HubSpotSandbox]:
    config = HubSpotSandboxConfig(token=TOKEN, app_secret=APP_SECRET, app_limit_per_10s=0, search_limit_per_s=0)
    with ServerThread(create_hubspot(config)) as server, httpx.Client(base_url=server.url, trust_env=False) as admin:
        yield HubSpotSandbox(server, admin)


@pytest.fixture
def hubspot(hubspot_server: HubSpotSandbox) -> Iterator[HubSpotSandbox]:
    """The shared stand-in, emptied, with counters and faults cleared and its rate limits off."""
    hubspot_server.admin.post("/_sandbox/reset").raise_for_status()
    hubspot_server.rate_limits()
    yield hubspot_server
    hubspot_server.faults()


@pytest.fixture
def budget_namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix for this test's shared rate budgets, removed afterwards."""
    namespace = f"crmsync-test-budget-{uuid.uuid4().hex[:12]}"
    yield namespace
    delete_keys(redis_client, f"{namespace}:*")


def make_config(url: str, namespace: str = "crmsync-test-budget", **overrides: Any) -> HubSpotConfig:
    """A connector config for the stand-in: fast backoff, generous budgets unless a test says otherwise."""
    settings: dict[str, Any] = {
        "access_token": SecretStr(TOKEN),
        "host": url,
        "client_secret": SecretStr(APP_SECRET),
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "app_limit_per_10s": 100_000,
        "search_limit_per_s": 10_000,
        "budget_namespace": namespace,
        **overrides,
    }
    return HubSpotConfig(**settings)


@pytest.fixture
def connector(hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str) -> HubSpotConnector:
    return HubSpotConnector(make_config(hubspot.url, budget_namespace), redis_client)


# -- PostHog: a stand-in whose members are the HubSpot owners, so deal owners resolve to roles -------------------


@pytest.fixture(scope="session")
def posthog_reps_server() -> Iterator[PostHogSandbox]:
    config = PostHogSandboxConfig(projects=(1,), keys=(ApiKey(POSTHOG_KEY, ("*",)),), members=REPS)
    with running_posthog(config) as sandbox:
        yield sandbox


@pytest.fixture
def posthog_reps(posthog_reps_server: PostHogSandbox) -> Iterator[PostHogSandbox]:
    yield from emptied(posthog_reps_server)


@pytest.fixture
def ph_reps(posthog_reps: PostHogSandbox) -> Iterator[PostHogClient]:
    with posthog_reps.client() as client:
        yield client


@pytest.fixture(scope="session")
def mapping() -> MappingConfig:
    return load_mapping_file(EXAMPLE_CONFIG)


@pytest.fixture
def engine(ph_reps: PostHogClient, ledger: Ledger, mapping: MappingConfig) -> SyncEngine:
    setup_definitions(ph_reps, mapping.custom_definitions())  # PostHog set up as `crmsync setup posthog` does
    return SyncEngine(ph_reps, ledger, mapping)


# -- webhooks: a receiver the stand-in delivers its signed webhooks to ----------------------------------------


@dataclass
class WebhookReceiver:
    """Records every delivery exactly as received (method, full URL, headers, raw body)."""

    server: ServerThread
    deliveries: list[WebhookRequest]

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/hubspot"


@pytest.fixture(scope="session")
def webhook_receiver_server() -> Iterator[WebhookReceiver]:
    app = FastAPI()
    deliveries: list[WebhookRequest] = []

    @app.post("/webhooks/hubspot")
    async def receive(request: Request) -> Response:
        body = await request.body()
        deliveries.append(WebhookRequest(request.method, str(request.url), dict(request.headers), body))
        return Response(status_code=204)

    with ServerThread(app) as server:
        yield WebhookReceiver(server, deliveries)


@pytest.fixture
def webhook_receiver(hubspot: HubSpotSandbox, webhook_receiver_server: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """The receiver, emptied, set as the stand-in's webhook target for this test."""
    webhook_receiver_server.deliveries.clear()
    hubspot.admin.put("/_sandbox/webhook", json={"url": webhook_receiver_server.url}).raise_for_status()
    yield webhook_receiver_server
    hubspot.admin.put("/_sandbox/webhook", json={"url": None}).raise_for_status()


def drain_webhooks(hubspot: HubSpotSandbox) -> None:
    hubspot.admin.post("/_sandbox/webhook/drain").raise_for_status()
