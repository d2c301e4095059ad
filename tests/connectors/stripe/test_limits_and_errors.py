"""Rate limits (429 with ``Stripe-Should-Retry``, SDK retries, the shared Redis budget) and the translation of
Stripe errors into the project's error tree."""

from __future__ import annotations

import socket

import pytest
import redis
import stripe

from connectors.stripe import StripeConnector
from connectors.stripe.errors import (
    StripeAuthFailed,
    StripeRateLimited,
    StripeRequestFailed,
    StripeUnavailable,
    translate,
)
from sandbox.stripe.seed import customer_id
from sync.errors import FatalError, RetryableError
from sync.ratelimit import BudgetExhausted
from tests.connectors.stripe.conftest import Connect, StripeStandIn


def full_pull(connector: StripeConnector) -> int:
    return sum(len(page.records) for page in connector.pull("customers", None))


def test_429s_that_say_retry_are_retried_by_the_sdk(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(250)
    connector = connect(max_network_retries=8)
    standin.faults(rate_429=0.5, seed=10)  # two 429s, never two in a row
    assert full_pull(connector) == 250
    refused = standin.count(status=429)
    assert refused >= 1 and connector.call_stats.throttled == refused
    assert connector.call_stats.requests == standin.count()  # every attempt, retries included, paid a token


def test_429s_beyond_the_retries_are_a_retryable_error_with_the_servers_wait(
    standin: StripeStandIn, connect: Connect
) -> None:
    standin.seed(5)
    standin.faults(rate_429=1.0, retry_after_s=7)
    with pytest.raises(StripeRateLimited) as caught:
        full_pull(connect(max_network_retries=0))
    assert isinstance(caught.value, RetryableError) and caught.value.retry_after == 7
    assert "429 rate_limit" in str(caught.value)


def test_server_errors_are_retried_then_retryable(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(5)
    standin.faults(rate_5xx=1.0)
    with pytest.raises(StripeUnavailable):
        full_pull(connect(max_network_retries=1))
    assert standin.count(status=500) == 2  # the first attempt and the SDK's one retry


def test_a_wrong_key_is_fatal_and_never_printed(standin: StripeStandIn, connect: Connect) -> None:
    with pytest.raises(StripeAuthFailed) as caught:
        full_pull(connect(api_key="sk_test_not_the_right_one"))
    assert isinstance(caught.value, FatalError)
    assert "401" in str(caught.value) and "not_the_right_one" not in str(caught.value)


def test_an_unreachable_api_is_retryable(connect: Connect) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StripeUnavailable):
        full_pull(connect(api_base=f"http://127.0.0.1:{port}", connect_timeout_s=2))


def test_the_budget_is_shared_by_every_connector_of_one_account(standin: StripeStandIn, connect: Connect) -> None:
    standin.seed(3)
    shared = {"budget_key": "one-account", "burst": 3, "requests_per_s": 0.001, "max_budget_wait_s": 0}
    first, second = connect(**shared), connect(**shared)
    first.fetch("customers", [customer_id(0)])
    second.fetch("customers", [customer_id(0)])
    first.fetch("customers", [customer_id(2)])
    with pytest.raises(BudgetExhausted):
        second.fetch("customers", [customer_id(2)])  # the fourth request of the account: no token left
    assert standin.count() == 3  # nothing was sent without a token


def test_a_429_empties_the_bucket_for_every_worker(
    standin: StripeStandIn, connect: Connect, redis_client: redis.Redis
) -> None:
    standin.seed(2)
    connector = connect(burst=50, requests_per_s=5, max_network_retries=0)
    standin.faults(rate_429=1.0)
    with pytest.raises(StripeRateLimited):
        connector.fetch("customers", [customer_id(0)])
    tokens = redis_client.hget(connector.config.bucket_key, "tokens")
    assert isinstance(tokens, str) and float(tokens) < 1


def test_translation_of_each_stripe_error() -> None:
    def of(error: stripe.StripeError) -> type:
        return type(translate(error, "test"))

    assert of(stripe.RateLimitError("slow down", http_status=429)) is StripeRateLimited
    assert of(stripe.APIConnectionError("reset")) is StripeUnavailable
    assert of(stripe.APIError("boom", http_status=500)) is StripeUnavailable
    assert of(stripe.InvalidRequestError("lock", None, http_status=409)) is StripeUnavailable
    assert of(stripe.AuthenticationError("bad key", http_status=401)) is StripeAuthFailed
    assert of(stripe.PermissionError("no scope", http_status=403)) is StripeAuthFailed
    assert of(stripe.InvalidRequestError("bad param", "limit", http_status=400)) is StripeRequestFailed
    assert of(stripe.IdempotencyError("reused", http_status=400)) is StripeRequestFailed
    limited = translate(stripe.RateLimitError("x", http_status=429, headers={"Retry-After": "3"}), "list")
    assert isinstance(limited, RetryableError) and limited.retry_after == 3.0
    refused = translate(
        stripe.InvalidRequestError("No such customer", "id", code="resource_missing", http_status=404), "get"
    )
    assert str(refused) == "stripe: get: 404 resource_missing: No such customer [param id]"
