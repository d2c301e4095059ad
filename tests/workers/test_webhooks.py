"""The webhook receiver over loopback HTTP: verify, reject, dedupe, coalesce, enqueue; then the refresh task."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sandbox.common import serving
from sync.connector import Connector, WebhookRequest
from tests.conftest import POSTHOG_KEY, PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import MAPPING
from workers.config import parse_config
from workers.runtime import Runtime, set_runtime
from workers.tasks import pending_key, refresh


@pytest.fixture
def runtime(posthog: PostHogSandbox, ledger: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    raw = {
        **MAPPING,
        "posthog": {"host": posthog.url, "stand_in": True, "project_id": 1},
        "ledger_prefix": ledger.ns.split(":")[0],  # the budget's keys too, deleted with the test's ledger
        "sources": {"memcrm": {"config": {}}},
        "webhooks": {"coalesce_s": 5, "max_body_bytes": 2048, "body_timeout_s": 1.0},
    }
    rt = Runtime(parse_config(raw))
    rt.__dict__["redis"] = ledger.redis
    rt.__dict__["ledger"] = ledger
    rt.install_connector("memcrm", MemoryConnector(MemoryCrm()))
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.fixture
def enqueued() -> list[tuple[str, str, float]]:
    return []


@pytest.fixture
def http(runtime: Runtime, enqueued: list[tuple[str, str, float]]) -> Iterator[httpx.Client]:
    from workers.webhooks import create_webhook_app

    app = create_webhook_app(runtime, enqueue=lambda s, o, c: enqueued.append((s, o, c)))
    with serving(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


def deliver(http: httpx.Client, runtime: Runtime, events: list[dict[str, str]], *, sign: bool = True) -> httpx.Response:
    body = json.dumps(events).encode()
    connector = runtime.connector("memcrm")
    assert isinstance(connector, MemoryConnector)
    headers = {"X-Memory-Signature": connector.sign(body) if sign else "0" * 64}
    return http.post("/webhooks/memcrm", content=body, headers=headers)


def test_valid_deliveries_are_deduped_and_coalesced(
    http: httpx.Client, runtime: Runtime, enqueued: list[tuple[str, str, float]]
) -> None:
    first = deliver(http, runtime, [{"id": "001A", "event_id": "e1"}, {"id": "001B", "event_id": "e2"}])
    assert first.status_code == 200 and first.json() == {"received": 2, "new": 2}
    again = deliver(http, runtime, [{"id": "001A", "event_id": "e1"}, {"id": "001C", "event_id": "e3"}])
    assert again.json() == {"received": 2, "new": 1}  # e1 replayed: dropped
    assert deliver(http, runtime, [{"id": "001A", "event_id": "e1"}]).json() == {"received": 1, "new": 0}
    assert enqueued == [("memcrm", "accounts", 5)]  # one refresh for the whole window
    pending = runtime.redis.smembers(pending_key(runtime, "memcrm", "accounts"))
    assert pending == {"001A", "001B", "001C"}


class CountingRuntime(Runtime):
    """A runtime that counts how often the receiver looks a connector up."""

    lookups = 0

    def connector(self, source: str) -> Connector:
        self.lookups += 1
        return super().connector(source)


def test_each_delivery_looks_its_connector_up_once(runtime: Runtime) -> None:
    from workers.webhooks import create_webhook_app

    counting = CountingRuntime(runtime.config)
    counting.__dict__.update(redis=runtime.redis, ledger=runtime.ledger)
    crm = MemoryConnector(MemoryCrm())
    counting.install_connector("memcrm", crm)
    app = create_webhook_app(counting, enqueue=lambda s, o, c: None)
    body = json.dumps([{"id": "001A", "event_id": "e1"}, {"id": "001B", "event_id": "e2"}]).encode()
    with serving(app) as server, httpx.Client(base_url=server.url) as client:
        before = counting.lookups
        for n in range(3):
            response = client.post("/webhooks/memcrm", content=body, headers={"X-Memory-Signature": crm.sign(body)})
            assert response.status_code == 200, n
        assert counting.lookups - before == 3


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'[{"id": "1", "event_id": "e"}]', {"X-Memory-Signature": "bad"}, 401),
        (b"[]", {}, 401),
        (b"x" * 5000, {}, 413),
    ],
)
def test_bad_deliveries_are_rejected_and_enqueue_nothing(
    http: httpx.Client, enqueued: list[tuple[str, str, float]], body: bytes, headers: dict[str, str], status: int
) -> None:
    assert http.post("/webhooks/memcrm", content=body, headers=headers).status_code == status
    assert enqueued == []


def test_malformed_but_signed_body_is_a_400(
    http: httpx.Client, runtime: Runtime, enqueued: list[tuple[str, str, float]]
) -> None:
    connector = runtime.connector("memcrm")
    assert isinstance(connector, MemoryConnector)
    body = b'{"not": "a list"}'
    response = http.post("/webhooks/memcrm", content=body, headers={"X-Memory-Signature": connector.sign(body)})
    assert response.status_code == 400 and enqueued == []
    assert http.post("/webhooks/nope", content=b"[]").status_code == 404


def test_health_readiness_and_metrics(http: httpx.Client, runtime: Runtime) -> None:
    deliver(http, runtime, [{"id": "001A", "event_id": "e1"}])
    deliver(http, runtime, [{"id": "001A", "event_id": "e2"}], sign=False)
    assert http.get("/healthz").json() == {"ok": True}
    assert http.get("/readyz").status_code == 200
    metrics = http.get("/metrics").text
    assert 'crmsync_webhooks_total{outcome="accepted",source="memcrm"} 1.0' in metrics
    assert 'crmsync_webhooks_total{outcome="rejected",source="memcrm"} 1.0' in metrics
    assert 'crmsync_queue_depth{queue="realtime"}' in metrics
    assert 'crmsync_posthog_budget_left{window="480/60"} 480.0' in metrics  # PostHog's budget, untouched yet
    assert "crmsync_posthog_budget_waits_total 0.0" in metrics


def test_refresh_task_applies_everything_gathered(
    http: httpx.Client, runtime: Runtime, posthog: PostHogSandbox
) -> None:
    connector = runtime.connector("memcrm")
    assert isinstance(connector, MemoryConnector)
    connector.crm.put("001A", name="Acme", ext="acct-a")
    connector.crm.put("001B", name="Bolt", ext="acct-b")
    deliver(http, runtime, [{"id": "001A", "event_id": "e1"}, {"id": "001B", "event_id": "e2"}])
    result = refresh.run("memcrm", "accounts")
    (run,) = result["runs"]
    assert run["mode"] == "refresh" and run["counts"]["created"] == 2
    assert connector.crm.fetches == 1  # one fetch for the coalesced ids
    assert refresh.run("memcrm", "accounts") == {"runs": []}  # nothing left pending
    assert posthog.count("POST", status=201) == 2
    metrics = http.get("/metrics").text
    # the connector's one fetch and one push-back batch, reported once by the task that made them
    assert 'crmsync_api_calls_total{vendor="memcrm"} 2.0' in metrics
    assert 'crmsync_api_calls_total{vendor="posthog"}' in metrics
    assert connector.call_stats.requests == 0  # handed over once


class HeldConnector(MemoryConnector):
    """A connector whose signature check waits until the test lets it go (a slow check, made deterministic)."""

    def __init__(self) -> None:
        super().__init__(MemoryCrm())
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify_webhook(self, request: WebhookRequest) -> None:
        self.entered.set()
        self.release.wait(30)
        super().verify_webhook(request)


def test_health_answers_while_a_delivery_is_being_checked(http: httpx.Client, runtime: Runtime) -> None:
    """Verification (and every other blocking step) runs in a worker thread: the event loop stays free."""
    held = HeldConnector()
    runtime.install_connector("memcrm", held)
    body = json.dumps([{"id": "001A", "event_id": "e1"}]).encode()
    answers: list[int] = []
    with httpx.Client(base_url=str(http.base_url), timeout=30) as other:
        sender = threading.Thread(
            target=lambda: answers.append(
                other.post(
                    "/webhooks/memcrm", content=body, headers={"X-Memory-Signature": held.sign(body)}
                ).status_code
            )
        )
        sender.start()
        try:
            assert held.entered.wait(10), "the delivery never reached verification"
            assert http.get("/healthz", timeout=5).json() == {"ok": True}  # answered while verify is held
            assert not held.release.is_set() and sender.is_alive()
        finally:
            held.release.set()
            sender.join(30)
    assert answers == [200]


def _raw_post(base_url: str, path: str, head: bytes) -> socket.socket:
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n".encode() + head + b"\r\n")
    return sock


def _read_status(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_trickled_body_is_cut_with_408(http: httpx.Client, runtime: Runtime) -> None:
    """One byte at a time, never finishing: the receiver answers 408 after ``body_timeout_s`` and closes."""
    sock = _raw_post(
        str(http.base_url), "/webhooks/memcrm", b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
    )
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):
            try:
                sock.sendall(b" ")
            except OSError:
                return

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        assert http.get("/healthz", timeout=5).status_code == 200  # the loop is free while the body trickles
        assert _read_status(sock) == 408
    finally:
        stop.set()
        feeder.join(5)
        sock.close()
    assert runtime.redis.hget(f"{runtime.ledger.ns}:metrics", "webhooks|memcrm|body_timeout") == "1"


@pytest.mark.parametrize("length", ["²", "١٢", "-1", "1e3", "0x10"])
def test_a_bad_content_length_is_a_400(http: httpx.Client, length: str) -> None:
    sock = _raw_post(str(http.base_url), "/webhooks/memcrm", f"Content-Length: {length}\r\n".encode())
    try:
        assert _read_status(sock) in (400,)
    finally:
        sock.close()


def test_runtime_close_closes_every_connector(runtime: Runtime) -> None:
    connector = runtime.connector("memcrm")
    assert isinstance(connector, MemoryConnector) and not connector.closed
    runtime.close()
    assert connector.closed and runtime.built_connectors() == {}
