"""Webhook verification (raw body, tolerance, several ``v1`` signatures and secrets) and parsing into refresh
events — on deliveries the stand-in really sent, and on hand-signed ones for each verdict."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import SecretStr

from connectors.stripe import StripeConnector
from sandbox.stripe.seed import customer_id
from sync.connector import EventKind, MalformedWebhook, WebhookRejected, WebhookRequest
from tests.connectors.stripe.conftest import WEBHOOK_SECRET, Connect, StripeStandIn
from workers.serving import ServerThread

URL = "https://crmsync.example.com/webhooks/stripe"
OLD_SECRET = "whsec_old_rotated_out"


def event_body(event_type: str = "customer.updated", customer: str = "cus_1", **extra: Any) -> bytes:
    obj: dict[str, Any] = (
        {"id": "sub_1", "object": "subscription", "customer": customer}
        if event_type.startswith("customer.subscription.")
        else {"id": customer, "object": "customer"}
    )
    event = {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
        "request": {"id": "req_1", "idempotency_key": None},
        **extra,
    }
    return json.dumps(event).encode()


def signed(body: bytes, *secrets: str, timestamp: int | None = None) -> WebhookRequest:
    """A delivery with one ``v1`` per secret (Stripe sends two while a secret is being rolled)."""
    ts = int(time.time()) if timestamp is None else timestamp
    parts = [stripe.WebhookSignature.generate_signature_header(body.decode(), s, timestamp=ts) for s in secrets]
    header = ",".join([f"t={ts}", *(p.split(",", 1)[1] for p in parts)])
    return WebhookRequest("POST", URL, {"stripe-signature": header, "Content-Type": "application/json"}, body)


# -- verdicts ----------------------------------------------------------------------------------------------------


def test_valid_signature_is_accepted(connector: StripeConnector) -> None:
    connector.verify_webhook(signed(event_body(), WEBHOOK_SECRET))


def test_tampered_body_is_rejected(connector: StripeConnector) -> None:
    request = signed(event_body(), WEBHOOK_SECRET)
    tampered = WebhookRequest(request.method, request.url, request.headers, request.body.replace(b"cus_1", b"cus_2"))
    with pytest.raises(WebhookRejected, match="no signature matches"):
        connector.verify_webhook(tampered)


def test_wrong_secret_is_rejected(connector: StripeConnector) -> None:
    with pytest.raises(WebhookRejected, match="no signature matches"):
        connector.verify_webhook(signed(event_body(), "whsec_someone_else"))


def test_stale_and_future_timestamps_are_rejected(connect: Connect) -> None:
    connector = connect()
    now = int(time.time())
    connector.verify_webhook(signed(event_body(), WEBHOOK_SECRET, timestamp=now - 290))
    with pytest.raises(WebhookRejected, match="outside the 300 s tolerance"):
        connector.verify_webhook(signed(event_body(), WEBHOOK_SECRET, timestamp=now - 301))
    with pytest.raises(WebhookRejected, match="tolerance"):
        connector.verify_webhook(signed(event_body(), WEBHOOK_SECRET, timestamp=now + 400))
    lenient = connect(webhook_tolerance_s=900)
    lenient.verify_webhook(signed(event_body(), WEBHOOK_SECRET, timestamp=now - 600))


def test_a_rotated_secret_two_v1_signatures(connect: Connect) -> None:
    body = event_body()
    both = signed(body, OLD_SECRET, WEBHOOK_SECRET)  # Stripe signs with the old and the new secret
    header = both.header("Stripe-Signature")
    assert header is not None and header.count("v1=") == 2
    connect(webhook_secrets=(SecretStr(WEBHOOK_SECRET),)).verify_webhook(both)  # receiver already on the new one
    connect(webhook_secrets=(SecretStr(OLD_SECRET),)).verify_webhook(both)  # receiver still on the old one
    receiver = connect(webhook_secrets=(SecretStr(WEBHOOK_SECRET), SecretStr(OLD_SECRET)))  # holding both
    receiver.verify_webhook(signed(body, OLD_SECRET))
    receiver.verify_webhook(signed(body, WEBHOOK_SECRET))
    with pytest.raises(WebhookRejected):
        connect(webhook_secrets=(SecretStr("whsec_third"),)).verify_webhook(both)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Stripe-Signature header"),
        ({"Stripe-Signature": "v1=abc"}, "exactly one timestamp"),
        ({"Stripe-Signature": "t=soon,v1=abc"}, "not a number"),
        ({"Stripe-Signature": "t=1,t=2,v1=abc"}, "exactly one timestamp"),
        ({"Stripe-Signature": "t=\u0661\u0667\u0666\u0660,v1=abc"}, "not a number"),  # Arabic-Indic digits
        ({"Stripe-Signature": "t=\u00b2,v1=abc"}, "not a number"),
        ({"Stripe-Signature": "t=-5,v1=abc"}, "not a number"),
    ],
)
def test_malformed_signature_headers_are_rejected(
    connector: StripeConnector, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(WebhookRejected, match=reason):
        connector.verify_webhook(WebhookRequest("POST", URL, headers, event_body()))


def test_no_configured_secret_rejects_everything(connect: Connect) -> None:
    with pytest.raises(WebhookRejected, match="no signing secret"):
        connect(webhook_secrets=()).verify_webhook(signed(event_body(), WEBHOOK_SECRET))


def test_a_body_that_is_not_utf8_is_rejected(connector: StripeConnector) -> None:
    body = b"\xff\xfe not text"
    ts = int(time.time())
    header = f"t={ts},v1=" + "0" * 64
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(WebhookRequest("POST", URL, {"Stripe-Signature": header}, body))


def test_the_secret_never_appears_in_a_rejection(connector: StripeConnector) -> None:
    with pytest.raises(WebhookRejected) as caught:
        connector.verify_webhook(signed(event_body(), "whsec_other"))
    assert WEBHOOK_SECRET not in str(caught.value)


# -- parsing -----------------------------------------------------------------------------------------------------


def test_events_become_refreshes_deletes_or_nothing(connector: StripeConnector) -> None:
    def parse(body: bytes) -> list[tuple[str, EventKind]]:
        return [(e.id, e.kind) for e in connector.parse_webhook(signed(body, WEBHOOK_SECRET))]

    assert parse(event_body("customer.updated", "cus_a")) == [("cus_a", EventKind.UPSERT)]
    assert parse(event_body("customer.subscription.updated", "cus_b")) == [("cus_b", EventKind.UPSERT)]
    assert parse(event_body("customer.deleted", "cus_c")) == [("cus_c", EventKind.DELETE)]
    assert parse(event_body("invoice.paid")) == []
    own = {"request": {"id": "req_2", "idempotency_key": "crmsync-0123abc"}}
    assert parse(event_body("customer.updated", "cus_d", **own)) == []  # our own push, echoing
    (event,) = connector.parse_webhook(signed(event_body("customer.created", "cus_e"), WEBHOOK_SECRET))
    assert event.source == "stripe" and event.object == "customers" and event.event_id == "evt_1"
    assert event.occurred_at_ms is not None and event.occurred_at_ms % 1000 == 0


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"object": "list"}', b'{"object": "event", "id": "evt_1"}', b"[1, 2]"]
)
def test_malformed_bodies(connector: StripeConnector, body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        connector.parse_webhook(WebhookRequest("POST", URL, {}, body))


# -- the stand-in's own deliveries ------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on loopback that keeps each delivery exactly as received."""

    def __init__(self) -> None:
        self.deliveries: list[WebhookRequest] = []
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/webhooks/stripe")
        async def receive(request: Request) -> Response:
            delivery = WebhookRequest("POST", str(request.url), dict(request.headers), await request.body())
            with self.lock:
                self.deliveries.append(delivery)
            return Response(status_code=200)


