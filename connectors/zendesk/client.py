"""The one Zendesk HTTP client, and the one call path every Zendesk request takes (``sync.calls.VendorCalls``).

``ZendeskClient.call`` sends one request with API token authentication (basic auth, ``{email}/token`` and the token)
through the path, filled in with Zendesk's parts:

- the budgets: a token of the account's shared per-minute budget (a Redis token bucket, ``requests_per_minute``)
  per attempt, and for the incremental export one of the export's own lower budget too
  (``export_requests_per_minute``: a ``JointBudget``), so every worker together stays inside the plan's limits; a
  429 empties the budget the refusal is about (the export's for an export, else the account's) for every worker;
- the rate headers: ``X-Rate-Limit-Remaining`` (or ``ratelimit-remaining``) of ``0`` reports the account's minute
  spent, and the path drains the account's budget for every worker (``spent``);
- transient: 429, 5xx (and 409, a conflicting concurrent update) and transport errors, the ``RetryableError``s of
  the error table ``connectors.zendesk.errors.ERRORS``, retried by the one policy (``sync.retry.RetryPolicy``:
  ``Retry-After`` when Zendesk sends it, jittered backoff otherwise, bounded in count and time); a ``Retry-After``
  longer than ``max_backoff_s`` goes up with the error for a job retry, and a 429 that goes up without one carries
  60 s (Zendesk's limits are per minute);
- a bulk update's job status (``job_status``) is read through the path too, with a policy of its own: a job still
  running is a transient failure (``JobRunning``), read again after the policy's backoff, ``job_max_polls`` reads
  at most.

httpx rather than zenpy: zenpy's ``BaseApi._call_api`` sleeps through any ``Retry-After`` itself, one second at a
time, without bound, and builds ``https://<subdomain>.zendesk.com`` URLs itself; crmsync keeps one retry policy and
one place that waits, and points the client at a stand-in (``docs/connectors/zendesk.md``). httpx itself retries
nothing (its transport's ``retries`` stays 0).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import redis

from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.errors import ERRORS, JobRunning, ZendeskRateLimited
from sync.calls import BucketBudget, Budget, JointBudget, VendorCalls, VendorRules
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import CallStats, header

JOB_DONE = frozenset({"completed", "failed", "killed"})
"""The states a bulk update job ends in."""
RATE_LIMIT_WAIT_S = 60.0
"""The wait a 429 without ``Retry-After`` goes up with: Zendesk's limits are per minute."""


def headers_of(answer: object) -> Mapping[str, Any] | None:
    """The headers of an answer, or of the error answer an ``httpx.HTTPStatusError`` carries."""
    response = answer.response if isinstance(answer, httpx.HTTPStatusError) else answer
    return response.headers if isinstance(response, httpx.Response) else None


def spent(headers: Mapping[str, Any]) -> bool:
    """Whether Zendesk reports the account's minute spent (``X-Rate-Limit-Remaining: 0``)."""
    remaining = header(headers, "X-Rate-Limit-Remaining") or header(headers, "ratelimit-remaining")
    return remaining is not None and remaining.strip() == "0"


RULES = VendorRules(name="zendesk", errors=ERRORS, rate=spent, headers=headers_of)


@dataclass(frozen=True)
class Budgets:
    """The account's per-minute budget and the incremental export's (None when no Redis was given)."""

    api: TokenBucket | None
    export: TokenBucket | None


def shared_budgets(client: redis.Redis, config: ZendeskConfig) -> Budgets:
    """Token buckets holding a minute's requests, refilled evenly over the minute (shared by every worker)."""
    return Budgets(
        api=TokenBucket(
            client, f"{config.budget_key}:api", config.requests_per_minute, config.requests_per_minute / 60
        ),
        export=TokenBucket(
            client,
            f"{config.budget_key}:export",
            config.export_requests_per_minute,
            config.export_requests_per_minute / 60,
        ),
    )


@dataclass(frozen=True)
class Answer:
    """A successful answer: its JSON body and the server's clock (``Date``, epoch seconds) when it sent one."""

    body: dict[str, Any]
    server_time: float | None


class ZendeskClient:
    """Authenticated calls to one Zendesk account through the one call path (see the module docstring)."""

    def __init__(
        self,
        config: ZendeskConfig,
        redis_client: redis.Redis | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.budgets = shared_budgets(redis_client, config) if redis_client is not None else Budgets(None, None)
        api: Budget | None = None
        self.export_budget: Budget | None = None
        if self.budgets.api is not None and self.budgets.export is not None:
            api = BucketBudget(self.budgets.api, config.max_budget_wait_s)
            self.export_budget = JointBudget(api, BucketBudget(self.budgets.export, config.max_budget_wait_s))
        policy = retry or RetryPolicy(
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            max_backoff_s=config.max_backoff_s,
            max_total_s=config.max_retry_total_s,
        )
        self.calls = VendorCalls(RULES, policy, api)
        self.stats: CallStats = self.calls.stats
        # A job's status reads: the same path, budget and counts, read again up to job_max_polls times in all.
        job_policy = dataclasses.replace(policy, max_retries=config.job_max_polls - 1, max_total_s=math.inf)
        self.job_calls = VendorCalls(RULES, job_policy, api, self.stats)
        self.http = httpx.Client(
            base_url=config.url,
            auth=(f"{config.email}/token", config.api_token.get_secret_value()),
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            headers={"Accept": "application/json"},
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        export: bool = False,
    ) -> Answer:
        """One Zendesk request (``path`` relative to the account URL, or a ``next_page`` URL on it) through the one
        call path; ``export``: the incremental export, which also pays from its own budget."""

        def send() -> httpx.Response:
            return self.http.request(method, path, params=params, json=json).raise_for_status()

        with _per_minute():
            return _answer(self.calls.call(operation, send, budget=self.export_budget if export else True))

    def job_status(self, job_id: str) -> dict[str, Any]:
        """A bulk update job, read until it ends (``JOB_DONE``); ``ZendeskJobUnfinished`` (retryable) when it is
        still running after ``job_max_polls`` reads."""

        def send() -> httpx.Response:
            response = self.http.get(f"/api/v2/job_statuses/{job_id}").raise_for_status()
            job = _answer(response).body.get("job_status") or {}
            if str(job.get("status")) not in JOB_DONE:
                raise JobRunning(job)
            return response

        with _per_minute():
            job: dict[str, Any] = _answer(self.job_calls.call("show job status", send)).body.get("job_status") or {}
        return job


@contextmanager
def _per_minute() -> Iterator[None]:
    """A 429 that goes up without a ``Retry-After`` carries a minute's wait (Zendesk's limits are per minute)."""
    try:
        yield
    except ZendeskRateLimited as exc:
        if exc.retry_after is None:
            exc.retry_after = RATE_LIMIT_WAIT_S
        raise


def _answer(response: httpx.Response) -> Answer:
    return Answer(response.json() if response.content else {}, _server_time(response))


def _server_time(response: httpx.Response) -> float | None:
    date = response.headers.get("Date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
