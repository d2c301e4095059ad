"""Zendesk webhooks: valid, forged and stale signatures, and the stand-in's real deliveries through the connector.

Zendesk signs ``timestamp + body`` with HMAC-SHA256 under the webhook's signing secret, base64 in
``X-Zendesk-Webhook-Signature``, the timestamp in ``X-Zendesk-Webhook-Signature-Timestamp``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connectors.zendesk import ZendeskConnector, load_zendesk_config
from sandbox.zendesk.config import WEBHOOK_SECRET
from sandbox.zendesk.webhooks import event_bodies, signed_headers
from sync.connector import EventKind, MalformedWebhook, WebhookRejected, WebhookRequest
from tests.connectors.zendesk.conftest import ZendeskStandIn, block
from workers.serving import ServerThread

URL = "https://crmsync.example.com/webhooks/zendesk"
ORG = {"id": 20000000042, "name": "Acme", "external_id": "acct-42", "updated_at": "2026-12-05T12:00:00Z"}


def delivery(body: bytes, secret: str = WEBHOOK_SECRET, at: float | None = None) -> WebhookRequest:
    return WebhookRequest("POST", URL, signed_headers(secret, body, time.time() if at is None else at), body)


def test_the_signature_is_base64_hmac_sha256_of_timestamp_and_body() -> None:
    body = b'{"type": "zen:event-type:organization.created"}'
    headers = signed_headers("s3cret", body, 1_700_000_000)
    stamp = headers["X-Zendesk-Webhook-Signature-Timestamp"]
    assert stamp == "2023-11-14T22:13:20Z"
    expected = base64.b64encode(hmac.new(b"s3cret", stamp.encode() + body, hashlib.sha256).digest()).decode()
    assert headers["X-Zendesk-Webhook-Signature"] == expected


def test_a_valid_delivery_is_accepted_and_parsed(connector: ZendeskConnector) -> None:
    (body,) = event_bodies(ORG, ["name"])
    request = delivery(body)
    connector.verify_webhook(request)
    (event,) = connector.parse_webhook(request)
    assert (event.source, event.object, event.id, event.kind) == ("zendesk", "organizations", "20000000042", "upsert")
    assert event.event_id == json.loads(body)["id"]


def test_forged_deliveries_are_rejected(connector: ZendeskConnector) -> None:
    (body,) = event_bodies(ORG, ["tags"])
    with pytest.raises(WebhookRejected, match="bad signature"):
        connector.verify_webhook(delivery(body, secret="not-the-secret"))
    genuine = delivery(body)
    with pytest.raises(WebhookRejected, match="bad signature"):
        connector.verify_webhook(replace(genuine, body=body.replace(b"20000000042", b"20000000043")))
    moved = dict(genuine.headers, **{"X-Zendesk-Webhook-Signature-Timestamp": "2026-12-05T12:00:01Z"})
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(replace(genuine, headers=moved))  # the timestamp is signed too
    for missing in ("X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"):
        headers = {k: v for k, v in genuine.headers.items() if k != missing}
        with pytest.raises(WebhookRejected, match="missing"):
            connector.verify_webhook(replace(genuine, headers=headers))


def test_stale_and_future_deliveries_are_rejected(connector: ZendeskConnector) -> None:
    (body,) = event_bodies(ORG, ["created"])
    tolerance = connector.config.webhook_tolerance_s
    connector.verify_webhook(delivery(body, at=time.time() - tolerance + 30))  # inside the window
    with pytest.raises(WebhookRejected, match="stale"):
        connector.verify_webhook(delivery(body, at=time.time() - tolerance - 30))  # a replay, correctly signed
    with pytest.raises(WebhookRejected, match="stale"):
        connector.verify_webhook(delivery(body, at=time.time() + tolerance + 30))


def test_without_a_secret_every_delivery_is_rejected(standin: ZendeskStandIn) -> None:
    config = load_zendesk_config({k: v for k, v in block(standin).items() if k != "webhook_secret"})
    connector = ZendeskConnector(config)
    (body,) = event_bodies(ORG, ["created"])
    with pytest.raises(WebhookRejected, match="no webhook_secret"):
        connector.verify_webhook(delivery(body))
    assert "zendesk-sandbox" not in str(config)  # the secrets are never printed
    connector.close()


def test_event_types_become_refreshes_deletes_or_nothing(connector: ZendeskConnector) -> None:
    changes = ["created", "name", "tags", "external_id", "custom_field", "deleted"]
    kinds = []
    for body in event_bodies(ORG, changes):
        kinds.extend(e.kind for e in connector.parse_webhook(delivery(body)))
    assert kinds == [EventKind.UPSERT] * 5 + [EventKind.DELETE]
    other = json.dumps({"type": "zen:event-type:user.created", "id": "u-1", "detail": {"id": "7"}}).encode()
    assert connector.parse_webhook(delivery(other)) == []
    for bad in (b"not json", b"[1, 2]", json.dumps({"type": "zen:event-type:organization.created"}).encode()):
        with pytest.raises(MalformedWebhook):
            connector.parse_webhook(delivery(bad))


@pytest.fixture
def capture() -> Iterator[tuple[str, list[WebhookRequest], threading.Event]]:
    """A receiver on loopback that keeps each delivery exactly as received."""
    got: list[WebhookRequest] = []
    arrived = threading.Event()
    app = FastAPI()

    @app.post("/webhooks/zendesk")
    async def receive(request: Request) -> JSONResponse:
        got.append(WebhookRequest("POST", str(request.url), dict(request.headers), await request.body()))
        arrived.set()
        return JSONResponse({"ok": True})

    server = ServerThread(app).start()
    yield f"{server.url}/webhooks/zendesk", got, arrived
    server.stop()


def test_the_stand_ins_deliveries_verify_and_parse(
    standin: ZendeskStandIn, connector: ZendeskConnector, capture: tuple[str, list[WebhookRequest], threading.Event]
) -> None:
    url, got, _ = capture
    org_id = standin.create(name="Initech", domain_names=["initech.example.com"])
    standin.admin.put("/_sandbox/webhooks", json={"url": url}).raise_for_status()
    standin.edit(org_id, name="Initech Labs", tags=["vip"], notes="no event for notes")
    assert standin.admin.post("/_sandbox/webhooks/drain").json()["drained"]
    assert len(got) == 2  # name_changed and tags_changed; a notes change has no event type
    types = []
    for request in got:
        connector.verify_webhook(request)
        (event,) = connector.parse_webhook(request)
        assert event.id == org_id
        types.append(json.loads(request.body)["type"])
    assert sorted(types) == ["zen:event-type:organization.name_changed", "zen:event-type:organization.tags_changed"]
