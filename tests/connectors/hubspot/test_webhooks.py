"""Webhooks: v3 signatures checked on what the stand-in really delivers, and event arrays parsed into refreshes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import redis

from connectors.hubspot import HubSpotConnector
from connectors.hubspot.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_v3, verify_v3
from sandbox.hubspot.webhooks import signature_v3 as sign_v3_raw
from sync.connector import EventKind, MalformedWebhook, WebhookRejected, WebhookRequest
from tests.connectors.hubspot.conftest import APP_SECRET, HubSpotSandbox, WebhookReceiver, drain_webhooks, make_config


def delivered(hubspot: HubSpotSandbox, receiver: WebhookReceiver) -> list[WebhookRequest]:
    drain_webhooks(hubspot)
    return list(receiver.deliveries)


def with_headers(request: WebhookRequest, **changes: str) -> WebhookRequest:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in {c.lower() for c in changes}}
    return replace(request, headers={**headers, **changes})


@pytest.fixture
def delivery(hubspot: HubSpotSandbox, webhook_receiver: WebhookReceiver) -> WebhookRequest:
    ids = hubspot.seed(2)
    webhook_receiver.deliveries.clear()
    hubspot.update_deals({rid: {"description": "changed"} for rid in ids})
    [one] = delivered(hubspot, webhook_receiver)
    return one


def build(
    connector_secret: str, hubspot: HubSpotSandbox, r: redis.Redis, ns: str, **overrides: object
) -> HubSpotConnector:
    return HubSpotConnector(make_config(hubspot.url, ns, client_secret=connector_secret, **overrides), r)


@pytest.mark.parametrize(
    ("case", "accepted"),
    [
        ("valid", True),
        ("tampered body", False),
        ("wrong secret", False),
        ("stale timestamp", False),
        ("wrong URI", False),
    ],
)
def test_only_an_authentic_fresh_delivery_is_accepted(
    case: str,
    accepted: bool,
    delivery: WebhookRequest,
    hubspot: HubSpotSandbox,
    redis_client: redis.Redis,
    budget_namespace: str,
) -> None:
    connector = build(APP_SECRET, hubspot, redis_client, budget_namespace)
    request = delivery
    if case == "tampered body":
        request = replace(delivery, body=delivery.body.replace(b"changed", b"chanGed"))
    elif case == "wrong secret":
        connector = build("another-secret", hubspot, redis_client, budget_namespace)
    elif case == "stale timestamp":
        sent = int(delivery.header(TIMESTAMP_HEADER) or 0)
        connector.clock = lambda: sent + 5 * 60 * 1000 + 1
    elif case == "wrong URI":
        request = replace(delivery, url=delivery.url.replace("/webhooks/hubspot", "/webhooks/other"))

    if accepted:
        connector.verify_webhook(request)
    else:
        with pytest.raises(WebhookRejected):
            connector.verify_webhook(request)


def test_missing_headers_a_future_timestamp_and_no_secret_are_rejected(
    delivery: WebhookRequest, hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str
) -> None:
    connector = build(APP_SECRET, hubspot, redis_client, budget_namespace)
    for header in (SIGNATURE_HEADER, TIMESTAMP_HEADER):
        stripped = replace(delivery, headers={k: v for k, v in delivery.headers.items() if k.lower() != header.lower()})
        with pytest.raises(WebhookRejected):
            connector.verify_webhook(stripped)
    future = str(connector.clock() + 10 * 60 * 1000)
    resigned = with_headers(
        delivery,
        **{
            TIMESTAMP_HEADER: future,
            SIGNATURE_HEADER: sign_v3(APP_SECRET, "POST", delivery.url, delivery.body, future),
        },
    )
    with pytest.raises(WebhookRejected, match="window"):
        connector.verify_webhook(resigned)
    unconfigured = HubSpotConnector(make_config(hubspot.url, budget_namespace, client_secret=None), redis_client)
    with pytest.raises(WebhookRejected, match="client_secret"):
        unconfigured.verify_webhook(delivery)


def test_public_url_behind_a_proxy(hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str) -> None:
    public = "https://hooks.example.com/crmsync/hubspot?portal=62515"
    body = b'[{"eventId": 1, "subscriptionType": "deal.creation", "objectId": 5}]'
    now = 1_760_000_000_000
    headers = {SIGNATURE_HEADER: sign_v3(APP_SECRET, "POST", public, body, str(now)), TIMESTAMP_HEADER: str(now)}
    seen_by_worker = WebhookRequest("POST", "http://worker:8000/webhooks/hubspot?portal=62515", headers, body)
    connector = build(APP_SECRET, hubspot, redis_client, budget_namespace, webhook_url=public)
    connector.clock = lambda: now
    connector.verify_webhook(seen_by_worker)


@pytest.mark.parametrize(
    ("as_sent", "as_signed"),
    [
        # HubSpot's table: these twelve escapes are decoded (either case) before signing ...
        ("https://h.example/a%3Ab%2Fc%3Fd%40e%21f%24g", "https://h.example/a:b/c?d@e!f$g"),
        ("https://h.example/p%27%28%29%2a%2c%3b", "https://h.example/p'()*,;"),
        # ... and no other: a space, a percent sign or a non-ASCII character stay escaped.
        ("https://h.example/crm%20sync?q=a%26b%3Dc", "https://h.example/crm%20sync?q=a%26b%3Dc"),
        ("https://h.example/%25/%C3%A9", "https://h.example/%25/%C3%A9"),
    ],
)
def test_only_the_documented_escapes_are_decoded_before_signing(as_sent: str, as_signed: str) -> None:
    body, timestamp = b"[]", "1760000000000"
    signed_by_hubspot = sign_v3_raw(APP_SECRET, "POST", as_signed, body, timestamp)
    assert sign_v3(APP_SECRET, "POST", as_sent, body, timestamp) == signed_by_hubspot
    request = WebhookRequest("POST", as_sent, {SIGNATURE_HEADER: signed_by_hubspot, TIMESTAMP_HEADER: timestamp}, body)
    verify_v3(request, APP_SECRET, int(timestamp))


@pytest.mark.parametrize("webhook_format", ["legacy", "generic"])
def test_real_deliveries_become_refresh_events(
    hubspot: HubSpotSandbox, webhook_receiver: WebhookReceiver, connector: HubSpotConnector, webhook_format: str
) -> None:
    """Both formats HubSpot sends (legacy ``deal.*``; generic ``object.*`` + ``objectTypeId``) give the same refreshes,
    and a company's change refreshes that company's deals."""
    hubspot.admin.put("/_sandbox/webhook", json={"url": webhook_receiver.url, "format": webhook_format})
    ids = sorted(hubspot.seed(8), key=int)  # 10 deals
    webhook_receiver.deliveries.clear()
    hubspot.edit("deals", ids[0], dealstage="closedwon")
    hubspot.archive("deals", ids[1])
    hubspot.merge("deals", ids[2], ids[3])
    hubspot.edit("companies", "4000000005", name="Renamed")
    events = []
    for request in delivered(hubspot, webhook_receiver):
        kinds = {event["subscriptionType"].split(".")[0] for event in json.loads(request.body)}
        assert (kinds == {"object"}) if webhook_format == "generic" else ("object" not in kinds)
        connector.verify_webhook(request)
        events.extend(connector.parse_webhook(request))

    by_kind = {(e.kind, e.id) for e in events}
    assert (EventKind.UPSERT, ids[0]) in by_kind
    assert (EventKind.DELETE, ids[1]) in by_kind
    assert (EventKind.MERGE, ids[2]) in by_kind and (EventKind.DELETE, ids[3]) in by_kind
    assert {e.id for e in events} == {*ids[:4], "company:4000000005"}
    assert all(e.source == "hubspot" and e.object == "deals" and e.event_id for e in events)
    assert len({e.event_id for e in events}) == len(events)  # one dedupe key per refresh

    refreshed = connector.fetch("deals", ["company:4000000005"])  # what the coalesced refresh then reads
    assert refreshed and all(r.fields["company"]["id"] == "4000000005" and not r.deleted for r in refreshed)
    assert all(r.fields["company"]["name"] == "Renamed" for r in refreshed)


def test_generic_association_changes_name_the_deal_by_object_type(connector: HubSpotConnector) -> None:
    def change(event_id: int, from_type: str, from_id: int, to_type: str, to_id: int) -> dict[str, object]:
        return {
            "eventId": event_id,
            "subscriptionType": "object.associationChange",
            "fromObjectTypeId": from_type,
            "fromObjectId": from_id,
            "toObjectTypeId": to_type,
            "toObjectId": to_id,
            "associationType": "unlabeled",
            "associationRemoved": False,
        }

    body = json.dumps(
        [
            change(1, "0-3", 7, "0-2", 40),  # deal → company
            change(2, "0-2", 40, "0-3", 8),  # company → deal
            change(3, "0-2", 40, "0-1", 9),  # company → contact: no deal
            {"eventId": 4, "subscriptionType": "object.creation", "objectTypeId": "0-1", "objectId": 9},
            {
                "eventId": 5,
                "subscriptionType": "company.associationChange",
                "fromObjectId": 40,
                "toObjectId": 11,
                "associationType": "COMPANY_TO_DEAL_UNLABELED",
            },
        ]
    ).encode()
    events = connector.parse_webhook(WebhookRequest("POST", "http://127.0.0.1/hook", {}, body))
    assert [(e.id, e.kind) for e in events] == [
        ("7", EventKind.UPSERT),
        ("8", EventKind.UPSERT),
        ("11", EventKind.UPSERT),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"eventId": 1}',
        b"[1, 2]",
        b'[{"subscriptionType": "deal.creation", "objectId": 5}]',
        b'[{"eventId": 1, "subscriptionType": "deal.creation", "objectId": "5 OR 1=1"}]',
        b'[{"eventId": 1, "subscriptionType": "deal.merge", "primaryObjectId": 5, "mergedObjectIds": 6}]',
    ],
)
def test_malformed_deliveries_raise_malformed_webhook(body: bytes, connector: HubSpotConnector) -> None:
    with pytest.raises(MalformedWebhook):
        connector.parse_webhook(WebhookRequest("POST", "http://127.0.0.1/hook", {}, body))


def test_association_changes_refresh_the_deal(connector: HubSpotConnector) -> None:
    body = json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionType": "deal.associationChange",
                "fromObjectId": 7,
                "toObjectId": 40,
                "associationType": "DEAL_TO_COMPANY",
            },
            {
                "eventId": 2,
                "subscriptionType": "deal.associationChange",
                "fromObjectId": 40,
                "toObjectId": 8,
                "associationType": "COMPANY_TO_DEAL",
            },
            {"eventId": 3, "subscriptionType": "contact.creation", "objectId": 9},
        ]
    ).encode()
    events = connector.parse_webhook(WebhookRequest("POST", "http://127.0.0.1/hook", {}, body))
    assert [(e.id, e.kind) for e in events] == [("7", EventKind.UPSERT), ("8", EventKind.UPSERT)]
