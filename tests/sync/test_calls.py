"""The one call path (``sync.calls``) against a real loopback HTTP server: retries, 429 drains, the error table,
response actions and counts. The server answers from a script and counts what reached it; waits are recorded by
an injected ``sleep``, never timed."""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.budget import RequestBudget, parse_window
from sync.calls import BucketBudget, ErrorTable, Failure, VendorCalls, VendorRules, Verdict, WindowBudget
from sync.errors import BadRecordError, CrmsyncError, FatalError, RateLimitedError, RetryableError
from sync.ratelimit import BudgetExhausted, TokenBucket
from sync.retry import RetryPolicy, parse_retry_after
from tests.conftest import REDIS_URL
from workers.serving import ServerThread


@dataclass
class Script:
    """What the server answers next (status, headers), then 200; and every request it saw (its ``limit``)."""

    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    seen: list[str | None] = field(default_factory=list)

    def load(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = deque(answers)
        self.seen = []


def app_for(script: Script) -> Starlette:
    async def answer(request: Request) -> Response:
        script.seen.append(request.query_params.get("limit"))
        status, headers = script.answers.popleft() if script.answers else (200, {})
        return JSONResponse({"status": status}, status_code=status, headers=headers)

    return Starlette(routes=[Route("/things", answer)])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Script]]:
    script = Script()
    with ServerThread(app_for(script)) as running:
        yield running, script


class Throttled(RateLimitedError):
    pass


class Unavailable(RetryableError):
    pass


class Refused(FatalError):
    pass


def refused(exc: httpx.HTTPStatusError, operation: str) -> CrmsyncError:
    status = exc.response.status_code
    wait = parse_retry_after(exc.response.headers.get("Retry-After"))
    if status == 429:
        return Throttled(f"{operation}: 429", wait)
    if status >= 500:
        return Unavailable(f"{operation}: {status}", wait)
    if status == 422:
        return BadRecordError("test", "1", None, "refused")
    return Refused(f"{operation}: {status}")


def unreachable(exc: httpx.TransportError, operation: str) -> CrmsyncError:
    return Unavailable(f"{operation}: {type(exc).__name__}")


TABLE = ErrorTable((((httpx.HTTPStatusError,), refused), ((httpx.TransportError,), unreachable)))


def rate(headers: Any) -> bool:
    return headers.get("X-Test-Remaining") == "0"


RULES = VendorRules(name="test", errors=TABLE, rate=rate)


