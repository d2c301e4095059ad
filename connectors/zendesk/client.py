"""The one call path of the Zendesk connector: every request to Zendesk goes through ``ZendeskClient.call``.

1. takes a token from the account's shared budget (``TokenBucket`` in Redis: ``requests_per_minute``), and for the
   incremental export one from the export's own budget too (``export_requests_per_minute``), so every worker
   together stays inside the plan's limits;
2. sends the request with API token authentication (basic auth, ``{email}/token`` and the token);
3. counts it (``sync.vendor.CallStats``: every attempt, the 429s among them, the retries, per operation);
4. on 429, 5xx and network errors retries with the one retry policy (``sync.retry.RetryPolicy``: ``Retry-After``
   when Zendesk sends it, jittered backoff otherwise, bounded in count and time); a ``Retry-After`` longer than
   ``max_backoff_s`` is not slept through here but goes up with the error for a job retry; a 429 drains the
   budget it was spent from, so every worker backs off;
5. translates every other error answer through ``connectors.zendesk.errors.translate`` (one table).

httpx rather than zenpy: zenpy's ``BaseApi._call_api`` sleeps through any ``Retry-After`` itself, one second at a
time, without bound, and builds ``https://<subdomain>.zendesk.com`` URLs itself; crmsync keeps one retry policy and
one place that waits, and points the client at a stand-in (``docs/connectors/zendesk.md``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import redis

from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.errors import ZendeskRateLimited, translate, transport_error
from sync.errors import RetryableError
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import CallStats


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
    """Authenticated calls to one Zendesk account, with budgets, retries, statistics and translated errors."""

    def __init__(
        self,
        config: ZendeskConfig,
        redis_client: redis.Redis | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.budgets = shared_budgets(redis_client, config) if redis_client is not None else Budgets(None, None)
        self.retry = retry or RetryPolicy(
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            max_backoff_s=config.max_backoff_s,
            max_total_s=config.max_retry_total_s,
        )
        self.stats = CallStats()
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
        """One Zendesk request (``path`` relative to the account URL, or a ``next_page`` URL on it), with the
        policies above; ``export``: the incremental export, which also pays from its own budget."""
        started = time.monotonic()
        error: RetryableError | None = None
        for retries in range(self.retry.max_retries + 1):  # the first attempt, then at most max_retries more
            if error is not None:  # the last attempt failed in a way worth one more try
                wait = self.retry.next_delay(retries, error.retry_after, time.monotonic() - started)
                if wait is None:
                    break
                self.stats.retries += 1
                self.retry.sleep(wait)
            budgets = [b for b in (self.budgets.api, self.budgets.export if export else None) if b is not None]
            for bucket in budgets:
                bucket.take(1, self.config.max_budget_wait_s)
            try:
                response = self.http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                self.stats.sent(operation)
                error = transport_error(exc, operation)
                continue
            self.stats.sent(operation)
            if response.is_success:
                return Answer(response.json() if response.content else {}, _server_time(response))
            if response.status_code == 429:
                self.stats.throttled += 1
                for bucket in budgets[-1:]:  # the export's own limit when it is an export, else the account's
                    bucket.drain()
            failure = translate(response, operation)
            if not isinstance(failure, RetryableError):
                raise failure
            error = failure
        assert error is not None  # the loop ran at least once and only ends early by returning or raising
        if isinstance(error, ZendeskRateLimited) and error.retry_after is None:
            error.retry_after = 60.0  # Zendesk's limits are per minute
        raise error


def _server_time(response: httpx.Response) -> float | None:
    date = response.headers.get("Date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
