"""The HubSpot stand-in driven through the official SDK (hubspot-api-client 12) over loopback HTTP.

The client runs with ``client_side_validation=True`` so every response must deserialise into the SDK's
models with all required fields present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import ApiException as CompanyApiException
from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInputForCreate as CompanyBatchCreate
from hubspot.crm.companies import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.companies import BatchInputSimplePublicObjectId as CompanyBatchArchive
from hubspot.crm.companies import (
    BatchReadInputSimplePublicObjectId as CompanyBatchRead,
)
from hubspot.crm.companies import SimplePublicObjectBatchInputForCreate as CompanyCreate
from hubspot.crm.companies import SimplePublicObjectId as CompanyObjectId
from hubspot.crm.deals import (
    ApiException,
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicMergeInput,
    PublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals.exceptions import NotFoundException
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate

from sandbox.common import serving
from sandbox.hubspot import HubSpotSandboxConfig, create_app
from sandbox.hubspot.seeding import company_id, deal_id
from sandbox.identities import company, sales_rep_email
from workers.serving import ServerThread

SEEDED = 30
DEALS_SEEDED = SEEDED + len(range(0, SEEDED, 7))


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with serving(create_app(HubSpotSandboxConfig(seed=SEEDED, app_limit_per_10s=0, search_limit_per_s=0))) as s:
        yield s


@pytest.fixture
def hs(server: ServerThread) -> HubSpot:
    return HubSpot(access_token="pat-sandbox", host=server.url, client_side_validation=True)


@pytest.fixture
def admin(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        yield client


def error_of(exc: Exception) -> dict[str, Any]:
    body = json.loads(getattr(exc, "body", "") or "{}")
    assert isinstance(body, dict)
    return body


def test_get_page_walks_every_deal_with_its_company(hs: HubSpot) -> None:
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = hs.crm.deals.basic_api.get_page(
            limit=7, after=after, properties=["dealname", "amount"], associations=["companies"], archived=False
        )
        pages += 1
        for deal in page.results:
            seen.append(deal.id)
            links = deal.associations["companies"].results
            assert {link.type for link in links} == {"deal_to_company", "deal_to_company_unlabeled"}
        if page.paging is None:
            break
        assert page.paging.next.link.startswith("http")
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) == DEALS_SEEDED
    assert seen == sorted(seen, key=int)
    assert pages == -(-DEALS_SEEDED // 7)


def test_records_have_realistic_shapes(hs: HubSpot) -> None:
    deal = hs.crm.deals.basic_api.get_by_id(str(deal_id(3)), properties=["dealname", "closed_lost_reason", "nope"])
    props = deal.properties
    assert set(props) == {"dealname", "closed_lost_reason", "createdate", "hs_lastmodifieddate", "hs_object_id"}
    assert props["closed_lost_reason"] is None
    assert props["hs_object_id"] == deal.id == str(deal_id(3))
    assert props["dealname"].startswith(company(3).name)
    assert props["hs_lastmodifieddate"].endswith("Z") and len(props["hs_lastmodifieddate"]) == 24
    assert deal.updated_at.isoformat(timespec="milliseconds").startswith(props["hs_lastmodifieddate"][:19])
    default = hs.crm.deals.basic_api.get_by_id(str(deal_id(3)))
    assert set(default.properties) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    acme = hs.crm.companies.basic_api.get_by_id(str(company_id(0)), properties=["posthog_external_id", "domain"])
    assert acme.properties["posthog_external_id"] == company(0).external_id
    assert acme.properties["domain"] == company(0).domain


def test_seventh_companies_have_a_second_older_lost_deal(hs: HubSpot) -> None:
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=str(company_id(i))) for i in (7, 8)]
    )
    response = hs.crm.associations.v4.batch_api.get_page("companies", "deals", request)
    by_company = {r._from.id: sorted(t.to_object_id for t in r.to) for r in response.results}
    assert by_company == {
        str(company_id(7)): [str(deal_id(7)), str(deal_id(7, True))],
        str(company_id(8)): [str(deal_id(8))],
    }
    lost = hs.crm.deals.basic_api.get_by_id(str(deal_id(7, True)), properties=["dealstage"])
    main = hs.crm.deals.basic_api.get_by_id(str(deal_id(7)))
    assert lost.properties["dealstage"] == "closedlost"
    assert lost.updated_at < main.updated_at


def test_v4_deal_to_company_types_and_missing_ids(hs: HubSpot) -> None:
    request = BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[PublicFetchAssociationsBatchRequest(id=str(deal_id(2))), PublicFetchAssociationsBatchRequest(id="1")]
    )
    response = hs.crm.associations.v4.batch_api.get_page("deals", "companies", request)
    [result] = response.results
    [target] = result.to
    assert target.to_object_id == str(company_id(2))
    assert {(t.type_id, t.label) for t in target.association_types} == {(5, "Primary"), (341, None)}
    assert response.num_errors == 1
    assert response.errors[0].context == {"fromObjectId": ["1"]}


def test_get_by_id_unknown_and_by_unique_property(hs: HubSpot) -> None:
    with pytest.raises(NotFoundException) as caught:
        hs.crm.deals.basic_api.get_by_id("123")
    body = error_of(caught.value)
    assert body["status"] == "error" and body["category"] == "OBJECT_NOT_FOUND" and body["correlationId"]
    found = hs.crm.companies.basic_api.get_by_id(company(5).external_id, id_property="posthog_external_id")
    assert found.id == str(company_id(5))


def test_archive_hides_then_archived_lists(hs: HubSpot, admin: httpx.Client) -> None:
    target = str(deal_id(4))
    hs.crm.deals.basic_api.archive(target)
    with pytest.raises(NotFoundException):
        hs.crm.deals.basic_api.get_by_id(target)
    archived = hs.crm.deals.basic_api.get_by_id(target, archived=True)
    assert archived.archived is True and archived.archived_at is not None
    page = hs.crm.deals.basic_api.get_page(archived=True)
    assert [d.id for d in page.results] == [target]
    assert admin.get("/_sandbox/summary").json()["deals"] == {"active": DEALS_SEEDED - 1, "archived": 1}
    hs.crm.deals.basic_api.archive("999")


def test_create_update_bumps_modified_date(hs: HubSpot) -> None:
    owner = hs.crm.owners.owners_api.get_page(email=sales_rep_email(3)).results[0]
    created = hs.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "New deal", "amount": "500", "dealstage": "qualifiedtobuy"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=str(company_id(1))),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=5)],
                )
            ],
        )
    )
    assert created.properties["dealname"] == "New deal"
    before = created.properties["hs_lastmodifieddate"]
    updated = hs.crm.deals.basic_api.update(
        created.id, SimplePublicObjectInput(properties={"amount": 750, "hubspot_owner_id": owner.id})
    )
    assert updated.properties["amount"] == "750"
    assert updated.properties["hs_lastmodifieddate"] > before
    fetched = hs.crm.deals.basic_api.get_by_id(created.id, associations=["companies"], properties=["amount"])
    assert fetched.updated_at == updated.updated_at
    assert fetched.associations["companies"].results[0].id == str(company_id(1))


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"not_a_property": "x"}, "PROPERTY_DOESNT_EXIST"),
        ({"hs_lastmodifieddate": "2024-01-01"}, "READ_ONLY_VALUE"),
        ({"dealstage": "won-ish"}, "INVALID_OPTION"),
        ({"amount": "lots"}, "INVALID_FLOAT"),
        ({"hubspot_owner_id": "42"}, "INVALID_OWNER_ID"),
        ({"closedate": "someday"}, "INVALID_DATE"),
    ],
)
def test_invalid_writes_answer_validation_error(hs: HubSpot, properties: dict[str, str], code: str) -> None:
    with pytest.raises(ApiException) as caught:
        hs.crm.deals.basic_api.update(str(deal_id(1)), SimplePublicObjectInput(properties=properties))
    assert caught.value.status == 400
    body = error_of(caught.value)
    assert body["category"] == "VALIDATION_ERROR"
    issues = json.loads(body["message"].split(": ", 1)[1])
    assert issues[0]["error"] == code and issues[0]["name"] == next(iter(properties))


def test_custom_property_then_batch_push_back(hs: HubSpot) -> None:
    created = hs.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="posthog_account_id",
            label="PostHog account id",
            type="string",
            field_type="text",
            group_name="dealinformation",
        ),
    )
    assert created.name == "posthog_account_id" and created.hubspot_defined is False
    with pytest.raises(PropertiesApiException) as caught:
        hs.crm.properties.core_api.create(
            "deals",
            PropertyCreate(
                name="posthog_account_id", label="x", type="string", field_type="text", group_name="dealinformation"
            ),
        )
    assert caught.value.status == 409
    names = {p.name for p in hs.crm.properties.core_api.get_all("deals").results}
    assert {"dealname", "amount", "dealstage", "posthog_account_id"} <= names
    assert hs.crm.properties.core_api.get_by_name("companies", "posthog_external_id").has_unique_value is True

    ids = [str(deal_id(i)) for i in (1, 2, 3)]
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=i, properties={"posthog_account_id": f"acct-{i}"}) for i in ids]
    )
    response = hs.crm.deals.batch_api.update(batch)
    assert response.status == "COMPLETE"
    assert sorted(r.properties["posthog_account_id"] for r in response.results) == sorted(f"acct-{i}" for i in ids)
    read = hs.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids],
            properties=["posthog_account_id"],
            properties_with_history=[],
        )
    )
    assert {r.id: r.properties["posthog_account_id"] for r in read.results} == {i: f"acct-{i}" for i in ids}


def test_batch_read_and_update_report_unknown_ids_as_207(hs: HubSpot, server: ServerThread) -> None:
    read = hs.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=str(deal_id(1))), SimplePublicObjectId(id="77")],
            properties=["dealname"],
            properties_with_history=[],
        )
    )
    assert [r.id for r in read.results] == [str(deal_id(1))]
    assert read.num_errors == 1 and read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context == {"ids": ["77"]}
    update = hs.crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=str(deal_id(1)), properties={"amount": "1"}),
                SimplePublicObjectBatchInput(id="78", properties={"amount": "1"}),
            ]
        )
    )
    assert [r.properties["amount"] for r in update.results] == ["1"]
    assert update.errors[0].context == {"ids": ["78"]}
    raw = httpx.post(
        f"{server.url}/crm/v3/objects/deals/batch/read",
        headers={"Authorization": "Bearer pat-sandbox"},
        json={"inputs": [{"id": "77"}], "properties": []},
        trust_env=False,
    )
    assert raw.status_code == 207


def test_batch_update_rejects_duplicates_and_bad_values_whole(hs: HubSpot) -> None:
    same = str(deal_id(1))
    with pytest.raises(ApiException) as caught:
        hs.crm.deals.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id=same, properties={"amount": str(n)}) for n in (1, 2)]
            )
        )
    assert caught.value.status == 400 and "Duplicate IDs" in error_of(caught.value)["message"]
    with pytest.raises(ApiException):
        hs.crm.deals.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=str(deal_id(2)), properties={"amount": "5"}),
                    SimplePublicObjectBatchInput(id=str(deal_id(3)), properties={"bogus": "5"}),
                ]
            )
        )
    assert hs.crm.deals.basic_api.get_by_id(str(deal_id(2))).properties["amount"] != "5"


def test_upsert_companies_by_external_id(hs: HubSpot) -> None:
    response = hs.crm.companies.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id_property="posthog_external_id", id=company(2).external_id, properties={"city": "Lyon"}
                ),
                SimplePublicObjectBatchInputUpsert(
                    id_property="posthog_external_id", id="acct-new", properties={"name": "Fresh Co"}
                ),
            ]
        )
    )
    outcome = {r.properties["posthog_external_id"]: (r.new, r.id) for r in response.results}
    assert outcome[company(2).external_id] == (False, str(company_id(2)))
    assert outcome["acct-new"][0] is True
    read = hs.crm.companies.batch_api.read(
        CompanyBatchRead(
            inputs=[SimplePublicObjectId(id="acct-new")],
            id_property="posthog_external_id",
            properties=["name"],
            properties_with_history=[],
        )
    )
    assert read.results[0].properties["name"] == "Fresh Co"
    with pytest.raises(CompanyApiException) as caught:
        hs.crm.companies.batch_api.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[SimplePublicObjectBatchInputUpsert(id_property="name", id="x", properties={})]
            )
        )
    assert caught.value.status == 400 and "non-unique" in error_of(caught.value)["message"]


def test_owners_come_from_sales_reps(hs: HubSpot) -> None:
    owners = hs.crm.owners.owners_api.get_page(limit=100).results
    assert [o.email for o in owners] == [sales_rep_email(k) for k in range(10)]
    assert all(o.type == "PERSON" and o.archived is False for o in owners)
    page = hs.crm.owners.owners_api.get_page(limit=4)
    assert len(page.results) == 4 and page.paging.next.after == "4"
    one = hs.crm.owners.owners_api.get_by_id(int(owners[2].id))
    assert one.email == sales_rep_email(2)


def test_merge_keeps_survivor_id_and_404s_the_other(hs: HubSpot) -> None:
    survivor, merged = str(deal_id(7)), str(deal_id(7, True))
    result = hs.crm.deals.basic_api.merge(PublicMergeInput(primary_object_id=survivor, object_id_to_merge=merged))
    assert result.id == survivor
    assert result.properties["hs_merged_object_ids"] == merged
    with pytest.raises(NotFoundException):
        hs.crm.deals.basic_api.get_by_id(merged)
    with pytest.raises(NotFoundException):
        hs.crm.deals.basic_api.get_by_id(merged, archived=True)
    again = hs.crm.deals.basic_api.get_by_id(survivor, properties=["closed_lost_reason", "hs_merged_object_ids"])
    assert again.properties["closed_lost_reason"] == "No budget this quarter"
    companies = hs.crm.companies.basic_api.merge(
        PublicMergeInput(primary_object_id=str(company_id(1)), object_id_to_merge=str(company_id(2)))
    )
    assert companies.properties["hs_merged_object_ids"] == str(company_id(2))
    deals_of_one = hs.crm.companies.basic_api.get_by_id(str(company_id(1)), associations=["deals"])
    assert {a.id for a in deals_of_one.associations["deals"].results} == {str(deal_id(1)), str(deal_id(2))}


def test_seed_is_deterministic_and_overlapping() -> None:
    def snapshot(start: int, count: int) -> list[dict[str, Any]]:
        with (
            serving(create_app(HubSpotSandboxConfig(app_limit_per_10s=0))) as s,
            httpx.Client(base_url=s.url, headers={"Authorization": "Bearer pat-sandbox"}, trust_env=False) as client,
        ):
            client.post("/_sandbox/seed", json={"count": count, "start": start})
            rows: list[dict[str, Any]] = client.get("/crm/v3/objects/companies?limit=100").json()["results"]
            return rows

    first, again, shifted = snapshot(0, 20), snapshot(0, 20), snapshot(10, 20)
    assert first == again
    overlap = {r["id"] for r in first} & {r["id"] for r in shifted}
    assert overlap == {str(company_id(i)) for i in range(10, 20)}
    assert {r["id"]: r for r in first}[str(company_id(12))] == {r["id"]: r for r in shifted}[str(company_id(12))]


def test_admin_edit_delete_and_set_modified(hs: HubSpot, admin: httpx.Client) -> None:
    target = str(deal_id(5))
    before = hs.crm.deals.basic_api.get_by_id(target).properties["hs_lastmodifieddate"]
    edited = admin.patch(f"/_sandbox/objects/deals/{target}", json={"properties": {"dealstage": "closedwon"}})
    assert edited.status_code == 200 and edited.json()["properties"]["dealstage"] == "closedwon"
    assert edited.json()["properties"]["hs_lastmodifieddate"] > before
    assert admin.patch(f"/_sandbox/objects/deals/{target}", json={"properties": {"x": "1"}}).status_code == 400
    touched = admin.post(
        "/_sandbox/objects/deals/modified", json={"timestamp": "2025-03-01T00:00:00.000Z", "ids": None}
    )
    assert touched.json() == {"updated": DEALS_SEEDED}
    assert hs.crm.deals.basic_api.get_by_id(target).properties["hs_lastmodifieddate"] == "2025-03-01T00:00:00.000Z"
    assert admin.delete(f"/_sandbox/objects/deals/{target}", params={"permanent": True}).status_code == 200
    with pytest.raises(NotFoundException):
        hs.crm.deals.basic_api.get_by_id(target, archived=True)
    assert admin.delete("/_sandbox/objects/deals/1").status_code == 404
    assert admin.post("/_sandbox/reset").status_code == 200
    assert admin.get("/_sandbox/summary").json()["deals"] == {"active": 0, "archived": 0}


def test_batch_create_archive_and_v4_page(hs: HubSpot) -> None:
    created = hs.crm.companies.batch_api.create(
        CompanyBatchCreate(
            inputs=[CompanyCreate(properties={"name": f"Batch {n}", "posthog_external_id": f"b-{n}"}) for n in (1, 2)]
        )
    )
    assert sorted(r.properties["name"] for r in created.results) == ["Batch 1", "Batch 2"]
    hs.crm.companies.batch_api.archive(CompanyBatchArchive(inputs=[CompanyObjectId(id=r.id) for r in created.results]))
    assert hs.crm.companies.basic_api.get_page(archived=True, limit=10).results[0].archived is True
    again = hs.crm.companies.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[SimplePublicObjectBatchInputUpsert(id_property="posthog_external_id", id="b-1", properties={})]
        )
    )
    assert again.results[0].new is True
    links = hs.crm.associations.v4.basic_api.get_page("companies", str(company_id(14)), "deals", limit=1)
    assert [link.to_object_id for link in links.results] == [str(deal_id(14))]
    assert links.paging.next.after == "1"


def test_list_limits_and_bad_associations(hs: HubSpot, server: ServerThread) -> None:
    with pytest.raises(ApiException) as caught:
        hs.crm.deals.basic_api.get_page(limit=101)
    assert caught.value.status == 400
    with pytest.raises(ApiException) as caught:
        hs.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={"dealname": "x"},
                associations=[
                    PublicAssociationsForObject(
                        to=PublicObjectId(id=str(company_id(1))),
                        types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)],
                    )
                ],
            )
        )
    assert caught.value.status == 400
    owner = hs.crm.owners.owners_api.get_page(limit=1).results[0]
    assert hs.crm.owners.owners_api.get_by_id(owner.user_id, id_property="userId").id == owner.id
    response = httpx.post(
        f"{server.url}/crm/v3/objects/deals/batch/read",
        content=b"{not json",
        headers={"Authorization": "Bearer pat-sandbox", "Content-Type": "application/json"},
        trust_env=False,
    )
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


def test_association_batch_reads_page_each_input_on_its_own(hs: HubSpot, admin: httpx.Client) -> None:
    admin.put("/_sandbox/associations/paging", json={"page_size": 1}).raise_for_status()
    extra = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Second"}))
    hs.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "two companies"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=str(c)),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=341)],
                )
                for c in (company_id(1), extra.id)
            ],
        )
    )
    batch = hs.crm.associations.v4.batch_api
    first = batch.get_page(
        "companies",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=str(company_id(1)))]
        ),
    )
    (result,) = first.results
    assert len(result.to) == 1 and result.paging.next.after
    second = batch.get_page(
        "companies",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=str(company_id(1)), after=result.paging.next.after)]
        ),
    )
    (rest,) = second.results
    assert len(rest.to) == 1 and rest.to[0].to_object_id != result.to[0].to_object_id
    assert rest.paging is None  # HubSpot leaves ``paging`` out on the last page
    bad = admin.post(
        "/crm/v4/associations/companies/deals/batch/read",
        json={"inputs": [{"id": str(company_id(1)), "after": "not-a-token"}]},
        headers={"Authorization": "Bearer pat-sandbox"},
    )
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    admin.post("/_sandbox/reset").raise_for_status()
    admin.post("/_sandbox/seed", json={"count": 2}).raise_for_status()
    again = batch.get_page(
        "companies",
        "deals",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=str(company_id(0)))]
        ),
    )
    assert again.results[0].paging is None  # reset restores the configured page size (500)


def test_search_throttle_answers_the_next_searches_429_secondly(hs: HubSpot, admin: httpx.Client) -> None:
    admin.post("/_sandbox/ratelimits/search-throttle", json={"count": 2}).raise_for_status()
    body = {"filterGroups": [], "limit": 200}
    headers = {"Authorization": "Bearer pat-sandbox"}
    statuses = [admin.post("/crm/v3/objects/deals/search", json=body, headers=headers) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].json()["policyName"] == "SECONDLY"
    too_big = admin.post("/crm/v3/objects/deals/search", json={**body, "limit": 201}, headers=headers)
    assert too_big.status_code == 400
