"""Push-back: one idempotent update per customer; a retried push is replayed by Stripe and changes nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.stripe import StripeConnector
from connectors.stripe.push import idempotency_key, update_params
from sandbox.stripe.seed import customer_id
from sync.connector import PushUpdate
from sync.errors import FatalError
from tests.connectors.stripe.conftest import Connect, StripeStandIn

POST = ("POST", "/v1/customers/{customer_id}")


def updated_events(standin: StripeStandIn, cid: str) -> list[dict[str, Any]]:
    return [e for e in standin.events(type="customer.updated") if e["data"]["object"]["id"] == cid]


def test_a_retried_push_is_replayed_and_changes_nothing_more(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(2)
    cid = customer_id(1)
    update = PushUpdate(cid, {"metadata.posthog_account_id": "acc-1", "metadata.posthog_csm_email": "ana@x.io"}, "f1")
    assert connector.push("customers", [update])[0].ok
    assert standin.api(f"/v1/customers/{cid}")["metadata"]["posthog_account_id"] == "acc-1"
    (event,) = updated_events(standin, cid)
    params = update_params(update.fields)
    assert event["request"]["idempotency_key"] == idempotency_key("crmsync-", cid, params)

    standin.reset_counters()
    again = connector.push("customers", [update])  # e.g. a Celery retry after the first answer was lost
    assert again[0].ok
    assert connector.pusher.stats.replayed == 1  # the stand-in answered Idempotent-Replayed: true
    assert standin.count(*POST) == 1 and standin.count("GET", "/v1/customers/{customer_id}") == 1  # one check
    assert len(updated_events(standin, cid)) == 1  # nothing was applied a second time


def test_the_same_values_pushed_again_after_someone_changed_them_are_written(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(1)
    cid = customer_id(0)
    update = PushUpdate(cid, {"metadata.posthog_account_id": "acc-1"}, "f1")
    assert connector.push("customers", [update])[0].ok
    standin.edit(cid, metadata={"posthog_account_id": "someone-else"})
    assert connector.push("customers", [update])[0].ok  # same key → replay → checked → written anew
    assert standin.api(f"/v1/customers/{cid}")["metadata"]["posthog_account_id"] == "acc-1"
    assert connector.pusher.stats.rewritten == 1
    assert connector.push("customers", [update])[0].ok  # and a retry of that is a replay again
    assert len(updated_events(standin, cid)) == 3  # ours, theirs, ours: no more


def test_a_different_write_gets_a_different_key() -> None:
    one = update_params({"metadata.posthog_account_id": "a"})
    two = update_params({"metadata.posthog_account_id": "b"})
    assert idempotency_key("p-", "cus_1", one) == idempotency_key("p-", "cus_1", dict(one))
    assert idempotency_key("p-", "cus_1", one) != idempotency_key("p-", "cus_1", two)
    assert idempotency_key("p-", "cus_1", one) != idempotency_key("p-", "cus_2", one)
    assert len(idempotency_key("p-", "cus_1", one)) <= 255


def test_fields_map_to_stripe_parameters_and_none_clears(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(1)
    cid = customer_id(0)
    standin.edit(cid, metadata={"old_key": "x"}, description="before")
    assert update_params({"metadata.a": "1", "metadata.old_key": None, "description": None}) == {
        "description": "",
        "metadata": {"a": "1", "old_key": ""},
    }
    update = PushUpdate(cid, {"metadata.a": "1", "metadata.old_key": None, "description": None}, "f")
    assert connector.push("customers", [update])[0].ok
    customer = standin.api(f"/v1/customers/{cid}")
    assert customer["metadata"].get("a") == "1" and "old_key" not in customer["metadata"]
    assert customer["description"] is None


def test_per_record_failures_do_not_stop_the_batch(standin: StripeStandIn, connector: StripeConnector) -> None:
    standin.seed(3)
    standin.delete(customer_id(1))
    updates = [
        PushUpdate(customer_id(0), {"metadata.posthog_account_id": "a0"}, "f0"),
        PushUpdate(customer_id(1), {"metadata.posthog_account_id": "a1"}, "f1"),  # deleted in Stripe
        PushUpdate(customer_id(2), {"invoice_settings.footer": "x"}, "f2"),  # not writable
        PushUpdate("cus_never", {"metadata.posthog_account_id": "a3"}, "f3"),
        PushUpdate(customer_id(2), {"metadata.posthog_account_id": "a2"}, "f4"),
    ]
    results = connector.push("customers", updates)
    assert [(r.record_id, r.ok, r.retryable) for r in results] == [
        (customer_id(0), True, False),
        (customer_id(1), False, False),
        (customer_id(2), False, False),
        ("cus_never", False, False),
        (customer_id(2), True, False),
    ]
    assert results[1].error is not None and "customer is gone" in results[1].error
    assert results[2].error is not None and "not writable" in results[2].error
    assert standin.count(*POST) == 4  # the unwritable field never reached Stripe


def test_rate_limited_pushes_stop_and_leave_the_rest_for_a_retry(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(3)
    connector = connect(max_network_retries=0)
    standin.faults(rate_429=1.0)
    updates = [PushUpdate(customer_id(i), {"metadata.posthog_account_id": f"a{i}"}, "f") for i in range(3)]
    results = connector.push("customers", updates)
    assert [(r.ok, r.retryable) for r in results] == [(False, True)] * 3
    assert standin.count(status=429) == 1  # stopped at the first refusal


def test_a_revoked_key_stops_the_push_with_a_fatal_error(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(1)
    connector = connect(api_key="sk_test_revoked")
    with pytest.raises(FatalError) as caught:
        connector.push("customers", [PushUpdate(customer_id(0), {"metadata.x": "1"}, "f")])
    assert "401" in str(caught.value) and "sk_test_revoked" not in str(caught.value)


def test_metadata_over_stripes_limits_fails_per_record_naming_key_and_limit_without_a_request(
    standin: StripeStandIn, connector: StripeConnector
) -> None:
    standin.seed(4)
    long_key = "posthog_" + "k" * 33  # 41 characters
    updates = [
        PushUpdate(customer_id(0), {f"metadata.{long_key}": "v"}, "f0"),
        PushUpdate(customer_id(1), {"metadata.posthog_csm_email": "x" * 501}, "f1"),
        PushUpdate(customer_id(2), {f"metadata.k{n}": "v" for n in range(51)}, "f2"),
        PushUpdate(customer_id(3), {"metadata.posthog_account_id": "y" * 500}, "f3"),  # exactly the limit: sent
    ]
    standin.reset_counters()

    results = connector.push("customers", updates)

    assert [r.ok for r in results] == [False, False, False, True]
    assert results[0].error == f"metadata.{long_key}: the key is 41 characters; Stripe allows at most 40"
    assert results[1].error == "metadata.posthog_csm_email: the value is 501 characters; Stripe allows at most 500"
    assert results[2].error == "metadata: 51 keys in one update; Stripe allows at most 50 per customer"
    assert not any(r.retryable for r in results)
    assert standin.count(*POST) == 1  # only the record within the limits cost a request


def test_the_stand_in_refuses_what_stripe_refuses_with_stripes_error_body(standin: StripeStandIn) -> None:
    standin.seed(1)
    cid = customer_id(0)
    for body, message in (
        ({"metadata[" + "k" * 41 + "]": "v"}, f"Invalid key: {'k' * 41} must be a string under 40 characters"),
        ({"metadata[note]": "x" * 501}, f"Invalid val: {'x' * 501} must be a string under 500 characters"),
    ):
        response = standin.raw("POST", f"/v1/customers/{cid}", data=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "metadata"
        assert error["message"] == message
    many = {f"metadata[k{n}]": "v" for n in range(51)}
    response = standin.raw("POST", f"/v1/customers/{cid}", data=many)
    assert response.status_code == 400 and response.json()["error"]["param"] == "metadata"
    assert "up to 50 keys" in response.json()["error"]["message"]


def test_the_50_key_limit_is_checked_on_the_merged_metadata(standin: StripeStandIn, connector: StripeConnector) -> None:
    """Stripe merges metadata, so its 50 keys count the customer's existing keys plus the new ones minus those set
    to empty. A customer read by the connector is checked here, without a request; one it has not read is checked
    by Stripe (the stand-in, as Stripe, refuses past 50 on the merged total)."""
    standin.seed(3)
    full, other, fresh = customer_id(0), customer_id(1), customer_id(2)
    for cid in (full, other, fresh):
        seeded = len(standin.api(f"/v1/customers/{cid}")["metadata"])
        data = {f"metadata[old{n}]": "v" for n in range(48 - seeded)}
        assert standin.raw("POST", f"/v1/customers/{cid}", data=data).status_code == 200
        assert len(standin.api(f"/v1/customers/{cid}")["metadata"]) == 48
    assert len(connector.fetch("customers", [full, other])) == 2  # read: their 48 keys are known
    standin.reset_counters()

    three_new = {f"metadata.new{n}": "v" for n in range(3)}
    results = connector.push(
        "customers",
        [
            PushUpdate(full, three_new, "f0"),  # 48 + 3 = 51: refused here
            PushUpdate(other, {**three_new, "metadata.old0": None}, "f1"),  # 48 + 3 - 1 = 50: sent
            PushUpdate(fresh, three_new, "f2"),  # keys not known here: Stripe refuses
        ],
    )
    assert results[0].error == (
        "metadata: 51 keys after this update (48 on the customer, 3 added); Stripe allows at most 50 per customer"
    )
    assert results[1].ok and len(standin.api(f"/v1/customers/{other}")["metadata"]) == 50
    assert not results[2].ok and "50 keys" in (results[2].error or "")
    assert standin.count(*POST) == 2  # the refusal known here cost no request

    standin.reset_counters()  # the pusher kept count of what it wrote: one more key is refused without a request
    again = connector.push("customers", [PushUpdate(other, {"metadata.one_more": "v"}, "f3")])
    assert "51 keys after this update" in (again[0].error or "") and standin.count(*POST) == 0
