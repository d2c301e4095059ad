"""What a stranger (or a signed but hostile body) can do to the receiver: issue 13, points 1 to 6.

Each test sends real deliveries to ``create_webhook_app`` on a stack's config (real connectors, real Redis under a
ledger prefix of its own) and asserts what reached Redis and the queue, not only the status.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from connectors.salesforce.webhooks import message_of
from sandbox.common import serving
from sandbox.stack import POSTHOG_KEY, SandboxStack
from sync.connector import WebhookRequest
from sync.errors import ConfigError
from tests.security.conftest import Receiver
from tests.security.webhook_kit import (
    SALESFORCE_PATH,
    hubspot_headers,
    salesforce_body,
    stripe_body,
    stripe_headers,
)
from workers.config import WebhookBlock, parse_config
from workers.runtime import Runtime, set_runtime
from workers.tasks import pending_key, refresh
from workers.webhooks import UNKNOWN_SOURCE, check_public_url, create_webhook_app


def wire_headers(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as bytes on the wire: Latin-1 where it can (what HTTP servers decode them as, so ``²`` arrives as
    ``²``), else UTF-8."""
    out = {}
    for key, value in headers.items():
        try:
            out[key] = value.encode("latin-1")
        except UnicodeEncodeError:
            out[key] = value.encode()
    return out


def _metric_fields(receiver: Receiver) -> dict[str, str]:
    return dict(receiver.runtime.redis.hgetall(f"{receiver.runtime.ledger.ns}:metrics"))


def _hubspot_post(receiver: Receiver, events: list[dict[str, Any]]) -> Any:
    body = json.dumps(events).encode()
    return receiver.client.post("/webhooks/hubspot", content=body, headers=hubspot_headers(body))


def _deal_event(event_id: int, kind: str, object_id: int | str, occurred: Any = None, **extra: Any) -> dict[str, Any]:
    event = {
        "eventId": event_id,
        "subscriptionId": 1,
        "portalId": 1,
        "appId": 1,
        "occurredAt": int(time.time() * 1000) if occurred is None else occurred,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
    }
    return {**event, **extra}


# -- 1. unknown sources ----------------------------------------------------------------------------------------


def test_unknown_sources_are_counted_under_one_label_and_never_become_keys(receiver: Receiver) -> None:
    before_keys = set(receiver.runtime.redis.scan_iter(f"{receiver.runtime.ledger.ns}:*", count=1000))
    names = ["hubspot%7Caccepted", "hubspot|accepted", "x" * 5000, "stripe%7Cx%7Cy", "disabled", "ünïcødé"]
    for name in names:
        assert receiver.client.post(f"/webhooks/{name}", content=b"[]").status_code == 404
    fields = _metric_fields(receiver)
    assert fields == {f"webhooks|{UNKNOWN_SOURCE}|unknown_source": str(len(names))}
    after_keys = set(receiver.runtime.redis.scan_iter(f"{receiver.runtime.ledger.ns}:*", count=1000))
    assert after_keys - before_keys <= {f"{receiver.runtime.ledger.ns}:metrics"}
    metrics = receiver.client.get("/metrics").text
    assert 'source="hubspot"' not in metrics and "xxxx" not in metrics
    assert f'crmsync_webhooks_total{{outcome="unknown_source",source="{UNKNOWN_SOURCE}"}} {len(names)}.0' in metrics


# -- 2. XML --------------------------------------------------------------------------------------------------

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)


def _with_dtd(position: str, encoding: str) -> bytes:
    good = salesforce_body("04l000000000000XAA").decode()
    head, rest = good.split("?>", 1)
    envelope = rest.replace(
        "<sf:Id>001Sd0000000001IAA</sf:Id>", "<sf:Id>001Sd0000000001IAA</sf:Id><sf:Name>&lol3;</sf:Name>"
    )
    if position == "late":  # past the first 4 KB the old guard looked at
        text = head + "?>" + "<!--" + "p" * 6000 + "-->" + LAUGHS.split("?>", 1)[1] + envelope
    else:
        text = LAUGHS + envelope
    if encoding == "utf-16":
        return text.replace('encoding="UTF-8"', "").encode("utf-16")
    return text.encode()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("position", ["first", "late"])
