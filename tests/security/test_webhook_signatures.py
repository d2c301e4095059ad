"""Webhook endpoints: valid deliveries accepted; invalid, stale, replayed and cross-vendor signatures rejected.

Each case goes through ``create_webhook_app`` with the real connectors' verification (HubSpot v3 with its 5-minute
window, Stripe ``v1`` with a 300 s tolerance, Salesforce's path token and organisation id). A rejected delivery
enqueues nothing; a replayed one (same event id, even correctly signed again) schedules no second refresh.
"""

from __future__ import annotations

import uuid

from tests.security.conftest import Receiver
from tests.security.webhook_kit import (
    SALESFORCE_PATH,
    hubspot_body,
    hubspot_headers,
    salesforce_body,
    stripe_body,
    stripe_headers,
)


def test_valid_deliveries_are_accepted_once_and_replays_add_nothing(receiver: Receiver) -> None:
    http = receiver.client
    body = hubspot_body(1001)
    assert http.post("/webhooks/hubspot", content=body, headers=hubspot_headers(body)).json() == {
        "received": 1,
        "new": 1,
    }
    replay = http.post("/webhooks/hubspot", content=body, headers=hubspot_headers(body))  # re-signed, same event
    assert replay.status_code == 200 and replay.json() == {"received": 1, "new": 0}

    body = stripe_body(f"evt_{uuid.uuid4().hex[:12]}")
    headers = stripe_headers(body)
    assert http.post("/webhooks/stripe", content=body, headers=headers).json() == {"received": 1, "new": 1}
    assert http.post("/webhooks/stripe", content=body, headers=headers).json() == {"received": 1, "new": 0}

    body = salesforce_body("04l000000000001AAA")
    first = http.post(SALESFORCE_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert first.status_code == 200 and b"<Ack>true</Ack>" in first.content
    assert http.post(SALESFORCE_PATH, content=body, headers={"Content-Type": "text/xml"}).status_code == 200
    assert sorted(s for s, _, _ in receiver.enqueued) == ["hubspot", "salesforce", "stripe"]  # one refresh each


def test_invalid_stale_and_cross_vendor_signatures_are_rejected(receiver: Receiver) -> None:
    http = receiver.client
    hs = hubspot_body(2002)
    st = stripe_body("evt_cross_vendor_1")
    cases = {
        "hubspot wrong secret": ("/webhooks/hubspot", hs, hubspot_headers(hs, secret="not-the-app-secret")),
        "hubspot stale (6 min)": ("/webhooks/hubspot", hs, hubspot_headers(hs, age_s=360)),
        "hubspot tampered body": ("/webhooks/hubspot", hs.replace(b"2002", b"2003"), hubspot_headers(hs)),
        "hubspot no signature": ("/webhooks/hubspot", hs, {"Content-Type": "application/json"}),
        "stripe wrong secret": ("/webhooks/stripe", st, stripe_headers(st, secret="whsec_other_account")),
        "stripe stale (10 min)": ("/webhooks/stripe", st, stripe_headers(st, age_s=600)),
        "stripe tampered body": (
            "/webhooks/stripe",
            st.replace(b"customer.updated", b"customer.deleted"),
            stripe_headers(st),
        ),
        "stripe-signed body to hubspot": ("/webhooks/hubspot", st, stripe_headers(st)),
        "hubspot-signed body to stripe": ("/webhooks/stripe", hs, hubspot_headers(hs)),
        "stripe secret used as hubspot secret": ("/webhooks/hubspot", hs, hubspot_headers(hs, secret="whsec_sandbox")),
        "salesforce wrong token": ("/webhooks/salesforce/not-the-token", salesforce_body("04l0000000000X1AAA"), {}),
        "salesforce other org": (SALESFORCE_PATH, salesforce_body("04l0000000000X2AAA", org="00D000000000999AAA"), {}),
        "salesforce token as hubspot": ("/webhooks/hubspot", salesforce_body("04l0000000000X3AAA"), {}),
    }
    for label, (path, body, headers) in cases.items():
        response = http.post(path, content=body, headers=headers)
        assert response.status_code == 401, (label, response.status_code, response.text)
    assert receiver.enqueued == []
