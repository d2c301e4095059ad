"""Every object the Stripe stand-in returns, checked against Stripe's published fixture for its type.

The SDK (stripe-python) drives a seeded stand-in through every route it serves; each response's JSON, as the
SDK received it (``last_response.data``), is walked and every dict with an ``object`` key is compared with
``SHAPES`` (tests/sandbox/stripe_fixture_shapes.py, read from stripe/openapi's ``fixtures3.json``): the same
top-level keys (plus the ``OPTIONAL`` ones), and each value of the fixture's JSON type or null (an id may be
expanded into its object).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from sandbox.common import serving
from sandbox.stripe import StripeSandboxConfig, create_app
from sandbox.stripe.seed import customer_id
from tests.sandbox.stripe_fixture_shapes import OPTIONAL, SHAPES

KEY = "sk_test_sandbox"
_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}
ERROR_KEYS = {"type", "code", "decline_code", "doc_url", "message", "param", "payment_method", "request_log_url"}
"""The error object's fields (docs.stripe.com/api/errors)."""


def kind_of(obj: dict[str, Any]) -> str:
    if obj["object"] == "customer" and obj.get("deleted") is True:
        return "deleted_customer"
    return str(obj["object"])


def json_type_ok(value: Any, expected: str) -> bool:
    if value is None or expected == "null":
        return True
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    if expected == "string" and isinstance(value, dict) and {"id", "object"} <= set(value):
        return True  # an id the request expanded into its object (``expand[]=customer``)
    return isinstance(value, _TYPES[expected])


def mismatches(obj: dict[str, Any]) -> list[str]:
    """What keeps ``obj`` from matching its fixture: missing or extra keys, values of another JSON type."""
    kind = kind_of(obj)
    if kind not in SHAPES:
        return [f"no fixture shape for {kind!r}"]
    shape, optional = SHAPES[kind], OPTIONAL.get(kind, {})
    problems = [f"missing {key}" for key in shape if key not in obj]
    problems += [f"extra {key}" for key in obj if key not in shape and key not in optional]
    for key, value in obj.items():
        expected = shape.get(key) or optional.get(key)
        if expected is not None and not json_type_ok(value, expected):
            problems.append(f"{key}: {type(value).__name__}, fixture {expected}")
    return problems


def walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every Stripe object in a response, nested ones included (list data, items, prices, event payloads)."""
    if isinstance(value, dict):
        if isinstance(value.get("object"), str):
            yield value
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)


def wire(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.last_response.data
    return data


@pytest.fixture(scope="module")
def client() -> Iterator[stripe.StripeClient]:
    with serving(create_app(StripeSandboxConfig(seed=24))) as server:
        yield stripe.StripeClient(KEY, base_addresses={"api": server.url}, max_network_retries=0)


def every_response(client: stripe.StripeClient) -> list[dict[str, Any]]:
    """One response of each kind the stand-in gives, through the SDK."""
    v1 = client.v1
    created = v1.customers.create({"name": "Spec Check Inc", "email": "ops@spec-check.example.com"})
    subscription = v1.subscriptions.create(
        {
            "customer": created.id,
            "items": [{"price": "price_sandbox_growth", "quantity": 3}, {"price": "price_sandbox_starter"}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"source": "spec"},
        }
    )
    trial = v1.subscriptions.create({"customer": created.id, "items": [{"price": "price_sandbox_scale"}]})
    doomed = v1.customers.create({"name": "Doomed"})
    responses = [
        v1.accounts.retrieve_current(),
        created,
        subscription,
        trial,
        v1.customers.update(created.id, {"metadata": {"tier": "gold"}}),
        v1.customers.retrieve(customer_id(1), {"expand": ["subscriptions"]}),
        v1.customers.list({"limit": 5, "expand": ["data.subscriptions"]}),
        v1.customers.search({"query": "name~'Spec'", "expand": ["total_count"]}),
        v1.customers.search({"query": "metadata['tier']:'gold'"}),
        v1.subscriptions.list({"status": "all", "limit": 20}),
        v1.subscriptions.retrieve(subscription.id, {"expand": ["customer"]}),
        v1.subscriptions.cancel(trial.id),
        v1.customers.delete(doomed.id),
        v1.customers.retrieve(doomed.id),
        v1.events.list({"limit": 100}),
    ]
    event_id = responses[-1].data[0].id
    responses.append(v1.events.retrieve(event_id))
    return [wire(response) for response in responses]


def test_every_object_matches_its_fixture(client: stripe.StripeClient) -> None:
    objects = [obj for response in every_response(client) for obj in walk(response)]
    kinds = Counter(kind_of(obj) for obj in objects)
    assert set(kinds) == set(SHAPES), kinds  # every served type is exercised, none without a fixture shape
    failures = {f"{kind_of(obj)} {obj.get('id', '')}": mismatches(obj) for obj in objects if mismatches(obj)}
    assert failures == {}, f"{len(failures)} of {len(objects)} objects differ: {list(failures.items())[:5]}"
    assert len(objects) > 200
    # the check itself sees a missing key, an extra one and a value of another type
    price = {key: None for key in SHAPES["price"]} | {"object": "price", "unit_amount": "2900", "extra": 1}
    del price["tiers_mode"]
    assert sorted(mismatches(price)) == ["extra extra", "missing tiers_mode", "unit_amount: str, fixture integer"]


def test_error_bodies_have_stripes_error_object(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_nope")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.subscriptions.create({"customer": customer_id(0), "items": [{"price": "price_nope"}]})
    for caught in (missing.value, unknown.value):
        body = caught.json_body
        assert isinstance(body, dict) and set(body) == {"error"}
        error = body["error"]
        assert set(error) <= ERROR_KEYS and isinstance(error["message"], str) and error["type"]
        assert error["code"] == "resource_missing"
    assert missing.value.http_status == 404
    assert unknown.value.http_status == 400 and unknown.value.param == "items[0][price]"


def test_create_subscription_through_the_sdk(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create({"name": "Create Sub Co"})
    before = client.v1.events.list({"limit": 1}).data[0].id
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": "price_sandbox_starter", "quantity": 2}]},
        {"idempotency_key": "create-sub-1"},
    )
    again = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": "price_sandbox_starter", "quantity": 2}]},
        {"idempotency_key": "create-sub-1"},
    )
    assert again.id == sub.id  # replayed, not a second subscription
    assert sub.customer == customer.id and sub.status == "incomplete"  # no payment method to charge
    assert [(i.price.id, i.quantity) for i in sub["items"].data] == [("price_sandbox_starter", 2)]
    events = client.v1.events.list({"ending_before": before}).data
    assert [(e.type, e.data.object["id"]) for e in events] == [("customer.subscription.created", sub.id)]
    mine = client.v1.subscriptions.list({"customer": customer.id, "status": "all"}).data
    assert [s.id for s in mine] == [sub.id]
    trialing = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": "price_sandbox_scale"}], "trial_period_days": 7}
    )
    assert trialing.status == "trialing" and trialing.trial_end == trialing.created + 7 * 86400
    invoiced = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": "price_sandbox_growth"}],
            "collection_method": "send_invoice",
            "days_until_due": 14,
        }
    )
    assert invoiced.status == "active" and invoiced.days_until_due == 14


@pytest.mark.parametrize(
    ("params", "status", "param"),
    [
        ({"items": [{"price": "price_sandbox_starter"}]}, 400, "customer"),
        ({"customer": "cus_missing", "items": [{"price": "price_sandbox_starter"}]}, 400, "customer"),
        ({"customer": customer_id(2)}, 400, "items"),
        ({"customer": customer_id(2), "items": [{"quantity": 1}]}, 400, "items[0][price]"),
        ({"customer": customer_id(2), "items": [{"price": "price_sandbox_starter"}], "coupon": "x"}, 400, "coupon"),
        (
            {
                "customer": customer_id(2),
                "items": [{"price": "price_sandbox_starter"}],
                "collection_method": "send_invoice",
            },
            400,
            "days_until_due",
        ),
        (
            {
                "customer": customer_id(2),
                "items": [{"price": "price_sandbox_starter"}],
                "payment_behavior": "error_if_incomplete",
            },
            402,
            None,
        ),
    ],
)
def test_create_subscription_refusals(
    client: stripe.StripeClient, params: dict[str, Any], status: int, param: str | None
) -> None:
    with pytest.raises(stripe.StripeError) as refused:
        client.v1.subscriptions.create(params)  # type: ignore[arg-type]
    assert refused.value.http_status == status
    assert (refused.value.json_body or {})["error"].get("param") == param


def test_deleted_customer_cannot_subscribe(client: stripe.StripeClient) -> None:
    gone = client.v1.customers.create({"name": "Gone"})
    client.v1.customers.delete(gone.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create({"customer": gone.id, "items": [{"price": "price_sandbox_starter"}]})
    assert refused.value.http_status == 400 and refused.value.param == "customer"
    assert refused.value.user_message == f"No such customer: '{gone.id}'"
