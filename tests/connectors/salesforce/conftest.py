"""Fixtures for the Salesforce connector: the Salesforce stand-in over real TLS on loopback (simple-salesforce
against it), an Outbound Message listener, a PostHog stand-in whose members are the stand-in's sales reps, and
connectors wired to the real Redis.

Costs are asserted with the stand-ins' request counters, never with timings. Every connector and SDK session a
test opens is closed before the test ends: an idle TLS keep-alive would hold the stand-in's shutdown.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from simple_salesforce.api import Salesforce

from connectors.registry import stream_fields
from connectors.salesforce import PasswordAuth, SalesforceConfig, SalesforceConnector
from sandbox.identities import sales_rep_email
from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig
from sandbox.salesforce import SalesforceSandboxConfig, create_app, make_tls, sdk_session
from sandbox.salesforce.org import Org
from sandbox.salesforce.outbound import ack_response
from sandbox.salesforce.store import account_id
from sync.connector import WebhookRequest
from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig, load_mapping_file
from sync.posthog import PostHogClient
from sync.posthog.custom_properties import setup_definitions
from sync.retry import RetryPolicy
from tests.conftest import POSTHOG_KEY, PostHogSandbox, emptied, running_posthog
from workers.serving import ServerThread

USERNAME = "admin@sandbox.example"
ORG_ID = "00D000000000001AAA"
WEBHOOK_TOKEN = "sf-outbound-token-0123456789"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "crmsync.yaml"
REPS = tuple(Member(200 + k, sales_rep_email(k), f"Rep{k}") for k in range(3))
NO_WAIT = RetryPolicy(max_retries=3, sleep=lambda _s: None)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StandIn:
    """The running Salesforce stand-in: admin routes, counters, and connectors/SDK clients pointed at it."""

    server: ServerThread
    app: FastAPI
    ca_path: Path
    jwt_private_pem: str
    connectors: list[SalesforceConnector] = field(default_factory=list)
    sessions: list[requests.Session] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def org(self) -> Org:
        org = self.app.state.org
        assert isinstance(org, Org)
        return org

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        return httpx.Client(base_url=self.url, verify=context, trust_env=False)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.http() as http:
            response = http.request(method, f"/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def count(self, route_suffix: str = "", method: str | None = None, status: int | None = None) -> int:
        """Requests the stand-in answered whose route template ends with ``route_suffix`` (faults included)."""
        return sum(
            row["count"]
            for row in self.admin("GET", "/stats")["requests"]
            if row["route"].endswith(route_suffix)
            and (method is None or row["method"] == method)
            and (status is None or row["status"] == status)
        )

    def queries(self) -> int:
        """SOQL requests: first pages (``query``/``queryAll``) and next pages (``query/{locator}``)."""
        return self.count("/queryAll/", "GET") + self.count("/query/", "GET") + self.count("/query/{locator}", "GET")

    def reset(self) -> None:
        self.admin("POST", "/reset")
        self.admin("POST", "/limits", json={"used": 0, "max": 15000})
        self.admin("POST", "/outbound", json={"url": None})

    def seed(self, count: int, start: int = 0, users: int = 3) -> list[str]:
        self.admin("POST", "/seed", json={"count": count, "start": start, "users": users})
        return [account_id(i) for i in range(start, start + count)]

    def set_modstamp(self, moment: datetime, ids: list[str] | None = None) -> None:
        self.admin("POST", "/modstamp", json={"sobject": "Account", "value": iso(moment), "ids": ids})

    def faults(self, **config: Any) -> None:
        self.admin("POST", "/faults", json=config)

    def record(self, record_id: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"/sobjects/Account/{record_id}"))

    def config(self, **overrides: Any) -> SalesforceConfig:
        settings: dict[str, Any] = {
            "auth": PasswordAuth(
                username=USERNAME,
                password=SecretStr("sandbox"),
                client_id="sandbox",
                client_secret=SecretStr("sandbox"),
            ),
            "login_url": self.url,
            "ca_bundle": str(self.ca_path),
            "trust_env": False,
            "organization_id": ORG_ID,
            "webhook_token": SecretStr(WEBHOOK_TOKEN),
            **overrides,
        }
        return SalesforceConfig(**settings)

    def connector(
        self,
        redis_client: redis.Redis | None = None,
        mapping: MappingConfig | None = None,
        **overrides: Any,
    ) -> SalesforceConnector:
        fields = stream_fields("salesforce", mapping).get("Account") if mapping is not None else None
        connector = SalesforceConnector(self.config(**overrides), redis_client, fields, retry=NO_WAIT)
        self.connectors.append(connector)
        return connector

    def token(self) -> str:
        with self.http() as http:
            form = {"grant_type": "password", "client_id": "sandbox", "client_secret": "sandbox"}
            response = http.post("/services/oauth2/token", data=form | {"username": USERNAME, "password": "sandbox"})
        response.raise_for_status()
        return str(response.json()["access_token"])

    def sdk(self) -> Salesforce:
        """An SDK client of the test's own (not the connector's), e.g. to save records as an integration would."""
        session = sdk_session(self.ca_path)
        self.sessions.append(session)
        return Salesforce(instance_url=self.url, session_id=self.token(), session=session, version="59.0")

    def close_clients(self) -> None:
        for connector in self.connectors:
            connector.close()
        for session in self.sessions:
            session.close()
        self.connectors.clear()
        self.sessions.clear()


def _jwt_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="session")
def sf_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path_factory.mktemp("salesforce-connector-tls"))


@pytest.fixture(scope="session")
def sf_server(sf_tls: tuple[Path, Path, Path]) -> Iterator[StandIn]:
    cert, key, ca = sf_tls
    private, public = _jwt_keys()
    config = SalesforceSandboxConfig(jwt_public_key_pem=public, outbound_attempts=3, outbound_retry_base_s=0.02)
    app = create_app(config)
    server = ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)).start()
    try:
        yield StandIn(server, app, ca, private)
    finally:
        server.stop()


@pytest.fixture
def standin(sf_server: StandIn) -> Iterator[StandIn]:
    """The shared stand-in, emptied, its allowance, faults and outbound URL back to defaults."""
    sf_server.reset()
    try:
        yield sf_server
    finally:
        sf_server.close_clients()
        sf_server.faults()
        sf_server.org.notifier.sender.drain(10)


@pytest.fixture
def budget_redis(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The real Redis, with the Salesforce budget keys this test made removed afterwards."""
    yield redis_client
    keys = list(redis_client.scan_iter(match="crmsync:budget:salesforce:test-*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def budget_key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


# -- PostHog: a stand-in whose members are the Salesforce stand-in's sales reps ----------------------------------


@pytest.fixture(scope="session")
def sf_posthog_server() -> Iterator[PostHogSandbox]:
    config = PostHogSandboxConfig(projects=(1,), keys=(ApiKey(POSTHOG_KEY, ("*",)),), members=REPS)
    with running_posthog(config) as sandbox:
        yield sandbox


@pytest.fixture
def sf_posthog(sf_posthog_server: PostHogSandbox) -> Iterator[PostHogSandbox]:
    yield from emptied(sf_posthog_server)


@pytest.fixture
def sf_ph(sf_posthog: PostHogSandbox) -> Iterator[PostHogClient]:
    with sf_posthog.client() as client:
        yield client


@pytest.fixture(scope="session")
def mapping() -> MappingConfig:
    return load_mapping_file(EXAMPLE_CONFIG)


@pytest.fixture
def engine(sf_ph: PostHogClient, ledger: Ledger, mapping: MappingConfig) -> SyncEngine:
    setup_definitions(sf_ph, mapping.custom_definitions())  # PostHog set up as `crmsync setup posthog` does
    return SyncEngine(sf_ph, ledger, mapping)


# -- Outbound Messages: a listener the stand-in delivers to ---------------------------------------------------


Handler = Callable[[WebhookRequest], tuple[int, bytes]]


@dataclass
class Listener:
    """Receives Outbound Messages at ``/salesforce/{token}``; by default records each one and acknowledges it."""

    server: ServerThread
    received: list[WebhookRequest] = field(default_factory=list)
    handler: Handler | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, token: str = WEBHOOK_TOKEN) -> str:
        return f"{self.server.url}/salesforce/{token}"


@pytest.fixture(scope="session")
def listener_server() -> Iterator[Listener]:
    app = FastAPI()
    holder: dict[str, Listener] = {}

    @app.post("/salesforce/{token}")
    async def receive(request: Request) -> Response:
        listener = holder["listener"]
        delivery = WebhookRequest(
            request.method, str(request.url), dict(request.headers), await request.body(), dict(request.path_params)
        )
        with listener.lock:
            listener.received.append(delivery)
        if listener.handler is None:
            return Response(ack_response(), media_type="text/xml; charset=utf-8")
        status, body = listener.handler(delivery)
        return Response(body, status_code=status, media_type="text/xml; charset=utf-8")

    server = ServerThread(app).start()
    try:
        holder["listener"] = Listener(server)
        yield holder["listener"]
    finally:
        server.stop()


@pytest.fixture
def listener(standin: StandIn, listener_server: Listener) -> Iterator[Listener]:
    """The listener, emptied, set as the stand-in's Outbound Message endpoint for this test."""
    listener_server.received.clear()
    listener_server.handler = None
    standin.admin("POST", "/outbound", json={"url": listener_server.url()})
    yield listener_server
    standin.org.notifier.sender.drain(10)
    standin.admin("POST", "/outbound", json={"url": None})
    listener_server.handler = None


def deliver(standin: StandIn, listener: Listener) -> list[WebhookRequest]:
    """Wait for the stand-in to deliver what it queued; the deliveries received so far."""
    assert standin.org.notifier.sender.drain(10)
    with listener.lock:
        return list(listener.received)