@pytest.fixture
def receiver(standin: StripeStandIn) -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with ServerThread(endpoint.app) as server:
        url = f"{server.url}/webhooks/stripe"
        standin.admin.put("/_sandbox/webhooks", json={"url": url}).raise_for_status()
        yield endpoint, url


def test_deliveries_from_the_stand_in_verify_and_parse(
    standin: StripeStandIn, connector: StripeConnector, receiver: tuple[Receiver, str]
) -> None:
    endpoint, _ = receiver
    standin.seed(3)
    standin.edit(customer_id(0), name="Renamed")
    sub = standin.add_subscription(customer_id(1), "trialing")
    standin.set_subscription(sub, "active")
    standin.delete(customer_id(2))
    assert standin.admin.post("/_sandbox/webhooks/drain").json()["drained"]
    events = []
    for delivery in endpoint.deliveries:
        connector.verify_webhook(delivery)
        events.extend(connector.parse_webhook(delivery))
    assert [(e.id, e.kind) for e in events] == [
        (customer_id(0), EventKind.UPSERT),
        (customer_id(1), EventKind.UPSERT),
        (customer_id(1), EventKind.UPSERT),
        (customer_id(2), EventKind.UPSERT),  # its subscription, canceled by the delete
        (customer_id(2), EventKind.DELETE),
    ]
    assert len({e.event_id for e in events}) == 5


def test_a_rotated_stand_in_secret_verifies_with_both_configured(
    standin: StripeStandIn, connect: Connect, receiver: tuple[Receiver, str]
) -> None:
    endpoint, url = receiver
    standin.seed(1)
    standin.admin.put("/_sandbox/webhooks", json={"url": url, "secret": "whsec_new"}).raise_for_status()
    standin.edit(customer_id(0), name="After rotation")
    assert standin.admin.post("/_sandbox/webhooks/drain").json()["drained"]
    (delivery,) = endpoint.deliveries
    connect(webhook_secrets=(SecretStr("whsec_new"), SecretStr(WEBHOOK_SECRET))).verify_webhook(delivery)
    with pytest.raises(WebhookRejected):
        connect().verify_webhook(delivery)  # only the old secret
