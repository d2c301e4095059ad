"""The PostHog stand-in throttles like PostHog (``posthog/rate_limit.py`` on DRF): per key, sliding windows,
429 ``throttled_error`` with ``Retry-After``; 401/403, a key in the body and admin routes cost nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sandbox.posthog.throttle import Throttle, ThrottleRate, key_ident, parse_throttle_spec
from tests.conftest import POSTHOG_KEY, PostHogSandbox

ACCOUNTS = "/api/environments/{}/accounts/"


def get(posthog: PostHogSandbox, key: str = POSTHOG_KEY, project: int = 1) -> httpx.Response:
    return posthog.admin.get(ACCOUNTS.format(project), headers={"Authorization": f"Bearer {key}"})


def test_over_budget_answers_posthogs_throttled_429(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    throttle("3/60")
    assert [get(posthog).status_code for _ in range(3)] == [200, 200, 200]
    refused = get(posthog)
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers  # PostHog's handler drops it: the wait is only in the detail
    detail = refused.json()["detail"]
    wait = int(re.search(r"in (\d+) second", detail).group(1))  # type: ignore[union-attr]
    assert 1 <= wait <= 60
    assert refused.json() == {
        "type": "throttled_error",
        "code": "throttled",
        "detail": f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}.",
        "attr": None,
    }
    assert posthog.stats()["throttled"] == 1
    assert posthog.count("GET", status=429) == 1  # counted under its route, not as an injected fault


def test_the_budget_is_per_key_and_shared_across_projects(
    posthog: PostHogSandbox, throttle: Callable[..., None]
) -> None:
    throttle("2/60")
    assert get(posthog, project=1).status_code == 200
    assert get(posthog, project=2).status_code == 200
    assert get(posthog, project=1).status_code == 429  # one key, one budget, whichever project
    assert get(posthog, key="phx_test_ro").status_code == 200  # another key has its own
    assert posthog.stats()["throttled"] == 1


def test_refused_auth_and_scope_cost_nothing(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    throttle("2/60")
    write = {"Authorization": "Bearer phx_test_ro", "Content-Type": "application/json"}
    for _ in range(5):
        assert posthog.admin.post(ACCOUNTS.format(1), headers=write, json={"name": "x"}).status_code == 403
        assert get(posthog, key="phx_unknown").status_code == 401
        assert posthog.admin.get(ACCOUNTS.format(1)).status_code == 401
    assert [get(posthog, key="phx_test_ro").status_code for _ in range(3)] == [200, 200, 429]


def test_key_in_the_body_is_not_throttled(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    """PostHog's throttle looks for the key with ``request_data={}``: header or query string, never the body."""
    throttle("1/60")
    url = ACCOUNTS.format(1)
    for n in range(3):
        created = posthog.admin.post(url, json={"name": f"Acme {n}", "personal_api_key": POSTHOG_KEY})
        assert created.status_code == 201
    assert posthog.admin.get(url, params={"personal_api_key": POSTHOG_KEY}).status_code == 200
    assert posthog.admin.get(url, params={"personal_api_key": POSTHOG_KEY}).status_code == 429


def test_admin_routes_and_members_endpoint(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    throttle("1/60")
    for _ in range(5):
        assert posthog.admin.get("/_sandbox/health").status_code == 200
    members = posthog.admin.get(
        "/api/organizations/@current/members/", headers={"Authorization": f"Bearer {POSTHOG_KEY}"}
    )
    assert members.status_code == 200  # organisation endpoints draw on the same budget
    assert get(posthog).status_code == 429
    state = posthog.admin.get("/_sandbox/throttle").json()
    assert state["rates"] == ["1/60"] and state["used"][POSTHOG_KEY] == [1]


def test_throttle_admin_route_validates_and_turns_off(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    bad = posthog.admin.post("/_sandbox/throttle", json={"rates": ["480 per minute"]})
    assert bad.status_code == 400 and bad.json()["attr"] == "rates"
    throttle("1/60")
    assert [get(posthog).status_code for _ in range(2)] == [200, 429]
    throttle()
    assert [get(posthog).status_code for _ in range(5)] == [200] * 5


def test_reset_forgets_history_but_keeps_rates(posthog: PostHogSandbox, throttle: Callable[..., None]) -> None:
    throttle("1/60")
    assert [get(posthog).status_code for _ in range(2)] == [200, 429]
    posthog.reset()
    assert posthog.stats()["throttled"] == 0
    assert [get(posthog).status_code for _ in range(2)] == [200, 429]


def test_throttle_spec_parsing() -> None:
    assert parse_throttle_spec("480/60") == ThrottleRate(480, 60.0)
    assert str(parse_throttle_spec(" 20 / 2.5 ")) == "20/2.5"
    for bad in ("480", "0/60", "480/0", "480/minute", "-1/60"):
        with pytest.raises(ValueError, match="bad throttle"):
            parse_throttle_spec(bad)


def test_cli_rejects_a_bad_throttle() -> None:
    from workers.cli import app

    result = CliRunner().invoke(app, ["sandbox", "run", "posthog", "--throttle", "480/minute"])
    assert result.exit_code == 2 and "bad throttle" in result.output


# -- the sliding-window arithmetic (DRF's SimpleRateThrottle), with a clock the test drives ----------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 6),
    duration=st.integers(1, 20),
    steps=st.lists(st.integers(0, 8), min_size=1, max_size=60),
)
def test_never_more_than_limit_in_any_window_and_the_wait_is_exact(limit: int, duration: int, steps: list[int]) -> None:
    clock = Clock()
    throttle = Throttle([ThrottleRate(limit, duration)], clock)
    ident = key_ident("phx_prop")
    admitted: list[float] = []
    for step in steps:
        clock.now += step
        wait = throttle.check(ident)
        if wait is None:
            admitted.append(clock.now)
            continue
        in_window = [t for t in admitted if t > clock.now - duration]
        assert len(in_window) == limit  # refused only when the window is really full
        assert wait == min(in_window) + duration - clock.now > 0  # until the oldest leaves the window
    for i, stamp in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < stamp + duration) <= limit


@settings(max_examples=100, deadline=None)
@given(limit=st.integers(1, 5), duration=st.integers(1, 10), steps=st.lists(st.integers(0, 4), max_size=30))
def test_a_request_sent_after_the_wait_is_admitted(limit: int, duration: int, steps: list[int]) -> None:
    clock = Clock()
    throttle = Throttle([ThrottleRate(limit, duration)], clock)
    for step in steps:
        clock.now += step
        wait = throttle.check("k")
        if wait is not None:
            clock.now += wait
            assert throttle.check("k") is None


def test_every_window_records_what_it_admitted_even_when_another_refuses() -> None:
    """DRF asks every throttle (``check_throttles``): the hour window counts a request the minute refused."""
    clock = Clock()
    throttle = Throttle([ThrottleRate(2, 60), ThrottleRate(100, 3600)], clock)
    results = [throttle.check("k") for _ in range(5)]
    assert [r is None for r in results] == [True, True, False, False, False]
    assert throttle.used("k") == [2, 5]
