"""Signed v3 webhooks from the HubSpot stand-in, received by a real loopback endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from hubspot import HubSpot
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    PublicMergeInput,
    SimplePublicObjectBatchInput,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from sandbox.common import serving
from sandbox.hubspot import HubSpotSandboxConfig, create_app
from sandbox.hubspot.seeding import company_id, deal_id
from workers.serving import ServerThread

SECRET = "test-app-secret"


@dataclass
class Receiver:
    """A webhook endpoint that keeps every delivery and fails the first ``fail_first`` of them."""

    fail_first: int = 0
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/hubspot")
        async def hook(request: Request) -> Response:
            self.calls += 1
            if self.calls <= self.fail_first:
                return Response(status_code=503)
            self.deliveries.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        return app

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.deliveries for event in json.loads(body)]


@dataclass
class Rig:
    receiver: Receiver
    hook_url: str
    standin: ServerThread
    hs: HubSpot
    admin: httpx.Client

    def drain(self) -> None:
        assert self.admin.post("/_sandbox/webhook/drain").json()["drained"] is True


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def rig(receiver: Receiver) -> Iterator[Rig]:
    with serving(receiver.app()) as hook_server:
        hook_url = f"{hook_server.url}/hooks/hubspot"
        config = HubSpotSandboxConfig(
            seed=10, webhook_url=hook_url, app_secret=SECRET, app_limit_per_10s=0, portal_id=4242, app_id=777
        )
        with serving(create_app(config)) as standin, httpx.Client(base_url=standin.url, trust_env=False) as admin:
            hs = HubSpot(access_token="pat-sandbox", host=standin.url, client_side_validation=True)
            yield Rig(receiver, hook_url, standin, hs, admin)


def expected_v3(url: str, body: bytes, timestamp: str) -> str:
    digest = hmac.new(SECRET.encode(), b"POST" + url.encode() + body + timestamp.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_seed_is_silent_and_creation_is_signed(rig: Rig) -> None:
    created = rig.hs.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(properties={"dealname": "Hooked"}))
    rig.drain()
    [(headers, body)] = rig.receiver.deliveries
    assert headers["content-type"] == "application/json"
    timestamp = headers["x-hubspot-request-timestamp"]
    assert abs(int(timestamp) - time.time() * 1000) < 300_000
    assert hmac.compare_digest(headers["x-hubspot-signature-v3"], expected_v3(rig.hook_url, body, timestamp))
    assert headers["x-hubspot-signature"] == hashlib.sha256(SECRET.encode() + body).hexdigest()
    [event] = json.loads(body)
    assert event["subscriptionType"] == "deal.creation"
    assert event["objectId"] == int(created.id)
    assert event["portalId"] == 4242 and event["appId"] == 777
    assert event["attemptNumber"] == 0 and isinstance(event["occurredAt"], int)
    assert {"eventId", "subscriptionId", "changeSource"} <= set(event)


def test_property_changes_archive_and_admin_edit(rig: Rig) -> None:
    target = str(deal_id(2))
    rig.hs.crm.deals.basic_api.update(target, SimplePublicObjectInput(properties={"amount": "99", "dealname": "X"}))
    rig.hs.crm.deals.basic_api.update(target, SimplePublicObjectInput(properties={"amount": "99"}))
    rig.admin.patch(f"/_sandbox/objects/companies/{company_id(2)}", json={"properties": {"city": "Oslo"}})
    rig.hs.crm.deals.basic_api.archive(target)
    rig.drain()
    events = rig.receiver.events()
    summary = [
        (e["subscriptionType"], e.get("propertyName"), e.get("propertyValue"), e["changeSource"]) for e in events
    ]
    assert summary == [
        ("deal.propertyChange", "amount", "99", "INTEGRATION"),
        ("deal.propertyChange", "dealname", "X", "INTEGRATION"),
        ("company.propertyChange", "city", "Oslo", "CRM_UI"),
        ("deal.deletion", None, None, "INTEGRATION"),
    ]
    assert [e["eventId"] for e in events] == sorted(e["eventId"] for e in events)
    assert len(rig.receiver.deliveries) == 3
    archived = rig.hs.crm.deals.basic_api.get_by_id(target, archived=True)
    assert events[-1]["occurredAt"] == round(archived.updated_at.timestamp() * 1000)


def test_merge_event_names_both_ids(rig: Rig) -> None:
    primary, merged = deal_id(7), deal_id(7, True)
    rig.hs.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=str(primary), object_id_to_merge=str(merged)))
    rig.drain()
    events = rig.receiver.events()
    merge = next(e for e in events if e["subscriptionType"] == "deal.merge")
    assert merge["primaryObjectId"] == primary and merge["mergedObjectIds"] == [merged]
    assert merge["objectId"] == primary
    assert any(e["subscriptionType"] == "deal.deletion" and e["objectId"] == merged for e in events)
    change = next(e for e in events if e.get("propertyName") == "hs_merged_object_ids")
    assert change["propertyValue"] == str(merged)


def test_a_batch_is_one_delivery_split_at_100_events(rig: Rig) -> None:
    inputs = [
        SimplePublicObjectBatchInput(id=str(deal_id(i)), properties={"amount": "1", "dealname": f"n{i}"})
        for i in range(10)
    ]
    rig.hs.crm.deals.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=inputs))
    rig.drain()
    assert [len(json.loads(body)) for _, body in rig.receiver.deliveries] == [20]
    rig.admin.post("/_sandbox/seed", json={"count": 150, "start": 100, "notify": True})
    rig.drain()
    sizes = [len(json.loads(body)) for _, body in rig.receiver.deliveries[1:]]
    assert sizes == [100, 100, 100, 21]  # 150 companies + 171 deals


def test_failed_deliveries_are_retried_and_re_signed(receiver: Receiver, rig: Rig) -> None:
    receiver.fail_first = 2
    rig.hs.crm.deals.basic_api.update(str(deal_id(1)), SimplePublicObjectInput(properties={"amount": "5"}))
    rig.drain()
    status = rig.admin.get("/_sandbox/webhook").json()
    assert status["delivered"] == 1 and status["attempts"] == 3 and status["failed"] == 0
    [(headers, body)] = receiver.deliveries
    timestamp = headers["x-hubspot-request-timestamp"]
    assert headers["x-hubspot-signature-v3"] == expected_v3(rig.hook_url, body, timestamp)


def test_webhook_target_can_be_changed_at_runtime(rig: Rig) -> None:
    rig.admin.put("/_sandbox/webhook", json={"url": None})
    rig.hs.crm.deals.basic_api.update(str(deal_id(1)), SimplePublicObjectInput(properties={"amount": "6"}))
    rig.admin.put("/_sandbox/webhook", json={"url": rig.hook_url})
    rig.hs.crm.deals.basic_api.update(str(deal_id(1)), SimplePublicObjectInput(properties={"amount": "7"}))
    rig.drain()
    assert [e["propertyValue"] for e in rig.receiver.events()] == ["7"]
