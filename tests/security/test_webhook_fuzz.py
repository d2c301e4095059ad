"""Fuzzing the webhook receiver (hypothesis): whatever arrives on any route, the answer is never a 500.

Bodies are arbitrary bytes, JSON-ish values (any Unicode, deep nesting), mutations of valid deliveries, and
HubSpot events whose numbers are Unicode digits; headers may carry a valid signature of another body, and
header values are any Unicode text sent as UTF-8 bytes. Every answer must be one the receiver documents
(200, 400, 401, 404, 413).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import Receiver
from tests.security.test_receiver_hardening import wire_headers
from tests.security.webhook_kit import (
    SALESFORCE_PATH,
    hubspot_body,
    hubspot_headers,
    salesforce_body,
    stripe_body,
    stripe_headers,
)

ALLOWED = {200, 400, 401, 404, 413}
ROUTES = ("/webhooks/hubspot", "/webhooks/stripe", SALESFORCE_PATH, "/webhooks/salesforce/x", "/webhooks/nope")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.dictionaries(st.sampled_from(["eventId", "objectId", "subscriptionType", "occurredAt", "id"]), json_values),
        max_size=3,
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(0, 10**6).map(lambda n: salesforce_body(f"04l{n:015d}")[: n % 900 + 50]),
)
unicode_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
digits_anywhere = st.text(st.characters(whitelist_categories=("Nd", "No")), min_size=1, max_size=12)
deep_json = st.integers(1, 20_000).map(lambda n: ("[" * n + "]" * n).encode())
signed_bodies = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {
                "eventId": st.one_of(st.integers(), digits_anywhere, unicode_text),
                "subscriptionType": st.sampled_from(["deal.creation", "deal.deletion", "deal.merge", "deal.x"]),
                "objectId": st.one_of(st.integers(), digits_anywhere),
                "occurredAt": st.one_of(st.integers(), digits_anywhere, unicode_text),
                "mergedObjectIds": st.lists(st.one_of(st.integers(), digits_anywhere, json_values), max_size=3),
            }
        ),
        max_size=3,
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    deep_json,
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies, sign_as=st.sampled_from(["none", "hubspot", "stripe"]))
def test_no_body_on_any_route_gives_a_500(receiver: Receiver, route: str, body: bytes, sign_as: str) -> None:
    headers = {"none": dict[str, str](), "hubspot": hubspot_headers(body), "stripe": stripe_headers(body)}[sign_as]
    response = receiver.client.post(route, content=body, headers=headers)
    assert response.status_code in ALLOWED, (route, body[:200], response.status_code, response.text[:300])


@FUZZ
@given(
    header=st.sampled_from(["Stripe-Signature", "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"]),
    value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    which=st.sampled_from(["hubspot", "stripe"]),
)
def test_garbled_signature_headers_give_no_500(receiver: Receiver, header: str, value: str, which: str) -> None:
    body = hubspot_body(3003) if which == "hubspot" else stripe_body("evt_fuzz")
    headers = hubspot_headers(body) if which == "hubspot" else stripe_headers(body)
    headers[header] = value
    response = receiver.client.post(f"/webhooks/{which}", content=body, headers=headers)
    assert response.status_code in ALLOWED, (header, value, response.status_code, response.text[:300])


@FUZZ
@given(
    route=st.sampled_from(("/webhooks/hubspot", "/webhooks/stripe", SALESFORCE_PATH)),
    body=signed_bodies,
    sign_as=st.sampled_from(["hubspot", "stripe"]),
)
def test_signed_unicode_and_deep_bodies_give_no_500(receiver: Receiver, route: str, body: bytes, sign_as: str) -> None:
    headers = hubspot_headers(body) if sign_as == "hubspot" else stripe_headers(body)
    response = receiver.client.post(route, content=body, headers=headers)
    assert response.status_code in ALLOWED, (route, body[:200], response.status_code, response.text[:300])


@FUZZ
@given(
    header=st.sampled_from(
        ["Stripe-Signature", "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", "Content-Type", "Content-Length"]
    ),
    value=st.one_of(unicode_text, digits_anywhere),
    route=st.sampled_from(("/webhooks/hubspot", "/webhooks/stripe", SALESFORCE_PATH)),
)
def test_unicode_header_values_give_no_500(receiver: Receiver, header: str, value: str, route: str) -> None:
    body = hubspot_body(3004) if route.endswith("hubspot") else stripe_body("evt_fuzz2")
    signed = hubspot_headers(body) if route.endswith("hubspot") else stripe_headers(body)
    headers = wire_headers({**signed, header: value.strip()})
    response = receiver.client.post(route, content=body, headers=headers)
    assert response.status_code in ALLOWED, (header, value, route, response.status_code, response.text[:300])