def test_any_dtd_is_refused_whatever_its_encoding_or_place(receiver: Receiver, position: str, encoding: str) -> None:
    body = _with_dtd(position, encoding)
    response = receiver.client.post(SALESFORCE_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 401
    assert receiver.enqueued == []
    assert not receiver.runtime.redis.exists(pending_key(receiver.runtime, "salesforce", "Account"))


def test_an_outbound_message_is_parsed_once_per_delivery(receiver: Receiver) -> None:
    connector = receiver.runtime.connector("salesforce")
    body = salesforce_body("04l000000000000YAA")
    token = SALESFORCE_PATH.rsplit("/", 1)[1]
    delivery = WebhookRequest(
        "POST", "http://testserver" + SALESFORCE_PATH, {"Content-Type": "text/xml"}, body, {"token": token}
    )
    connector.verify_webhook(delivery)
    parsed = delivery.memo["salesforce.outbound_message"]
    assert message_of(delivery) is parsed  # the parse made by verification is the one parse_webhook uses
    [event] = connector.parse_webhook(delivery)
    assert event.event_id == parsed.notifications[0].id


# -- 3. no 500s ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", ["²", "¹²³", "١٧٦٠٠٠٠٠٠٠٠٠٠", "1e12", " ", "-1", "9" * 40])
def test_non_ascii_or_odd_hubspot_timestamps_are_a_401(receiver: Receiver, timestamp: str) -> None:
    """Sent over a real socket: HTTP servers decode header bytes as Latin-1, so byte 0xB2 arrives as ``²``, a
    character ``str.isdigit`` accepts and ``int`` refuses."""
    body = json.dumps([_deal_event(1, "deal.propertyChange", 5)]).encode()
    headers = {**hubspot_headers(body), "X-HubSpot-Request-Timestamp": timestamp}
    app = create_webhook_app(receiver.runtime, enqueue=lambda s, o, c: receiver.enqueued.append((s, o, c)))
    with serving(app) as server:
        url = urlsplit(server.url)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        try:
            connection.putrequest("POST", "/webhooks/hubspot")
            for name, value in wire_headers({**headers, "Content-Length": str(len(body))}).items():
                connection.putheader(name, value)
            connection.endheaders(body)
            status = connection.getresponse().status
        finally:
            connection.close()
    assert status == 401
    assert receiver.enqueued == []


def test_deeply_nested_signed_json_is_a_400(receiver: Receiver) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert receiver.client.post("/webhooks/hubspot", content=deep, headers=hubspot_headers(deep)).status_code == 400
    assert receiver.client.post("/webhooks/stripe", content=deep, headers=stripe_headers(deep)).status_code == 400
    assert receiver.enqueued == []


def test_a_unicode_digit_occurred_at_is_ignored_not_a_crash(receiver: Receiver) -> None:
    response = _hubspot_post(receiver, [_deal_event(2, "deal.propertyChange", 9_000_000_002, occurred="²")])
    assert response.status_code == 200 and response.json() == {"received": 1, "new": 1}


# -- 4. ids ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "merged", [[{"x": 1}], ["../../x"], ["\uff11\uff12\uff13"], [True], ["12 OR 1=1"], ["1" * 30]], ids=str
)
def test_hubspot_ids_that_are_not_numeric_never_reach_the_queue(receiver: Receiver, merged: list[Any]) -> None:
    event = _deal_event(3, "deal.merge", 9_000_000_002, primaryObjectId=9_000_000_002, mergedObjectIds=merged)
    assert _hubspot_post(receiver, [event]).status_code == 400
    assert receiver.enqueued == []
    assert not receiver.runtime.redis.exists(pending_key(receiver.runtime, "hubspot", "deals"))


@pytest.mark.parametrize("customer", ["cus_../../x", "cus_", "cus_a b", "acct_123", "cus_é"])
def test_stripe_customer_ids_are_checked(receiver: Receiver, customer: str) -> None:
    body = stripe_body("evt_ids", customer=customer)
    assert receiver.client.post("/webhooks/stripe", content=body, headers=stripe_headers(body)).status_code == 400
    assert receiver.enqueued == []