class Waits(list[float]):
    """A ``sleep`` that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def path(max_retries: int = 3, budget: Any = None, rules: VendorRules = RULES, **policy: Any) -> VendorCalls:
    settings = {"backoff_s": 1.0, "max_backoff_s": 8.0, "rng": random.Random(7), **policy}
    return VendorCalls(rules, RetryPolicy(max_retries=max_retries, sleep=Waits(), **settings), budget)


def get(http: httpx.Client, limit: int | None = None) -> httpx.Response:
    response = http.get("/things", params={} if limit is None else {"limit": str(limit)})
    response.raise_for_status()
    return response


@pytest.fixture
def http(server: tuple[ServerThread, Script]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, trust_env=False) as client:
        yield client


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


failure = st.tuples(st.sampled_from([429, 500, 503]), st.one_of(st.none(), st.integers(0, 8)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(failures=st.lists(failure, max_size=6), max_retries=st.integers(0, 5), floor=st.sampled_from([0.0, 0.5]))
def test_retries_honour_retry_after_and_count_every_attempt(
    server: tuple[ServerThread, Script],
    http: httpx.Client,
    failures: list[tuple[int, int | None]],
    max_retries: int,
    floor: float,
) -> None:
    _, script = server
    script.load(*((status, {} if wait is None else {"Retry-After": str(wait)}) for status, wait in failures))
    calls = path(max_retries, jitter_floor=floor)
    waits = calls.policy.sleep
    assert isinstance(waits, Waits)

    sent = min(len(failures), max_retries) + 1
    if len(failures) <= max_retries:
        assert calls.call("list", lambda: get(http)).status_code == 200
    else:
        status, wait = failures[max_retries]
        with pytest.raises(Throttled if status == 429 else Unavailable) as caught:
            calls.call("list", lambda: get(http))
        assert caught.value.retry_after == wait
    assert len(script.seen) == sent == calls.stats.requests == calls.stats.by_operation["list"]
    assert calls.stats.retries == sent - 1 == len(waits)
    assert calls.stats.throttled == sum(1 for status, _ in failures[:sent] if status == 429)
    for n, ((_, hint), waited) in enumerate(zip(failures, waits, strict=False), start=1):
        ceiling = min(8.0, 2.0 ** (n - 1))
        assert waited == hint if hint is not None else ceiling * floor <= waited <= ceiling


def test_a_retry_after_longer_than_the_backoff_cap_goes_up_at_once(
    server: tuple[ServerThread, Script], http: httpx.Client
) -> None:
    _, script = server
    script.load((429, {"Retry-After": "120"}))
    calls = path()
    with pytest.raises(Throttled) as caught:
        calls.call("list", lambda: get(http))
    assert caught.value.retry_after == 120 and script.seen == [None] and calls.policy.sleep == []


def test_retries_are_bounded_by_total_time(server: tuple[ServerThread, Script], http: httpx.Client) -> None:
    _, script = server
    script.load(*[(503, {"Retry-After": "5"})] * 5)
    calls = path(max_retries=10, max_total_s=12)
    with pytest.raises(Unavailable):
        calls.call("list", lambda: get(http))
    assert calls.policy.sleep == [5.0, 5.0] and len(script.seen) == 3  # a third wait would pass 12 s


def test_the_table_decides_the_kind_and_only_transient_failures_are_retried(
    server: tuple[ServerThread, Script], http: httpx.Client
) -> None:
    _, script = server
    for status, kind in ((404, Refused), (401, Refused), (422, BadRecordError)):
        script.load((status, {}))
        calls = path()
        with pytest.raises(kind) as caught:
            calls.call("list", lambda: get(http))
        assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
        assert calls.stats.requests == 1 and calls.stats.retries == 0 and len(script.seen) == 1

    def broken() -> httpx.Response:
        raise ValueError("not a vendor failure")

    calls = path()
    with pytest.raises(ValueError):
        calls.call("list", broken)  # no row names it: it goes up as it is, and is not retried
    assert calls.stats.requests == 1 and calls.stats.retries == 0


def test_a_per_call_rule_says_what_is_transient(server: tuple[ServerThread, Script], http: httpx.Client) -> None:
    _, script = server
    script.load((503, {}), (503, {}))
    calls = path()

    def only_429s(exc: BaseException, error: CrmsyncError) -> bool:
        return isinstance(error, RateLimitedError)

    with pytest.raises(Unavailable):
        calls.call("create", lambda: get(http), transient=only_429s)  # e.g. a POST that a repeat would duplicate
    assert len(script.seen) == 1 and calls.stats.retries == 0


def test_an_unreachable_server_is_translated_and_retried() -> None:
    with httpx.Client(base_url="http://127.0.0.1:9", trust_env=False) as http:
        calls = path(max_retries=2)
        with pytest.raises(Unavailable, match="ConnectError"):
            calls.call("list", lambda: get(http))
    assert calls.stats.requests == 3 and calls.stats.retries == 2


def test_a_response_action_changes_the_next_request(server: tuple[ServerThread, Script], http: httpx.Client) -> None:
    """HubSpot's kind of action: after a 429, ask for half the page on the retry and the rest of the read."""
    _, script = server
    script.load((429, {"Retry-After": "0"}), (429, {"Retry-After": "0"}), (503, {"Retry-After": "0"}))
    page = {"limit": 100}

    def halve(failure: Failure) -> None:
        if isinstance(failure.error, RateLimitedError):
            page["limit"] = max(10, page["limit"] // 2)

    calls = path()
    calls.call("search", lambda: get(http, page["limit"]), actions=(halve,))
    assert script.seen == ["100", "50", "25", "25"]
    assert calls.stats.throttled == 2 and calls.stats.retries == 3


def test_an_action_may_retry_at_once_outside_the_policy(
    server: tuple[ServerThread, Script], http: httpx.Client
) -> None:
    """Salesforce's kind of action: an expired session logs in again once and the call is sent again at once."""
    _, script = server
    logins: list[int] = []

    def login_again(failure: Failure) -> Verdict | None:
        if not isinstance(failure.error, Refused):
            return None
        if failure.immediate:
            raise FatalError("the session expired even after a fresh login") from failure.exc
        logins.append(failure.attempt)
        return Verdict.RETRY_NOW

    rules = VendorRules(name="test", errors=TABLE, actions=(login_again,))
    script.load((401, {}))
    calls = path(rules=rules)
    assert calls.call("query", lambda: get(http)).status_code == 200
    assert logins == [1] and len(script.seen) == 2 and calls.stats.retries == 0 and calls.policy.sleep == []

    script.load((401, {}), (401, {}))
    with pytest.raises(FatalError, match="even after a fresh login"):
        path(rules=rules).call("query", lambda: get(http))
    assert len(script.seen) == 2


def test_a_429_drains_the_token_bucket_for_every_worker(
    server: tuple[ServerThread, Script], http: httpx.Client, redis_client: redis.Redis
) -> None:
    _, script = server
    key = f"crmsync-test-calls-{uuid.uuid4().hex[:10]}"
    try:
        bucket = TokenBucket(redis_client, key, capacity=50, refill_per_s=0.001)
        script.load((429, {}))
        calls = path(max_retries=0, budget=BucketBudget(bucket, max_wait_s=0))
        with pytest.raises(Throttled):
            calls.call("list", lambda: get(http))
        assert bucket.taken == 1 and float(str(redis_client.hget(key, "tokens"))) < 1
        other_worker = VendorCalls(RULES, RetryPolicy(max_retries=0), BucketBudget(bucket, max_wait_s=0))
        with pytest.raises(BudgetExhausted):
            other_worker.call("list", lambda: get(http))
        assert len(script.seen) == 1  # nothing was sent without a token
    finally:
        redis_client.delete(key)


def test_a_spent_rate_header_drains_the_bucket(
    server: tuple[ServerThread, Script], http: httpx.Client, redis_client: redis.Redis
) -> None:
    _, script = server
    key = f"crmsync-test-calls-{uuid.uuid4().hex[:10]}"
    try:
        bucket = TokenBucket(redis_client, key, capacity=50, refill_per_s=0.001)
        script.load((200, {"X-Test-Remaining": "0"}))
        calls = path(budget=BucketBudget(bucket, max_wait_s=0))
        calls.call("list", lambda: get(http))
        assert float(str(redis_client.hget(key, "tokens"))) < 1 and calls.stats.throttled == 0
    finally:
        redis_client.delete(key)


def test_a_429_blocks_the_window_budget_which_then_waits_it_out(
    server: tuple[ServerThread, Script], http: httpx.Client, redis_client: redis.Redis
) -> None:
    """PostHog's kind of budget: the 429 blocks every worker for its whole Retry-After; the path does not sleep,
    the next slot is refused with the true wait (longer than the budget may wait) and nothing more is sent."""
    _, script = server
    key = f"crmsync-test-calls-{uuid.uuid4().hex[:10]}"
    try:
        log = RequestBudget(redis_client, key, (parse_window("100/60"),), max_wait_s=5, sleep=Waits())
        script.load((429, {"Retry-After": "100"}))
        calls = path(budget=WindowBudget(log))
        with pytest.raises(BudgetExhausted) as caught:
            calls.call("list", lambda: get(http))
        assert caught.value.retry_after is not None and caught.value.retry_after > 90
        assert len(script.seen) == 1 and calls.stats.throttled == 1 and calls.stats.retries == 1
        assert calls.policy.sleep == []
        assert log.usage().blocked_for_s > 90
    finally:
        for name in redis_client.scan_iter(match=f"{key}*"):
            redis_client.delete(name)


def test_a_vendor_that_counts_in_its_transport_is_not_counted_twice(
    server: tuple[ServerThread, Script], http: httpx.Client
) -> None:
    _, script = server
    rules = VendorRules(name="test", errors=TABLE, counted_by_transport=True)
    script.load((503, {"Retry-After": "0"}), (429, {"Retry-After": "0"}))
    calls = path(rules=rules)
    calls.call("query", lambda: get(http))
    assert len(script.seen) == 3
    assert calls.stats.requests == 0 and calls.stats.throttled == 0  # the transport's hook counts those
    assert calls.stats.retries == 2
