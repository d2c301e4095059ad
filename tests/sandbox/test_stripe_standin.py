"""The Stripe stand-in, driven through the official ``stripe`` SDK over loopback (httpx for admin routes and
for wire details the SDK hides)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import stripe
from fastapi import FastAPI, Request
from fastapi.responses import Response
from stripe.params import CustomerCreateParams, CustomerListParamsCreated, SubscriptionListParams

from sandbox.common import serving
from sandbox.identities import company
from sandbox.stripe import StripeSandboxConfig, create_app
from sandbox.stripe.seed import DEFAULT_BASE_TIME, customer_id, status_for, subscription_id
from workers.processes import stop_process
from workers.serving import ServerThread

KEY = "sk_test_sandbox"


@dataclass
class Sandbox:
    server: ServerThread
    client: stripe.StripeClient
    http: httpx.Client
    app: FastAPI

    def seed(self, count: int, start: int = 0) -> dict[str, Any]:
        response = self.http.post("/_sandbox/seed", json={"count": count, "start": start})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def requests(self, method: str, route: str, status: int = 200) -> int:
        stats = self.http.get("/_sandbox/stats").json()
        return sum(
            row["count"]
            for row in stats["requests"]
            if (row["method"], row["route"], row["status"]) == (method, route, status)
        )

    def sdk(self, retries: int = 0, key: str = KEY) -> stripe.StripeClient:
        return stripe.StripeClient(key, base_addresses={"api": self.server.url}, max_network_retries=retries)


def _start(config: StripeSandboxConfig) -> Iterator[Sandbox]:
    app = create_app(config)
    with serving(app) as server, httpx.Client(base_url=server.url, trust_env=False) as http:
        client = stripe.StripeClient(KEY, base_addresses={"api": server.url}, max_network_retries=0)
        yield Sandbox(server, client, http, app)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    yield from _start(StripeSandboxConfig())


@pytest.fixture
def seeded(sandbox: Sandbox) -> Sandbox:
    sandbox.seed(30)
    return sandbox


def _ids(objects: Any) -> list[str]:
    return [obj.id for obj in objects]


def _newest_first(start: int, stop: int) -> list[str]:
    return [customer_id(i) for i in reversed(range(start, stop))]


# -- customer lists -------------------------------------------------------------------------------------------


def test_customer_list_is_newest_first_with_default_limit_10(seeded: Sandbox) -> None:
    page = seeded.client.v1.customers.list()
    assert page.to_dict()["object"] == "list"
    assert page.url == "/v1/customers"
    assert page.has_more is True
    assert _ids(page.data) == _newest_first(20, 30)
    first = page.data[0]
    assert first.object == "customer" and first.livemode is False
    assert first.created == DEFAULT_BASE_TIME + 29 * 60
    assert "subscriptions" not in first.to_dict()


def test_auto_paging_follows_starting_after_to_the_end(seeded: Sandbox) -> None:
    seen = _ids(seeded.client.v1.customers.list({"limit": 7}).auto_paging_iter())
    assert seen == _newest_first(0, 30)
    assert seeded.requests("GET", "/v1/customers") == 5


def test_starting_after_and_ending_before_are_inverse(seeded: Sandbox) -> None:
    customers = seeded.client.v1.customers
    first = customers.list({"limit": 5})
    second = customers.list({"limit": 5, "starting_after": first.data[-1].id})
    assert _ids(second.data) == _newest_first(20, 25)
    back = customers.list({"limit": 5, "ending_before": second.data[0].id})
    assert _ids(back.data) == _ids(first.data)
    assert back.has_more is False
    older = customers.list({"limit": 3, "ending_before": customer_id(10)})
    assert _ids(older.data) == [customer_id(13), customer_id(12), customer_id(11)]
    assert older.has_more is True
    backwards = list(customers.list({"limit": 4, "ending_before": customer_id(20)}).auto_paging_iter())
    assert _ids(backwards) == [customer_id(i) for i in range(21, 30)]


def test_limit_must_be_between_1_and_100(seeded: Sandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        seeded.client.v1.customers.list({"limit": 101})
    assert caught.value.param == "limit"
    assert caught.value.http_status == 400
    assert len(seeded.client.v1.customers.list({"limit": 100}).data) == 30
    with pytest.raises(stripe.InvalidRequestError):
        seeded.client.v1.customers.list({"limit": 0})


def test_cursor_must_name_an_existing_object(seeded: Sandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        seeded.client.v1.customers.list({"starting_after": "cus_nope"})
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert caught.value.param == "starting_after"
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        seeded.client.v1.customers.list({"starting_after": customer_id(3), "ending_before": customer_id(9)})


def test_email_filter_is_exact_and_case_sensitive(seeded: Sandbox) -> None:
    email = company(7).contact_email
    assert _ids(seeded.client.v1.customers.list({"email": email}).data) == [customer_id(7)]
    assert seeded.client.v1.customers.list({"email": email.upper()}).data == []


def test_created_filters(seeded: Sandbox) -> None:
    def created(bounds: CustomerListParamsCreated) -> list[str]:
        return _ids(seeded.client.v1.customers.list({"created": bounds, "limit": 100}).data)

    at = [DEFAULT_BASE_TIME + i * 60 for i in range(30)]
    assert created({"gte": at[25]}) == _newest_first(25, 30)
    assert created({"gt": at[25]}) == _newest_first(26, 30)
    assert created({"lt": at[3]}) == _newest_first(0, 3)
    assert created({"lte": at[3], "gt": at[1]}) == _newest_first(2, 4)
    exact = seeded.client.v1.customers.list({"created": at[5]})
    assert _ids(exact.data) == [customer_id(5)]


def test_subscriptions_only_appear_when_expanded(seeded: Sandbox) -> None:
    plain = seeded.client.v1.customers.list({"limit": 3})
    assert all("subscriptions" not in c.to_dict() for c in plain.data)
    expanded = seeded.client.v1.customers.list({"limit": 100, "expand": ["data.subscriptions"]})
    by_id = {c.id: c for c in expanded.data}
    active = by_id[customer_id(0)].to_dict()["subscriptions"]
    assert active["object"] == "list" and active["total_count"] == 1
    assert active["data"][0]["id"] == subscription_id(0)
    assert active["data"][0]["status"] == status_for(0)
    canceled_index = 5
    assert status_for(canceled_index) == "canceled"
    assert by_id[customer_id(canceled_index)].to_dict()["subscriptions"]["data"] == []
    one = seeded.client.v1.customers.retrieve(customer_id(1), {"expand": ["subscriptions"]})
    assert one.to_dict()["subscriptions"]["data"][0]["status"] == "trialing"
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        seeded.client.v1.customers.list({"expand": ["data.charges"]})


def test_raw_bracket_forms_are_accepted(seeded: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    response = seeded.http.get(
        "/v1/customers", params=[("limit", "2"), ("expand[]", "data.subscriptions")], headers=auth
    )
    assert response.status_code == 200
    assert all("subscriptions" in c for c in response.json()["data"])
    update = seeded.http.post(
        f"/v1/customers/{customer_id(2)}",
        content="metadata[tier]=gold&name=Renamed",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert update.json()["metadata"]["tier"] == "gold"
    assert update.json()["name"] == "Renamed"


# -- customer writes ------------------------------------------------------------------------------------------


def test_create_retrieve_update_and_metadata_merge(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    created = customers.create({"name": "Jane Co", "email": "jane@jane.example", "metadata": {"a": "1", "b": "2"}})
    assert created.id.startswith("cus_")
    assert customers.retrieve(created.id).email == "jane@jane.example"
    updated = customers.update(created.id, {"metadata": {"b": "", "c": "3"}, "email": ""})
    assert updated.to_dict()["metadata"] == {"a": "1", "c": "3"}
    assert updated.email is None
    cleared = customers.update(created.id, {"metadata": ""})
    assert cleared.to_dict()["metadata"] == {}
    assert customers.list().data[0].id == created.id


def test_write_validation_errors(sandbox: Sandbox) -> None:
    customers = sandbox.client.v1.customers
    with pytest.raises(stripe.InvalidRequestError) as caught:
        customers.create(cast(CustomerCreateParams, {"nickname": "x"}))
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "nickname"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        customers.create({"email": "not-an-email"})
    assert caught.value.code == "email_invalid"
    with pytest.raises(stripe.InvalidRequestError, match="must be a string under 40 characters") as long_key:
        customers.create({"metadata": {"k" * 41: "v"}})
    assert long_key.value.param == "metadata"
    with pytest.raises(stripe.InvalidRequestError, match="metadata"):
        customers.create({"metadata": {f"k{i}": "v" for i in range(51)}})


def test_deleted_customer_is_a_stub_not_a_404(seeded: Sandbox) -> None:
    customers = seeded.client.v1.customers
    deleted = customers.delete(customer_id(4))
    assert deleted.to_dict() == {"id": customer_id(4), "object": "customer", "deleted": True}
    again = customers.retrieve(customer_id(4))
    assert again.to_dict() == {"id": customer_id(4), "object": "customer", "deleted": True}
    assert customer_id(4) not in _ids(customers.list({"limit": 100}).auto_paging_iter())
    with pytest.raises(stripe.InvalidRequestError) as caught:
        customers.update(customer_id(4), {"name": "zombie"})
    assert caught.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as caught:
        customers.retrieve("cus_missing")
    assert caught.value.code == "resource_missing"
    assert "No such customer: 'cus_missing'" in str(caught.value)
    after = customers.list({"limit": 2, "starting_after": customer_id(4)})
    assert _ids(after.data) == [customer_id(3), customer_id(2)]


def test_delete_cancels_the_customers_subscriptions(seeded: Sandbox) -> None:
    seeded.client.v1.customers.delete(customer_id(0))
    subscription = seeded.client.v1.subscriptions.retrieve(subscription_id(0))
    assert subscription.status == "canceled"
    assert subscription.canceled_at is not None
    types = [e.type for e in seeded.client.v1.events.list().data]
    assert types == ["customer.deleted", "customer.subscription.deleted"]


# -- search ---------------------------------------------------------------------------------------------------


def _search(sandbox: Sandbox, query: str) -> list[str]:
    return _ids(sandbox.client.v1.customers.search({"query": query, "limit": 100}).data)


def test_search_query_forms(seeded: Sandbox) -> None:
    email = company(8).contact_email
    assert _search(seeded, f"email:'{email}'") == [customer_id(8)]
    assert _search(seeded, f'email:"{email.upper()}"') == [customer_id(8)]
    assert _search(seeded, "metadata['posthog_external_id']:'acct-00003'") == [customer_id(3)]
    assert _search(seeded, 'metadata["posthog_external_id"]:"acct-00003"') == [customer_id(3)]
    either = f"email:'{company(1).contact_email}' OR email:'{company(2).contact_email}'"
    assert _search(seeded, either) == [customer_id(2), customer_id(1)]
    assert _search(seeded, f"name~'{company(11).name[-5:]}'") == [customer_id(11)]
    unmatched = _search(seeded, "metadata['posthog_external_id']:null")
    assert unmatched == [customer_id(i) for i in (29, 24, 19, 14, 9, 4)]
    assert len(_search(seeded, "-metadata['posthog_external_id']:null")) == 24
    later = _search(seeded, f"created>{DEFAULT_BASE_TIME + 26 * 60} AND -email:'{company(28).contact_email}'")
    assert later == [customer_id(29), customer_id(27)]


def test_search_pages_with_next_page(seeded: Sandbox) -> None:
    first = seeded.client.v1.customers.search({"query": "name~'000'", "limit": 10, "expand": ["total_count"]})
    wire = first.to_dict()
    assert wire["object"] == "search_result"
    assert wire["url"] == "/v1/customers/search"
    assert first.has_more is True and isinstance(first.next_page, str)
    assert wire["total_count"] == 30
    everything = _ids(seeded.client.v1.customers.search({"query": "name~'000'", "limit": 10}).auto_paging_iter())
    assert everything == _newest_first(0, 30)


def test_search_rejects_bad_queries(seeded: Sandbox) -> None:
    for query in ("email:unquoted@x.com", "colour:'red'", "email:'a' AND name:'b' OR phone:'c'", "name~'ab'"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            seeded.client.v1.customers.search({"query": query})
        assert caught.value.param == "query"


# -- subscriptions --------------------------------------------------------------------------------------------


def test_subscription_list_hides_canceled_unless_asked(seeded: Sandbox) -> None:
    subscriptions = seeded.client.v1.subscriptions
    default = [s.status for s in subscriptions.list({"limit": 100}).data]
    assert len(default) == 25 and "canceled" not in default
    canceled = subscriptions.list({"status": "canceled", "limit": 100}).data
    assert _ids(canceled) == [subscription_id(i) for i in (29, 23, 17, 11, 5)]
    assert len(subscriptions.list({"status": "all", "limit": 100}).data) == 30
    trialing = subscriptions.list({"status": "trialing", "limit": 100}).data
    assert {s.status for s in trialing} == {"trialing"} and len(trialing) == 5
    assert trialing[0].trial_end is not None
    with pytest.raises(stripe.InvalidRequestError) as caught:
        subscriptions.list(cast(SubscriptionListParams, {"status": "sleeping"}))
    assert caught.value.param == "status"


def test_subscription_list_by_customer_and_paging(seeded: Sandbox) -> None:
    subscriptions = seeded.client.v1.subscriptions
    mine = subscriptions.list({"customer": customer_id(5)})
    assert mine.data == []
    mine_all = subscriptions.list({"customer": customer_id(5), "status": "all"})
    assert _ids(mine_all.data) == [subscription_id(5)]
    assert mine_all.data[0].customer == customer_id(5)
    expanded = subscriptions.list({"customer": customer_id(6), "expand": ["data.customer"]})
    assert expanded.data[0].to_dict()["customer"]["id"] == customer_id(6)
    paged = _ids(subscriptions.list({"status": "all", "limit": 4}).auto_paging_iter())
    assert paged == [subscription_id(i) for i in reversed(range(30))]
    with pytest.raises(stripe.InvalidRequestError):
        subscriptions.list({"customer": "cus_missing"})
    canceled = subscriptions.cancel(subscription_id(6))
    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert subscriptions.list({"customer": customer_id(6)}).data == []
    assert [e.type for e in seeded.client.v1.events.list().data] == ["customer.subscription.deleted"]


# -- events ---------------------------------------------------------------------------------------------------


def test_events_record_each_change_with_its_object(seeded: Sandbox) -> None:
    client = seeded.client
    assert client.v1.events.list().data == []  # seeded history is older than the retention
    created = client.v1.customers.create({"email": "e@e.example"}, {"idempotency_key": "create-e"})
    client.v1.customers.update(created.id, {"metadata": {"posthog_account_id": "acc_1"}})
    client.v1.customers.update(created.id, {"metadata": {"posthog_account_id": "acc_1"}})
    client.v1.customers.update(created.id, {"name": "E Corp"})
    seeded.http.post(f"/_sandbox/subscriptions/{subscription_id(0)}", json={"status": "past_due"})
    seeded.http.post(f"/_sandbox/subscriptions/{subscription_id(0)}", json={"status": "canceled"})
    seeded.http.post("/_sandbox/subscriptions", json={"customer": created.id})
    client.v1.customers.delete(created.id)

    events = [e.to_dict() for e in client.v1.events.list({"limit": 3}).auto_paging_iter()]
    assert [e["type"] for e in events] == [
        "customer.deleted",
        "customer.subscription.deleted",
        "customer.subscription.created",
        "customer.subscription.deleted",
        "customer.subscription.updated",
        "customer.updated",
        "customer.updated",
        "customer.created",
    ]
    assert all(e["id"].startswith("evt_") and e["object"] == "event" for e in events)
    assert [e["created"] for e in events] == sorted((e["created"] for e in events), reverse=True)
    assert events[6]["data"]["previous_attributes"] == {"metadata": {"posthog_account_id": None}}
    assert events[6]["data"]["object"]["metadata"] == {"posthog_account_id": "acc_1"}
    assert events[5]["data"]["previous_attributes"] == {"name": None}
    assert events[5]["data"]["object"]["name"] == "E Corp"
    assert events[4]["data"]["previous_attributes"] == {"status": "active"}
    assert events[7]["request"]["idempotency_key"] == "create-e"
    assert events[7]["request"]["id"].startswith("req_")
    assert events[4]["request"]["id"] is None  # an admin (dashboard) change
    assert events[0]["data"]["object"]["email"] == "e@e.example"


def test_event_type_filters(sandbox: Sandbox) -> None:
    customer = sandbox.client.v1.customers.create({"name": "T"})
    sandbox.client.v1.customers.update(customer.id, {"name": "T2"})
    sandbox.http.post("/_sandbox/subscriptions", json={"customer": customer.id})
    events = sandbox.client.v1.events

    def types(params: dict[str, Any]) -> list[str]:
        return [e.type for e in events.list(params).data]  # type: ignore[arg-type]

    assert types({"type": "customer.updated"}) == ["customer.updated"]
    assert types({"type": "customer.*"}) == ["customer.subscription.created", "customer.updated", "customer.created"]
    assert types({"type": "customer.subscription.*"}) == ["customer.subscription.created"]
    assert types({"types": ["customer.created", "customer.updated"]}) == ["customer.updated", "customer.created"]
    with pytest.raises(stripe.InvalidRequestError, match="type, types"):
        events.list({"type": "customer.created", "types": ["customer.updated"]})
    with pytest.raises(stripe.InvalidRequestError, match="does not implement") as caught:
        events.list({"delivery_success": False})
    assert caught.value.param == "delivery_success"
    newest = events.list({"limit": 1}).data[0]
    assert events.retrieve(newest.id).id == newest.id
    assert types({"created": {"gt": newest.created}}) == []
    assert len(types({"created": {"gte": newest.created - 5}})) == 3
    after = events.list({"starting_after": newest.id})
    assert [e.type for e in after.data] == ["customer.updated", "customer.created"]


def test_events_older_than_retention_are_not_served(sandbox: Sandbox) -> None:
    customer = sandbox.client.v1.customers.create({"name": "Old"})
    sandbox.client.v1.customers.update(customer.id, {"name": "New"})
    old, recent = reversed(sandbox.client.v1.events.list().data)
    aged = sandbox.http.post("/_sandbox/events/age", json={"days": 29, "ids": [old.id]}).json()
    assert aged == {"aged": 1, "expired": 0}
    assert sandbox.client.v1.events.retrieve(old.id).created <= old.created - 29 * 86400
    sandbox.http.post("/_sandbox/events/age", json={"days": 2, "ids": [old.id]})
    assert _ids(sandbox.client.v1.events.list().data) == [recent.id]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sandbox.client.v1.events.retrieve(old.id)
    assert caught.value.http_status == 404
    assert sandbox.http.post("/_sandbox/events/age", json={"days": 31}).json() == {"aged": 1, "expired": 1}
    assert sandbox.client.v1.events.list().data == []


def test_events_within_retention_of_a_recent_seed_base_are_kept() -> None:
    fake_now = [DEFAULT_BASE_TIME + 10 * 86400]
    config = StripeSandboxConfig(seed=4, clock=lambda: fake_now[0])
    for sandbox in _start(config):
        events = sandbox.client.v1.events.list({"limit": 100}).data
        assert [e.type for e in events[:2]] == ["customer.subscription.created", "customer.created"]
        assert len(events) == 8
        assert events[1].created == DEFAULT_BASE_TIME + 3 * 60
        fake_now[0] += 25 * 86400
        assert sandbox.client.v1.events.list().data == []


# -- idempotency ----------------------------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_other_params(seeded: Sandbox) -> None:
    customers = seeded.client.v1.customers
    first = customers.update(customer_id(1), {"metadata": {"posthog_account_id": "a1"}}, {"idempotency_key": "k-1"})
    again = customers.update(customer_id(1), {"metadata": {"posthog_account_id": "a1"}}, {"idempotency_key": "k-1"})
    assert again.to_dict() == first.to_dict()
    assert len(seeded.client.v1.events.list().data) == 1
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        customers.update(customer_id(1), {"metadata": {"posthog_account_id": "a2"}}, {"idempotency_key": "k-1"})
    with pytest.raises(stripe.IdempotencyError):
        customers.update(customer_id(2), {"metadata": {"posthog_account_id": "a1"}}, {"idempotency_key": "k-1"})

    auth = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "k-raw"}
    body = {"metadata[x]": "1"}
    original = seeded.http.post(f"/v1/customers/{customer_id(3)}", data=body, headers=auth)
    replay = seeded.http.post(f"/v1/customers/{customer_id(3)}", data=body, headers=auth)
    assert "idempotent-replayed" not in original.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["original-request"] == original.headers["request-id"]
    assert replay.content == original.content


def test_idempotency_saves_errors_but_not_validation_failures(seeded: Sandbox) -> None:
    customers = seeded.client.v1.customers
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            customers.update("cus_missing", {"name": "x"}, {"idempotency_key": "k-404"})
        assert caught.value.http_status == 404
    seeded.seed(1, start=100)
    with pytest.raises(stripe.InvalidRequestError):
        customers.update(customer_id(100), {"email": "bad"}, {"idempotency_key": "k-bad"})
    fixed = customers.update(customer_id(100), {"email": "good@x.example"}, {"idempotency_key": "k-bad"})
    assert fixed.email == "good@x.example"


def test_idempotency_keys_expire_after_24_hours() -> None:
    now = [2_000_000_000.0]
    for sandbox in _start(StripeSandboxConfig(seed=1, clock=lambda: now[0])):
        customers = sandbox.client.v1.customers
        customers.update(customer_id(0), {"name": "one"}, {"idempotency_key": "k"})
        now[0] += 24 * 3600 + 1
        assert customers.update(customer_id(0), {"name": "two"}, {"idempotency_key": "k"}).name == "two"


# -- auth, faults, wire details -------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_stripes_401(seeded: Sandbox) -> None:
    with pytest.raises(stripe.AuthenticationError) as caught:
        seeded.sdk(key="sk_test_wrongkey1234").v1.customers.list()
    assert caught.value.http_status == 401
    assert caught.value.json_body == {
        "error": {"message": "Invalid API Key provided: sk_test_********1234", "type": "invalid_request_error"}
    }
    missing = seeded.http.get("/v1/customers")
    assert missing.status_code == 401
    assert "You did not provide an API key" in missing.json()["error"]["message"]
    basic = seeded.http.get("/v1/customers", auth=(KEY, ""))
    assert basic.status_code == 200


def test_request_id_version_and_unrecognized_urls(seeded: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    response = seeded.http.get("/v1/customers", headers=auth)
    assert response.headers["request-id"].startswith("req_")
    assert response.headers["stripe-version"]
    pinned = seeded.http.get("/v1/customers", headers={**auth, "Stripe-Version": "2024-06-20"})
    assert pinned.headers["stripe-version"] == "2024-06-20"
    unknown = seeded.http.get("/v1/charges_and_things", headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/charges_and_things)")
    assert "request-id" in unknown.headers
    assert "request-id" not in seeded.http.get("/_sandbox/health").headers


def test_injected_429_is_stripes_rate_limit(seeded: Sandbox) -> None:
    seeded.http.post("/_sandbox/faults", json={"rate_429": 1.0})
    with pytest.raises(stripe.RateLimitError) as caught:
        seeded.client.v1.customers.list()
    assert caught.value.http_status == 429
    body = cast(dict[str, Any], caught.value.json_body)
    assert body["error"]["code"] == "rate_limit"
    assert body["error"]["type"] == "invalid_request_error"
    assert caught.value.headers is not None
    assert caught.value.headers["stripe-should-retry"] == "true"
    assert caught.value.headers["request-id"].startswith("req_")


def test_sdk_retries_faults_and_replays_by_idempotency_key(seeded: Sandbox) -> None:
    # seed 1 draws 0.13 then 0.85: the first request is faulted, the retry is served
    seeded.http.post("/_sandbox/faults", json={"rate_429": 0.5, "seed": 1})
    assert len(seeded.sdk(retries=2).v1.customers.list().data) == 10
    seeded.http.post("/_sandbox/faults", json={"rate_5xx": 0.5, "seed": 1})
    updated = seeded.sdk(retries=2).v1.customers.update(customer_id(9), {"metadata": {"posthog_account_id": "z"}})
    assert updated.to_dict()["metadata"]["posthog_account_id"] == "z"
    stats = seeded.http.get("/_sandbox/stats").json()
    assert stats["faults_injected"] == {"429": 1, "500": 1}
    assert seeded.requests("POST", "/v1/customers/{customer_id}") == 1
    assert len(seeded.client.v1.events.list().data) == 1


# -- webhooks -------------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback webhook endpoint that fails its first ``failures`` deliveries."""

    failures: int = 0
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.attempts += 1
                if self.attempts <= self.failures:
                    return Response(status_code=500)
                self.received.append((body, dict(request.headers)))
            return Response(status_code=200)

        return app


