"""The client against the PostHog stand-in on what today's servers do differently (issue 19, issue 21 item 6):
the throttle's wait only in the message, members of the project's own organisation, ``next`` links on another
host refused, roles stored as ``{}``."""

from __future__ import annotations

import httpx
import pytest
import redis
from pydantic import SecretStr

from sync.budget import POSTHOG_WINDOWS, RequestBudget, posthog_budget_key
from sync.posthog import PostHogClient
from sync.posthog.errors import PostHogError
from sync.posthog.models import Account
from sync.ratelimit import BudgetExhausted
from sync.retry import RetryPolicy, parse_throttle_detail
from sync.settings import PostHogSettings
from tests.conftest import POSTHOG_KEY, REDIS_URL, PostHogSandbox


def test_the_throttle_wait_is_read_from_the_detail() -> None:
    assert parse_throttle_detail("Request was throttled. Expected available in 37 seconds.") == 37
    assert parse_throttle_detail("Request was throttled. Expected available in 1 second.") == 1
    assert parse_throttle_detail("Request was throttled.") is None
    assert parse_throttle_detail(None) is None


def test_a_429_without_retry_after_blocks_the_budget_for_the_wait_in_its_detail(posthog: PostHogSandbox) -> None:
    """PostHog sends no Retry-After (drf-exceptions-hog drops it): the budget is blocked for the detail's N
    seconds, so nothing is sent again before then. Asserted by counts: one request reached the server, and the
    caller is told to come back after at least N seconds."""
    posthog.faults(rate_429=1.0, retry_after_s=120)
    client_redis = redis.Redis.from_url(REDIS_URL)
    key = posthog_budget_key("crmsync-test-today", posthog.url, POSTHOG_KEY)
    budget = RequestBudget(client_redis, key, POSTHOG_WINDOWS, max_wait_s=5)
    try:
        settings = PostHogSettings(host=posthog.url, personal_api_key=SecretStr(POSTHOG_KEY), project_id=1)
        retry = RetryPolicy(max_retries=3, sleep=lambda _s: None)
        with PostHogClient(settings, retry=retry, budget=budget) as client, pytest.raises(BudgetExhausted) as exc:
            client.list_accounts()
        assert posthog.stats()["faults_injected"] == {"429": 1}  # no retry went out before the wait
        assert exc.value.retry_after is not None and exc.value.retry_after > 110
        assert budget.try_acquire() > 110  # every worker sharing the key waits too
    finally:
        for stale in client_redis.scan_iter(match=f"{key}*"):
            client_redis.delete(stale)
        client_redis.close()


def test_members_come_from_the_projects_own_organisation(posthog: PostHogSandbox, ph: PostHogClient) -> None:
    members = list(ph.iter_members())
    list(ph.iter_members())
    assert members and all(m.user.email for m in members)
    assert posthog.count("GET", "/api/projects/{project_id}/") == 1  # the organisation is read once per client
    assert posthog.count("GET", "/api/organizations/{organization_id}/members/") == 2
    assert posthog.count("GET", "/api/organizations/@current/members/") == 0


def test_a_next_link_on_another_host_is_refused(posthog: PostHogSandbox) -> None:
    """The stand-in builds ``next`` from the request's Host, as DRF does: a proxy that rewrites Host (or a
    hostile answer) would send the key elsewhere on the next page. The client refuses before sending it."""
    settings = PostHogSettings(host=posthog.url, personal_api_key=SecretStr(POSTHOG_KEY), project_id=1)
    with posthog.client() as ph:
        for n in range(3):
            ph.create_account(f"Company {n}", f"ext-{n}")
    http = httpx.Client(base_url=posthog.url, headers={"Host": "elsewhere.example"}, trust_env=False)
    posthog.reset_counters()
    with PostHogClient(settings, http=http) as client, pytest.raises(PostHogError, match="another host") as exc:
        list(client.iter_accounts(page_size=1))
    http.close()
    assert "elsewhere.example" in str(exc.value)
    assert posthog.count("GET") == 1  # the first page only: the key never went to the other host


def test_roles_stored_as_empty_objects_are_unassigned() -> None:
    account = Account.model_validate(
        {
            "id": "0190d8f4-0000-7000-8000-000000000001",
            "name": "Acme",
            "properties": {"csm": {}, "account_owner": {"id": 7, "email": "ana@example.com"}},
        }
    )
    assert account.properties.csm is None
    assert account.properties.account_owner is not None and account.properties.account_owner.id == 7
