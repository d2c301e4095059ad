"""CRM search on the HubSpot stand-in through the SDK: operators, one sort, paging, the 10,000-result wall."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.deals import ApiException, PublicObjectSearchRequest

from sandbox.common import serving
from sandbox.hubspot import HubSpotSandboxConfig, create_app
from sandbox.hubspot.seeding import company_id, deal_id
from sandbox.hubspot.timefmt import BASE_TIME_MS, iso_ms
from sandbox.identities import company
from workers.serving import ServerThread

SEEDED = 50


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    config = HubSpotSandboxConfig(seed=SEEDED, app_limit_per_10s=0, search_limit_per_s=0)
    with serving(create_app(config)) as s:
        yield s


@pytest.fixture(scope="module")
def hs(server: ServerThread) -> HubSpot:
    return HubSpot(access_token="pat-sandbox", host=server.url, client_side_validation=True)


def search(hs: HubSpot, obj: str = "deals", **kwargs: Any) -> Any:
    api = hs.crm.deals.search_api if obj == "deals" else hs.crm.companies.search_api
    return api.do_search(public_object_search_request=PublicObjectSearchRequest(**kwargs))


def one(name: str, operator: str, value: Any = None, **extra: Any) -> list[dict[str, Any]]:
    spec: dict[str, Any] = {"propertyName": name, "operator": operator, **extra}
    if value is not None:
        spec["value"] = value
    return [{"filters": [spec]}]


def ids(response: Any) -> list[int]:
    return [int(r.id) for r in response.results]


def test_default_search_pages_everything_with_total(hs: HubSpot) -> None:
    first = search(hs, limit=20)
    total = SEEDED + len(range(0, SEEDED, 7))
    assert first.total == total and len(first.results) == 20
    assert first.paging.next.after == "20"
    assert set(first.results[0].properties) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    seen = ids(first)
    after = first.paging.next.after
    while after:
        page = search(hs, limit=20, after=after)
        seen += ids(page)
        after = page.paging.next.after if page.paging else None
    assert sorted(seen) == seen and len(set(seen)) == total


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("EQ", str(deal_id(3)), [deal_id(3)]),
        ("GT", str(deal_id(47)), [deal_id(48), deal_id(49), deal_id(49, True)]),
        ("GTE", str(deal_id(49)), [deal_id(49), deal_id(49, True)]),
        ("LT", str(deal_id(0, True)), [deal_id(0)]),
        ("LTE", str(deal_id(0, True)), [deal_id(0), deal_id(0, True)]),
    ],
)
def test_comparisons_on_hs_object_id(hs: HubSpot, operator: str, value: str, expected: list[int]) -> None:
    response = search(hs, filter_groups=one("hs_object_id", operator, value), limit=100)
    assert ids(response) == expected


def test_neq_in_and_has_property(hs: HubSpot) -> None:
    with_reason = search(hs, filter_groups=one("closed_lost_reason", "HAS_PROPERTY"), limit=100)
    assert ids(with_reason) == [deal_id(i, True) for i in range(0, SEEDED, 7)]
    without = search(hs, filter_groups=one("closed_lost_reason", "NOT_HAS_PROPERTY"), limit=1)
    assert without.total == SEEDED
    won = search(hs, filter_groups=one("dealstage", "EQ", "ClosedWon"), limit=100)
    lost = search(hs, filter_groups=one("dealstage", "EQ", "closedlost"), limit=100)
    not_won = search(hs, filter_groups=one("dealstage", "NEQ", "closedwon"), limit=1)
    either = search(hs, filter_groups=one("dealstage", "IN", values=["closedwon", "CLOSEDLOST"]), limit=100)
    assert won.total > 0 and lost.total > 0
    assert won.total + not_won.total == search(hs, limit=1).total
    assert sorted(ids(either)) == sorted(ids(won) + ids(lost))


def test_filters_on_modified_date_accept_epoch_ms_and_iso(hs: HubSpot) -> None:
    cutoff = BASE_TIME_MS + 25 * 10_000
    sorts = [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    by_ms = search(hs, filter_groups=one("hs_lastmodifieddate", "GTE", str(cutoff)), sorts=sorts, limit=100)
    by_iso = search(hs, filter_groups=one("hs_lastmodifieddate", "GTE", iso_ms(cutoff)), sorts=sorts, limit=100)
    assert ids(by_ms) == ids(by_iso) and by_ms.total > 0
    stamps = [r.properties["hs_lastmodifieddate"] for r in by_ms.results]
    assert stamps == sorted(stamps) and stamps[0] >= iso_ms(cutoff)
    between = search(
        hs,
        filter_groups=one(
            "createdate", "BETWEEN", str(BASE_TIME_MS), highValue=str(BASE_TIME_MS + 5 * 10_000 + 60_123)
        ),
        limit=100,
    )
    assert ids(between) == [deal_id(i) for i in range(6)]


def test_filter_groups_are_or_of_ands_and_sort_descending(hs: HubSpot) -> None:
    groups = [
        {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": str(deal_id(1))}]},
        {
            "filters": [
                {"propertyName": "hs_object_id", "operator": "GTE", "value": str(deal_id(10))},
                {"propertyName": "hs_object_id", "operator": "LTE", "value": str(deal_id(11))},
            ]
        },
    ]
    response = search(hs, filter_groups=groups, sorts=[{"propertyName": "hs_object_id", "direction": "DESCENDING"}])
    assert ids(response) == [deal_id(11), deal_id(10), deal_id(1)]


def test_companies_search_query_and_tokens(hs: HubSpot) -> None:
    target = company(21)
    by_domain = search(hs, "companies", filter_groups=one("domain", "EQ", target.domain.upper()))
    assert ids(by_domain) == [company_id(21)]
    assert set(by_domain.results[0].properties) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }
    by_query = search(hs, "companies", query=target.name.split()[0] + " " + f"{21:05d}")
    assert ids(by_query) == [company_id(21)]
    tokens = search(hs, "companies", filter_groups=one("name", "CONTAINS_TOKEN", f"{21:05d}"))
    assert ids(tokens) == [company_id(21)]
    chosen = search(hs, "companies", filter_groups=one("name", "EQ", target.name), properties=["posthog_external_id"])
    assert chosen.results[0].properties["posthog_external_id"] == target.external_id


@pytest.mark.parametrize(
    "body",
    [
        {"sorts": [{"propertyName": "amount"}, {"propertyName": "dealname"}]},
        {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "LIKE", "value": "1"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "GT", "value": "many"}]}]},
        {"filterGroups": [{"filters": []}] * 6},
        {"limit": 201},
        {"after": "10000"},
    ],
)
def test_rejected_requests_answer_400(server: ServerThread, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/crm/v3/objects/deals/search",
        json=body,
        headers={"Authorization": "Bearer pat-sandbox"},
        trust_env=False,
    )
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_sdk_sees_400_past_ten_thousand(hs: HubSpot) -> None:
    with pytest.raises(ApiException) as caught:
        search(hs, after="10000")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["status"] == "error"


def test_ten_thousand_wall_and_the_way_around_it() -> None:
    """>10k deals sharing one modified date: offset paging hits the wall, keyset paging on id does not."""
    config = HubSpotSandboxConfig(app_limit_per_10s=0, search_limit_per_s=0)
    with serving(create_app(config)) as server, httpx.Client(base_url=server.url, trust_env=False) as admin:
        admin.post("/_sandbox/seed", json={"count": 9_000})
        stamp = "2025-06-01T12:00:00.000Z"
        assert admin.post("/_sandbox/objects/deals/modified", json={"timestamp": stamp}).json()["updated"] > 10_000
        hs = HubSpot(access_token="pat-sandbox", host=server.url)
        same_time = one("hs_lastmodifieddate", "EQ", stamp)
        near_end = search(hs, filter_groups=same_time, limit=200, after="9900")
        assert near_end.total > 10_000 and len(near_end.results) == 100
        assert near_end.paging.next.after == "10000"
        with pytest.raises(ApiException):
            search(hs, filter_groups=same_time, limit=200, after=near_end.paging.next.after)

        seen: list[int] = []
        last_id = 0
        while True:
            filters = [
                {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": stamp},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
            ]
            page = search(
                hs,
                filter_groups=[{"filters": filters}],
                sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                limit=200,
            )
            if not page.results:
                break
            seen += ids(page)
            last_id = seen[-1]
        assert len(seen) == len(set(seen)) == near_end.total
