"""Auth, rate limits, injected faults and request counters of the HubSpot stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.deals import ApiException, PublicObjectSearchRequest
from hubspot.crm.deals.exceptions import ServiceException, UnauthorizedException
from urllib3.util.retry import Retry

from sandbox.common import serving
from sandbox.hubspot import HubSpotSandboxConfig, create_app
from sandbox.hubspot.ratelimit import RollingWindow

AUTH = {"Authorization": "Bearer pat-sandbox"}


@contextmanager
def client(config: HubSpotSandboxConfig) -> Iterator[tuple[str, httpx.Client]]:
    with serving(create_app(config)) as server, httpx.Client(base_url=server.url, trust_env=False) as http:
        yield server.url, http


@pytest.fixture
def limited() -> Iterator[tuple[str, httpx.Client]]:
    with client(HubSpotSandboxConfig(seed=5, app_limit_per_10s=5, search_limit_per_s=3, daily_limit=1000)) as pair:
        yield pair


def test_unknown_or_missing_token_is_401_in_hubspot_shape(limited: tuple[str, httpx.Client]) -> None:
    url, http = limited
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic pat-sandbox"}):
        response = http.get("/crm/v3/objects/deals", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert set(body) == {"status", "message", "correlationId", "category"}
        assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error"
    with pytest.raises(UnauthorizedException):
        HubSpot(access_token="nope", host=url).crm.deals.basic_api.get_page()
    stats = http.get("/_sandbox/stats").json()
    assert {(r["route"], r["status"]) for r in stats["requests"]} == {("/crm/v3/objects/deals", 401)}


def test_app_window_answers_429_with_headers(limited: tuple[str, httpx.Client]) -> None:
    _, http = limited
    remaining = []
    for _ in range(5):
        response = http.get("/crm/v3/objects/companies", headers=AUTH)
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "5"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "1000"
        remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    refused = http.get("/crm/v3/objects/companies", headers=AUTH)
    assert refused.status_code == 429
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "995"
    body = refused.json()
    assert body["category"] == "RATE_LIMITS" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert "Retry-After" not in refused.headers
    assert http.post("/crm/v3/objects/deals/search", json={}, headers=AUTH).status_code == 200
    stats = http.get("/_sandbox/stats").json()
    rows = {(r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows[("/crm/v3/objects/companies", 200)] == 5
    assert rows[("/crm/v3/objects/companies", 429)] == 1


def test_search_has_its_own_per_second_budget(limited: tuple[str, httpx.Client]) -> None:
    url, http = limited
    statuses = [http.post("/crm/v3/objects/deals/search", json={}, headers=AUTH) for _ in range(12)]
    assert {r.status_code for r in statuses} == {200, 429}
    for response in statuses:
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
        assert "X-HubSpot-RateLimit-Daily" not in response.headers
        if response.status_code == 429:
            assert response.headers["X-HubSpot-RateLimit-Remaining"] == "0"
            assert response.json()["policyName"] == "SECONDLY"
    assert http.get("/crm/v3/objects/deals", headers=AUTH).status_code == 200
    hs = HubSpot(access_token="pat-sandbox", host=url)
    with pytest.raises(ApiException) as caught:
        for _ in range(12):
            hs.crm.deals.search_api.do_search(public_object_search_request=PublicObjectSearchRequest())
    assert caught.value.status == 429
    assert json.loads(caught.value.body)["category"] == "RATE_LIMITS"


def test_daily_cap_and_runtime_reconfiguration() -> None:
    with client(HubSpotSandboxConfig(app_limit_per_10s=0, daily_limit=2)) as (_, http):
        assert [http.get("/crm/v3/owners/", headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]
        assert http.get("/crm/v3/owners/", headers=AUTH).json()["policyName"] == "DAILY"
        off = {"app_limit_per_10s": 0, "search_limit_per_s": 0, "daily_limit": 0}
        assert http.put("/_sandbox/ratelimits", json=off).status_code == 200
        response = http.get("/crm/v3/owners/", headers=AUTH)
        assert response.status_code == 200
        assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_rolling_window_frees_slots_as_time_passes() -> None:
    window = RollingWindow(limit=2, interval_s=10.0)
    assert window.acquire(0.0) == (True, 1)
    assert window.acquire(5.0) == (True, 0)
    assert window.acquire(9.9) == (False, 0)
    assert window.acquire(10.0) == (True, 0)
    assert window.acquire(14.0) == (False, 0)
    assert window.acquire(15.1) == (True, 0)


def test_injected_faults_use_hubspot_shapes(limited: tuple[str, httpx.Client]) -> None:
    url, http = limited
    http.post("/_sandbox/faults", json={"rate_429": 1.0})
    throttled = http.get("/crm/v3/objects/deals", headers=AUTH)
    assert throttled.status_code == 429
    assert throttled.json()["category"] == "RATE_LIMITS"
    assert throttled.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    http.post("/_sandbox/faults", json={"rate_5xx": 1.0})
    with pytest.raises(ServiceException) as caught:
        HubSpot(access_token="pat-sandbox", host=url).crm.deals.basic_api.get_page()
    assert json.loads(caught.value.body)["status"] == "error"
    http.post("/_sandbox/faults", json={})
    assert http.get("/_sandbox/stats").json()["faults_injected"] == {"429": 1, "500": 1}


def test_sdk_retries_through_injected_429s_and_5xx() -> None:
    config = HubSpotSandboxConfig(seed=3, app_limit_per_10s=0, search_limit_per_s=0)
    with client(config) as (url, http):
        http.post("/_sandbox/faults", json={"rate_429": 0.3, "rate_5xx": 0.2, "seed": 7})
        retry = Retry(total=20, status_forcelist=[429, 500], allowed_methods=None, backoff_factor=0)
        hs = HubSpot(access_token="pat-sandbox", host=url, retry=retry)
        for _ in range(5):
            assert len(hs.crm.deals.basic_api.get_page().results) == 4
            hs.crm.deals.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=1))
        stats = http.get("/_sandbox/stats").json()
        injected = sum(stats["faults_injected"].values())
        assert injected > 0
        assert stats["total"] == 10 + injected
