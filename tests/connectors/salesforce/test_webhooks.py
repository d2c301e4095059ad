"""Outbound Messages: the stand-in's real deliveries verified, parsed and acknowledged; forgeries rejected."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.salesforce import SalesforceConnector
from sandbox.salesforce.outbound import Notification, envelope, is_ack
from sandbox.salesforce.store import account_id
from sync.connector import EventKind, MalformedWebhook, WebhookRejected, WebhookRequest
from tests.connectors.salesforce.conftest import ORG_ID, WEBHOOK_TOKEN, Handler, Listener, StandIn, deliver


def save(standin: StandIn, ids: list[str]) -> None:
    """Save ``ids`` in one API request: one Outbound Message for all of them."""
    records = [
        {"attributes": {"type": "Account"}, "id": rid, "Website": f"https://{n}.example"} for n, rid in enumerate(ids)
    ]
    standin.sdk().restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records})


def handled_by(connector: SalesforceConnector, events: list[list[str]]) -> Handler:
    """A listener handler that verifies, parses and acknowledges as a webhook receiver would."""

    def handle(request: WebhookRequest) -> tuple[int, bytes]:
        try:
            connector.verify_webhook(request)
        except WebhookRejected:
            return 403, b""
        try:
            parsed = connector.parse_webhook(request)
        except MalformedWebhook:
            return 400, b""
        events.append([e.id for e in parsed])
        ack = connector.webhook_ack()
        assert ack is not None
        return 200, ack.body

    return handle


def test_delivery_is_verified_parsed_and_acknowledged(standin: StandIn, listener: Listener) -> None:
    ids = standin.seed(3)
    connector = standin.connector()
    events: list[list[str]] = []
    listener.handler = handled_by(connector, events)
    save(standin, ids)
    [delivery] = deliver(standin, listener)
    assert events == [ids]
    outbound = standin.admin("GET", "/outbound")
    assert (outbound["delivered"], outbound["attempts"], outbound["failed"]) == (1, 1, 0)
    parsed = connector.parse_webhook(delivery)
    assert {e.event_id[:3] for e in parsed} == {"04l"} and len({e.event_id for e in parsed}) == 3
    assert all(e.kind is EventKind.UPSERT and e.object == "Account" and e.occurred_at_ms for e in parsed)
    ack = connector.webhook_ack()
    assert ack is not None and is_ack(ack.body) and ack.media_type.startswith("text/xml")


def test_refresh_from_an_event_fetches_current_state(standin: StandIn, listener: Listener) -> None:
    ids = standin.seed(2)
    save(standin, ids)
    [delivery] = deliver(standin, listener)
    connector = standin.connector()
    events = connector.parse_webhook(delivery)
    records = connector.fetch("Account", [e.id for e in events])
    assert [r.id for r in records] == ids and records[0].fields["Website"] == "https://0.example"


@pytest.fixture
def delivery(standin: StandIn, listener: Listener) -> WebhookRequest:
    ids = standin.seed(2)
    save(standin, ids)
    [received] = deliver(standin, listener)
    return received


def rejected(connector: SalesforceConnector, request: WebhookRequest) -> str:
    with pytest.raises(WebhookRejected) as info:
        connector.verify_webhook(request)
    return str(info.value)


def test_right_org_and_token_accepted(standin: StandIn, delivery: WebhookRequest) -> None:
    standin.connector().verify_webhook(delivery)
    fifteen = standin.connector(organization_id=ORG_ID[:15])
    fifteen.verify_webhook(delivery)


def test_wrong_token_rejected(standin: StandIn, delivery: WebhookRequest) -> None:
    connector = standin.connector()
    wrong = replace(delivery, path_params={"token": "x" * len(WEBHOOK_TOKEN)})
    assert "token" in rejected(connector, wrong)
    by_url = replace(delivery, url=delivery.url.replace(WEBHOOK_TOKEN, "guess"), path_params={})
    assert "token" in rejected(connector, by_url)
    connector.verify_webhook(replace(delivery, path_params={}))  # the token read from the URL path


def test_wrong_org_rejected(standin: StandIn, delivery: WebhookRequest) -> None:
    assert "organization" in rejected(standin.connector(organization_id="00D000000000002AAA"), delivery)
    forged = envelope(
        "00D000000000009AAA",
        "session",
        "https://x/e",
        "https://x/p",
        [Notification("04lSd0000000001AAA", "Account", (("Id", account_id(0)),))],
    )
    request = replace(delivery, body=forged, headers={**delivery.headers, "content-length": str(len(forged))})
    assert "organization" in rejected(standin.connector(), request)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<notifications>", "well-formed"),
        (b"not xml at all", "well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "DTD"),
        (b'<Envelope xmlns="urn:other"><Body/></Envelope>', "SOAP"),
        (
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            b"</soapenv:Body></soapenv:Envelope>",
            "notifications",
        ),
    ],
)
def test_malformed_xml_rejected(standin: StandIn, delivery: WebhookRequest, body: bytes, reason: str) -> None:
    connector = standin.connector()
    request = replace(delivery, body=body, headers={**delivery.headers, "content-length": str(len(body))})
    assert reason in rejected(connector, request)
    with pytest.raises(MalformedWebhook):
        connector.parse_webhook(request)


def test_altered_or_truncated_bodies_and_other_methods_rejected(standin: StandIn, delivery: WebhookRequest) -> None:
    connector = standin.connector()
    assert "Content-Length" in rejected(connector, replace(delivery, body=delivery.body[:-10]))
    assert "POST" in rejected(connector, replace(delivery, method="GET"))
    json_body = replace(delivery, headers={**delivery.headers, "content-type": "application/json"})
    assert "text/xml" in rejected(connector, json_body)
    huge = b" " * (connector.config.webhook_max_body_bytes + 1)
    assert "larger" in rejected(connector, replace(delivery, body=huge, headers={}))


def test_unconfigured_endpoint_rejects_everything(standin: StandIn, delivery: WebhookRequest) -> None:
    connector = standin.connector(organization_id=None, webhook_token=None)
    assert "not configured" in rejected(connector, delivery)


def test_other_sobjects_are_ignored_and_ids_canonical(standin: StandIn) -> None:
    body = envelope(
        ORG_ID,
        "session",
        "https://x/e",
        "https://x/p",
        [
            Notification("04lSd0000000001AAA", "Contact", (("Id", "003Sd0000000001AAA"),)),
            Notification("04lSd0000000002AAA", "Account", (("Id", account_id(7)[:15]),)),
        ],
    )
    request = WebhookRequest("POST", f"https://crmsync.example/webhooks/salesforce/{WEBHOOK_TOKEN}", {}, body)
    connector = standin.connector()
    connector.verify_webhook(request)
    [event] = connector.parse_webhook(request)
    assert (event.id, event.event_id, event.occurred_at_ms) == (account_id(7), "04lSd0000000002AAA", None)