def test_webhooks_are_signed_and_retried(sandbox: Sandbox) -> None:
    receiver = Receiver(failures=2)
    with serving(receiver.app()) as endpoint:
        sandbox.http.put("/_sandbox/webhooks", json={"url": f"{endpoint.url}/hook", "secret": "whsec_test"})
        customer = sandbox.client.v1.customers.create({"name": "Hooked"})
        sandbox.http.post(f"/_sandbox/customers/{customer.id}", json={"metadata": {"posthog_account_id": "p1"}})
        drained = sandbox.http.post("/_sandbox/webhooks/drain", params={"timeout_s": 20}).json()
    assert drained["drained"] is True
    assert drained["delivered"] == 2 and drained["failed"] == 0 and drained["attempts"] == 4
    events = []
    for body, headers in receiver.received:
        event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], "whsec_test")
        events.append(event)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], "whsec_other")
    assert [e.type for e in events] == ["customer.created", "customer.updated"]
    assert events[1].data.object.metadata["posthog_account_id"] == "p1"
    assert json.loads(receiver.received[1][0])["pending_webhooks"] == 1


def test_webhook_url_from_config_and_no_deliveries_without_one() -> None:
    receiver = Receiver()
    with serving(receiver.app()) as endpoint:
        for sandbox in _start(StripeSandboxConfig(webhook_url=f"{endpoint.url}/hook", webhook_secret="whsec_c")):
            sandbox.seed(3)
            sandbox.http.delete(f"/_sandbox/customers/{customer_id(1)}")
            sandbox.http.post("/_sandbox/webhooks/drain")
    types = [json.loads(body)["type"] for body, _ in receiver.received]
    assert types == ["customer.subscription.deleted", "customer.deleted"]
    header = receiver.received[0][1]["stripe-signature"]
    assert header.startswith("t=") and ",v1=" in header
    for sandbox in _start(StripeSandboxConfig()):
        sandbox.client.v1.customers.create({"name": "quiet"})
        assert sandbox.http.get("/_sandbox/webhooks").json()["attempts"] == 0
        assert sandbox.client.v1.events.list().data[0].pending_webhooks == 0


