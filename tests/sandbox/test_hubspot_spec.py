"""The HubSpot stand-in against HubSpot's published OpenAPI specs: every operation routed, HubSpot's error body.

Source: github.com/HubSpot/HubSpot-public-api-spec-collection at commit
99893791383254f52aa07662baeb98aad65cc710 (2026-08-21), files ``PublicApiSpecs/CRM/Deals/Rollouts/424/v3/deals.json``,
``CRM/Companies/Rollouts/424/v3/companies.json``, ``CRM/Objects/Rollouts/424/v3/objects.json``,
``CRM/Crm Owners/Rollouts/146888/v3/crmOwners.json``, ``CRM/Properties/Rollouts/145899/v3/properties.json``,
``CRM/Associations/Rollouts/130902/v4/associations.json`` and
``Account/Account Info/Rollouts/144923/v3/accountInfo.json``.
``OPERATIONS`` is written from those files' ``paths``: the operations the stand-in serves (those crmsync calls are
marked), each with the path template the spec gives. The deals spec names deals by object type id
(``/crm/v3/objects/0-3``); hubspot-api-client 12 calls ``/crm/v3/objects/deals``; the generic objects spec
(``/crm/v3/objects/{objectType}``) takes either, so each object path is checked in both forms. The ``Error``
schema requires ``category``, ``correlationId`` (a uuid) and ``message``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.common import serving
from sandbox.hubspot import HubSpotSandboxConfig, create_app
from sandbox.hubspot.seeding import company_id, deal_id

# (method, spec path template, crmsync calls it)
OPERATIONS: tuple[tuple[str, str, bool], ...] = (
    ("GET", "/crm/v3/objects/0-3", True),
    ("POST", "/crm/v3/objects/0-3", False),
    ("POST", "/crm/v3/objects/0-3/batch/archive", False),
    ("POST", "/crm/v3/objects/0-3/batch/create", False),
    ("POST", "/crm/v3/objects/0-3/batch/read", True),
    ("POST", "/crm/v3/objects/0-3/batch/update", True),
    ("POST", "/crm/v3/objects/0-3/batch/upsert", False),
    ("POST", "/crm/v3/objects/0-3/merge", False),
    ("POST", "/crm/v3/objects/0-3/search", True),
    ("GET", "/crm/v3/objects/0-3/{dealId}", False),
    ("PATCH", "/crm/v3/objects/0-3/{dealId}", False),
    ("DELETE", "/crm/v3/objects/0-3/{dealId}", False),
    ("GET", "/crm/v3/objects/companies", False),
    ("POST", "/crm/v3/objects/companies", False),
    ("POST", "/crm/v3/objects/companies/batch/archive", False),
    ("POST", "/crm/v3/objects/companies/batch/create", False),
    ("POST", "/crm/v3/objects/companies/batch/read", True),
    ("POST", "/crm/v3/objects/companies/batch/update", False),
    ("POST", "/crm/v3/objects/companies/batch/upsert", False),
    ("POST", "/crm/v3/objects/companies/merge", False),
    ("POST", "/crm/v3/objects/companies/search", True),
    ("GET", "/crm/v3/objects/companies/{companyId}", False),
    ("PATCH", "/crm/v3/objects/companies/{companyId}", False),
    ("DELETE", "/crm/v3/objects/companies/{companyId}", False),
    ("GET", "/crm/v3/owners", True),
    ("GET", "/crm/v3/owners/{ownerId}", False),
    ("GET", "/crm/v3/properties/{objectType}", True),
    ("POST", "/crm/v3/properties/{objectType}", True),
    ("GET", "/crm/v3/properties/{objectType}/{propertyName}", False),
    ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", True),
    ("GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", False),
    ("GET", "/account-info/v3/details", True),
)
TYPE_IDS = {"deals": "0-3", "companies": "0-2"}
NAMES = {type_id: name for name, type_id in TYPE_IDS.items()}
TOKEN = "pat-sandbox"


def forms(template: str) -> list[str]:
    """The path in the object-name form and in the object-type-id form."""
    for type_id, name in NAMES.items():
        template = template.replace(f"/objects/{type_id}", f"/objects/{name}")
    if "/crm/v3/objects/" not in template and "{objectType}" not in template and "ObjectType}" not in template:
        return [template]
    by_id = template
    for name, type_id in TYPE_IDS.items():
        by_id = by_id.replace(f"/objects/{name}", f"/objects/{type_id}")
    return [template, by_id]


def concrete(path: str, owner_id: str, n: int) -> str:
    """Fill a template with ids that exist in the seeded stand-in (names or type ids alike)."""
    uses_ids = "/0-" in path
    deals, companies = ("0-3", "0-2") if uses_ids else ("deals", "companies")
    return (
        path.replace("{dealId}", str(deal_id(n)))
        .replace("{companyId}", str(company_id(n)))
        .replace("{ownerId}", owner_id)
        .replace("{objectType}/{objectId}", f"{deals}/{deal_id(n)}")
        .replace("{fromObjectType}", deals)
        .replace("{toObjectType}", companies)
        .replace("{objectType}", deals)
        .replace("{propertyName}", "dealname")
    )


BODIES: dict[str, Any] = {
    "/batch/read": {"inputs": [{"id": "1"}], "properties": []},
    "/batch/update": {"inputs": [{"id": "1", "properties": {}}]},
    "/batch/archive": {"inputs": [{"id": "1"}]},
    "/batch/create": {"inputs": []},
    "/batch/upsert": {"inputs": []},
    "/merge": {"primaryObjectId": "1", "objectIdToMerge": "2"},
    "/search": {"limit": 1},
}


def body_for(method: str, path: str) -> Any:
    if path.startswith("/crm/v3/properties/") and method == "POST":
        name = f"spec_{uuid.uuid4().hex[:8]}"
        return {"name": name, "label": "Spec", "type": "string", "fieldType": "text", "groupName": "dealinformation"}
    if path.startswith("/crm/v4/associations/"):
        return {"inputs": [{"id": str(deal_id(0))}]}
    if method == "PATCH":
        return {"properties": {}}
    for suffix, body in BODIES.items():
        if path.endswith(suffix):
            return body
    return {"properties": {}} if method == "POST" else None


def assert_hubspot_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict) and "detail" not in body, (response.request.url, body)
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["category"], str) and body["category"].isupper()
    uuid.UUID(body["correlationId"])
    return body


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    config = HubSpotSandboxConfig(seed=40, app_limit_per_10s=0, search_limit_per_s=0)
    with (
        serving(create_app(config)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False) as client,
    ):
        yield client


def test_every_operation_is_routed_in_both_forms(api: httpx.Client) -> None:
    owner_id = str(api.get("/crm/v3/owners").json()["results"][0]["id"])
    checked = 0
    for n, (method, template, crmsync_calls) in enumerate(OPERATIONS):
        for path in forms(template):
            url = concrete(path, owner_id, n)
            response = api.request(method, url, json=body_for(method, url))
            if crmsync_calls:
                assert response.status_code in (200, 201, 207), (method, url, response.text)
            elif response.status_code >= 400:  # routed, refused for its (minimal) body or ids: HubSpot's body
                body = assert_hubspot_error(response)
                assert response.status_code != 405, (method, url, body)
                assert not body["message"].startswith("Unable to route"), (method, url, body)
            checked += 1
    assert checked == 61  # 32 operations, 29 of them with an object type in the path


def test_type_id_and_name_forms_answer_the_same(api: httpx.Client) -> None:
    for name, type_id in TYPE_IDS.items():
        by_name = api.get(f"/crm/v3/objects/{name}", params={"limit": 3}).json()
        by_id = api.get(f"/crm/v3/objects/{type_id}", params={"limit": 3}).json()
        assert [r["id"] for r in by_id["results"]] == [r["id"] for r in by_name["results"]] != []
        search = api.post(f"/crm/v3/objects/{type_id}/search", json={"limit": 2}).json()
        assert search["total"] > 0 and len(search["results"]) == 2


@pytest.mark.parametrize(
    ("method", "path", "status", "category"),
    [
        ("GET", "/crm/v3/objects/tickets-nope", 404, "OBJECT_NOT_FOUND"),
        ("GET", "/crm/v3/objects/0-3/1/extra/segment", 404, "OBJECT_NOT_FOUND"),
        ("GET", "/crm/v9/anything", 404, "OBJECT_NOT_FOUND"),
        ("GET", "/crm/v3/objects/0-3/1", 404, "OBJECT_NOT_FOUND"),
        ("PUT", "/crm/v3/objects/deals", 405, "VALIDATION_ERROR"),
        ("DELETE", "/crm/v3/objects/0-2/batch/read", 405, "VALIDATION_ERROR"),
        ("POST", "/account-info/v3/details", 405, "VALIDATION_ERROR"),
        ("POST", "/crm/v3/objects/0-3/batch/read", 400, "VALIDATION_ERROR"),
    ],
)
def test_errors_carry_hubspots_error_body(
    api: httpx.Client, method: str, path: str, status: int, category: str
) -> None:
    body = {"inputs": "not a list"} if status == 400 else None
    response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert assert_hubspot_error(response)["category"] == category


def test_unauthenticated_unrouted_and_admin_paths(api: httpx.Client) -> None:
    anonymous = httpx.get(api.base_url.join("/crm/v3/objects/0-3"), trust_env=False)
    assert anonymous.status_code == 401
    assert assert_hubspot_error(anonymous)["category"] == "INVALID_AUTHENTICATION"
    # the stand-in's own admin surface is not HubSpot's API: it keeps FastAPI's answer
    assert api.get("/_sandbox/no-such-admin-route").json() == {"detail": "Not Found"}


def test_fastapi_validation_errors_answer_hubspots_400() -> None:
    """No vendor route declares typed parameters today; one that did would answer HubSpot's 400, not a 422."""
    app = create_app(HubSpotSandboxConfig(app_limit_per_10s=0, search_limit_per_s=0))

    @app.get("/crm/v3/typed/{number}")
    async def typed(number: int) -> dict[str, int]:
        return {"number": number}

    with serving(app) as server, httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/crm/v3/typed/7").json() == {"number": 7}
        response = client.get("/crm/v3/typed/seven")
        assert response.status_code == 400
        body = assert_hubspot_error(response)
        assert body["category"] == "VALIDATION_ERROR"
        assert [e["in"] for e in body["errors"]] == ["path"] and "number" in body["errors"][0]["message"]