@pytest.mark.parametrize("record_id", ["001Sd00000000", "001Sd0000000001IAA/../x", "001Sd0000000001IA", "ü" * 15])
def test_salesforce_record_ids_are_checked(receiver: Receiver, record_id: str) -> None:
    body = salesforce_body("04l000000000000ZAA", account_id=record_id)
    response = receiver.client.post(SALESFORCE_PATH, content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 400
    assert receiver.enqueued == []


# -- 5. HubSpot duplicates -------------------------------------------------------------------------------------


def test_a_hubspot_event_sharing_an_event_id_is_not_dropped(receiver: Receiver) -> None:
    """HubSpot documents eventId as not unique: a deletion with the eventId of an earlier change is a new event."""
    deal = 9_000_000_004
    change = _deal_event(77, "deal.propertyChange", deal, occurred=1_760_000_000_000)
    deletion = _deal_event(77, "deal.deletion", deal, occurred=1_760_000_005_000)
    assert _hubspot_post(receiver, [change]).json() == {"received": 1, "new": 1}
    assert _hubspot_post(receiver, [deletion]).json() == {"received": 1, "new": 1}
    assert _hubspot_post(receiver, [change, deletion]).json() == {"received": 2, "new": 0}  # true redeliveries


# -- 6. the signed URL ------------------------------------------------------------------------------------------


def test_the_public_url_is_required_off_loopback() -> None:
    with pytest.raises(ConfigError) as info:
        check_public_url(WebhookBlock(), "0.0.0.0")
    assert info.value.key == "webhooks.public_url"
    with pytest.raises(ConfigError):
        check_public_url(WebhookBlock(), "10.1.2.3")
    assert "loopback only" in check_public_url(WebhookBlock(), "127.0.0.1")
    assert "loopback only" in check_public_url(WebhookBlock(), "::1")
    configured = WebhookBlock(public_url="https://hooks.example.com/crm")
    assert "https://hooks.example.com/crm" in check_public_url(configured, "0.0.0.0")


def test_with_redis_down_deliveries_get_503_and_refusals_stay_4xx(
    stack: SandboxStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRM retries a 503; an unknown source is still a 404 (its count is lost, not turned into a 500)."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    runtime = Runtime(parse_config({**stack.config(), "redis_url": dead}))
    try:
        app = create_webhook_app(runtime, enqueue=lambda s, o, c: None)
        with TestClient(app, raise_server_exceptions=False) as client:
            body = json.dumps([_deal_event(5, "deal.propertyChange", 9_000_000_002)]).encode()
            assert client.post("/webhooks/hubspot", content=body, headers=hubspot_headers(body)).status_code == 503
            assert client.post("/webhooks/nope", content=b"[]").status_code == 404
            assert client.get("/readyz").status_code == 503
    finally:
        runtime.close()


# -- issue 14.1: HubSpot's generic webhook format, end to end ---------------------------------------------------


def test_a_generic_company_event_refreshes_the_company_deals_end_to_end(
    stack: SandboxStack, receiver: Receiver
) -> None:
    """The stand-in sends ``object.propertyChange`` (``objectTypeId`` 0-2) for a renamed company; the real receiver
    verifies it and queues ``company:<id>``; the refresh task reads that company's deals (identity 7 has two)."""
    company, deals = "4000000007", {"9000000014", "9000000015"}  # sandbox/hubspot/seeding.py: identity 7
    app = create_webhook_app(receiver.runtime, enqueue=lambda s, o, c: receiver.enqueued.append((s, o, c)))
    with serving(app, port=stack.webhook_port), httpx.Client(base_url=stack.url("hubspot"), timeout=30) as admin:
        admin.put("/_sandbox/webhook", json={"url": f"{stack.webhooks_url}/webhooks/hubspot", "format": "generic"})
        try:
            admin.patch(f"/_sandbox/objects/companies/{company}", json={"properties": {"name": "Renamed Co"}})
            admin.post("/_sandbox/webhook/drain").raise_for_status()
            assert admin.get("/_sandbox/webhook").json()["delivered"] >= 1
        finally:
            admin.put("/_sandbox/webhook", json={"url": None, "format": "legacy"})
    pending = pending_key(receiver.runtime, "hubspot", "deals")
    assert receiver.runtime.redis.smembers(pending) == {f"company:{company}"}
    assert receiver.enqueued == [("hubspot", "deals", receiver.runtime.config.webhooks.coalesce_s)]
    set_runtime(receiver.runtime)
    try:
        [run] = refresh.run("hubspot", "deals")["runs"]
    finally:
        set_runtime(None)
    assert run["status"] == "succeeded" and run["counts"]["seen"] == len(deals)
    assert not receiver.runtime.redis.exists(pending)