# -- admin and seeding ----------------------------------------------------------------------------------------


def test_seed_is_deterministic_and_shares_identities(sandbox: Sandbox) -> None:
    assert sandbox.seed(10, start=5) == {"created": 10, "skipped": 0, "customers": 10}
    assert sandbox.seed(10, start=10) == {"created": 5, "skipped": 5, "customers": 15}
    first = [c.to_dict() for c in sandbox.client.v1.customers.list({"limit": 100}).data]
    for other in _start(StripeSandboxConfig()):
        other.seed(15, start=5)
        assert [c.to_dict() for c in other.client.v1.customers.list({"limit": 100}).data] == first
    nine = sandbox.client.v1.customers.retrieve(customer_id(9))
    assert nine.name == company(9).name and nine.email == company(9).contact_email
    assert nine.to_dict()["metadata"] == {}  # every 5th identity has no external id
    eight = sandbox.client.v1.customers.retrieve(customer_id(8))
    assert eight.to_dict()["metadata"]["posthog_external_id"] == company(8).external_id
    statuses = {s.status for s in sandbox.client.v1.subscriptions.list({"status": "all", "limit": 100}).data}
    assert statuses == {"active", "trialing", "past_due", "canceled"}


def test_admin_edit_and_delete(seeded: Sandbox) -> None:
    edited = seeded.http.post(
        f"/_sandbox/customers/{customer_id(2)}",
        json={"email": "new@x.example", "metadata": {"posthog_external_id": None, "k": "v"}},
    ).json()
    assert edited["email"] == "new@x.example"
    assert edited["metadata"] == {"k": "v"}
    event = seeded.client.v1.events.list().data[0].to_dict()
    assert event["type"] == "customer.updated"
    assert event["data"]["previous_attributes"] == {
        "email": company(2).contact_email,
        "metadata": {"k": None, "posthog_external_id": "acct-00002"},
    }
    assert seeded.http.post("/_sandbox/customers/cus_missing", json={"name": "x"}).status_code == 404
    assert seeded.http.delete(f"/_sandbox/customers/{customer_id(2)}").json()["deleted"] is True
    counts = seeded.http.get("/_sandbox/counts").json()
    assert counts["customers"] == 29 and counts["deleted_customers"] == 1
    seeded.http.post("/_sandbox/reset")
    assert seeded.client.v1.customers.list().data == []


def test_ten_thousand_customers_page_in_100_requests(sandbox: Sandbox) -> None:
    assert sandbox.seed(10_000)["created"] == 10_000
    ids = _ids(sandbox.client.v1.customers.list({"limit": 100}).auto_paging_iter())
    assert len(ids) == len(set(ids)) == 10_000
    assert ids[0] == customer_id(9_999) and ids[-1] == customer_id(0)
    assert sandbox.requests("GET", "/v1/customers") == 100
    by_metadata = "metadata['posthog_external_id']:'acct-09998'"
    assert _ids(sandbox.client.v1.customers.search({"query": by_metadata}).data) == [customer_id(9_998)]


def test_cli_serves_with_the_given_flags() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "import typer; from sandbox.stripe.cli import run_stripe; typer.run(run_stripe)",
        *("--port", str(port), "--seed", "5", "--api-key", "sk_test_cli"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/_sandbox/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": url}, max_network_retries=0)
        assert len(client.v1.customers.list().data) == 5
        with pytest.raises(stripe.AuthenticationError):
            stripe.StripeClient(KEY, base_addresses={"api": url}).v1.customers.list()
    finally:
        stop_process(process, timeout_s=10)  # its whole group, pass or fail
        output, _ = process.communicate(timeout=10)
    assert b"sk_test_cli" in output
