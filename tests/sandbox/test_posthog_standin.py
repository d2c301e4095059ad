"""The PostHog stand-in over real loopback HTTP (raw httpx against a ``ServerThread``).

Each rule of ``/work/shared/reference/posthog-accounts-api.md`` gets a test: field validation, the 409,
replace semantics, tag normalisation, every list filter, absolute pagination links, authentication and
scopes, project isolation, usage-metric rules, members, persistence across a restart.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.common import serving
from sandbox.posthog.app import (
    ApiKey,
    Member,
    PostHogSandboxConfig,
    create_app,
    parse_key_spec,
    parse_member_spec,
)
from workers.serving import ServerThread

ACCOUNTS = "/api/environments/1/accounts/"
METRICS = "/api/projects/1/groups_types/0/metrics/"
MEMBERS = "/api/organizations/@current/members/"
CONFIG = PostHogSandboxConfig(
    generation="seed",  # pinned: the rules of the public docs page (current PostHog: test_posthog_generations.py)
    projects=(1, 2, 3),
    keys=(
        ApiKey("phx_all", ("*",)),
        ApiKey("phx_ro", ("account:read", "usage_metric:read")),
        ApiKey("phx_account_w", ("account:write",)),
        ApiKey("phx_p2", ("*",), (2,)),
        ApiKey("phx_members", ("organization_member:read",)),
        ApiKey("phx_legacy", ()),
    ),
    members=(Member(7, "ana@example.com", "Ana", "Lopez"), Member(8, "ben@example.com")),
)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error(code: str, detail: str, attr: str | None = None, type_: str = "validation_error") -> dict[str, Any]:
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serving(create_app(CONFIG)) as running:
        yield running


@pytest.fixture
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=bearer("phx_all"), trust_env=False) as client:
        client.post("/_sandbox/reset")
        yield client


def create(http: httpx.Client, path: str = ACCOUNTS, **body: Any) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["results"]]


# Accounts: create, fields, validation


def test_create_returns_the_account_in_posthogs_shape(http: httpx.Client) -> None:
    account = create(http, name=" Acme ", external_id="acct-1")
    fields = "id name external_id properties tags created_at created_by updated_at notebooks"
    assert list(account) == fields.split()
    assert account["name"] == "Acme"
    assert account["properties"] == {} and account["tags"] == [] and account["notebooks"] == []
    assert account["created_by"] == 1
    assert ISO.match(account["created_at"]) and account["created_at"] == account["updated_at"]
    assert uuid.UUID(account["id"]).version == 7
    assert http.get(f"{ACCOUNTS}{account['id']}/").json() == account


def test_ids_are_time_ordered_uuid7(http: httpx.Client) -> None:
    ids = [create(http, name=f"a{i}")["id"] for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, error("required", "This field is required.", "name")),
        ({"name": ""}, error("blank", "This field may not be blank.", "name")),
        ({"name": "   "}, error("blank", "This field may not be blank.", "name")),
        ({"name": None}, error("null", "This field may not be null.", "name")),
        ({"name": True}, error("invalid_input", "Not a valid string.", "name")),
        ({"name": "x" * 401}, error("max_length", "Ensure this field has no more than 400 characters.", "name")),
        ({"name": "a\x00b"}, error("null_characters_not_allowed", "Null characters are not allowed.", "name")),
        (
            {"name": "ok", "external_id": "e" * 401},
            error("max_length", "Ensure this field has no more than 400 characters.", "external_id"),
        ),
        (
            {"name": "ok", "tags": "billing"},
            error("not_a_list", 'Expected a list of items but got type "str".', "tags"),
        ),
        ({"name": "ok", "tags": None}, error("null", "This field may not be null.", "tags")),
        ({"name": "ok", "tags": ["a", 5]}, error("invalid_input", "Not a valid string.", "tags__1")),
        (
            {"name": "ok", "tags": ["t" * 256]},
            error("max_length", "Ensure this field has no more than 255 characters.", "tags__0"),
        ),
    ],
)
def test_account_field_validation(http: httpx.Client, body: dict[str, Any], expected: dict[str, Any]) -> None:
    response = http.post(ACCOUNTS, json=body)
    assert response.status_code == 400
    assert response.json() == expected


def test_limits_are_inclusive_and_numbers_become_text(http: httpx.Client) -> None:
    assert create(http, name="x" * 400, external_id="e" * 400)["name"] == "x" * 400
    assert create(http, name=123)["name"] == "123"
    assert create(http, name="ok", tags=["t" * 255])["tags"] == ["t" * 255]


@pytest.mark.parametrize(
    ("properties", "detail"),
    [
        ([], "properties must be a JSON object."),
        ("x", "properties must be a JSON object."),
        ({"unknown_field": 1}, "unknown_field: Extra inputs are not permitted"),
        ({"csm": {"id": 7}}, "csm.email: Field required"),
        ({"account_owner": {"email": "a@example.com"}}, "account_owner.id: Field required"),
        (
            {"csm": {"id": "seven", "email": "a@example.com"}},
            "csm.id: Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"sfdc_id": 123}, "sfdc_id: Input should be a valid string"),
        ({"csm": "ana"}, "csm: Input should be a valid dictionary or instance of RoleAssignment"),
    ],
)
def test_properties_validation(http: httpx.Client, properties: Any, detail: str) -> None:
    response = http.post(ACCOUNTS, json={"name": "x", "properties": properties})
    assert response.status_code == 400
    assert response.json() == error("invalid_input", detail, "properties")


def test_properties_are_stored_as_sent(http: httpx.Client) -> None:
    properties = {
        "csm": {"id": "7", "email": "ana@example.com"},
        "account_executive": None,
        "sfdc_id": "001",
        "slack_channel_id": "C1",
        "usage_dashboard_link": "https://example.com/d",
    }
    account = create(http, name="x", properties=properties)
    assert account["properties"] == properties
    assert create(http, name="y", properties=None)["properties"] == {}


def test_unknown_and_read_only_fields_are_ignored(http: httpx.Client) -> None:
    forged: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "created_at": "2000-01-01T00:00:00Z",
        "created_by": 99,
        "notebooks": ["n"],
    }
    account = create(http, name="x", color="red", **forged)
    assert account["id"] != forged["id"] and account["created_by"] == 1 and account["notebooks"] == []
    assert "color" not in account


def test_tags_are_normalised_on_write(http: httpx.Client) -> None:
    account = create(http, name="x", tags=[" Billing ", "billing", "URGENT", "urgent "])
    assert sorted(account["tags"]) == ["billing", "urgent"]
    patched = http.patch(f"{ACCOUNTS}{account['id']}/", json={"tags": ["  New  "]}).json()
    assert patched["tags"] == ["new"]


def test_body_parsing_errors(http: httpx.Client) -> None:
    bad_json = http.post(ACCOUNTS, content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["code"] == "parse_error" and bad_json.json()["type"] == "invalid_request"
    assert bad_json.json()["detail"].startswith("JSON parse error - ")
    nan = http.post(ACCOUNTS, content=b'{"name": NaN}', headers={"Content-Type": "application/json"})
    assert nan.json()["code"] == "parse_error"
    listed = http.post(ACCOUNTS, json=[{"name": "x"}])
    assert listed.json() == error("invalid_input", "Invalid data. Expected a dictionary, but got list.")
    form = http.post(ACCOUNTS, data={"name": "x"})
    assert form.status_code == 415
    assert form.json()["code"] == "unsupported_media_type"


# Uniqueness of external_id


def test_duplicate_external_id_is_a_conflict(http: httpx.Client) -> None:
    conflict = {
        "type": "server_error",
        "code": "conflict",
        "detail": "An account with this external_id already exists for this team.",
        "attr": None,
    }
    create(http, name="a", external_id="acct-1")
    duplicate = http.post(ACCOUNTS, json={"name": "b", "external_id": "acct-1"})
    assert duplicate.status_code == 409 and duplicate.json() == conflict
    create(http, name="blank", external_id="")
    assert http.post(ACCOUNTS, json={"name": "blank2", "external_id": ""}).status_code == 409
    create(http, name="null1", external_id=None)
    create(http, name="null2")
    create(http, "/api/environments/2/accounts/", name="other project", external_id="acct-1")


def test_patch_to_a_taken_external_id_is_a_conflict(http: httpx.Client) -> None:
    create(http, name="a", external_id="acct-1")
    b = create(http, name="b", external_id="acct-2")
    response = http.patch(f"{ACCOUNTS}{b['id']}/", json={"external_id": "acct-1"})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    same = http.patch(f"{ACCOUNTS}{b['id']}/", json={"external_id": "acct-2", "name": "b2"})
    assert same.status_code == 200 and same.json()["name"] == "b2"


# Updates


def test_patch_replaces_properties_and_tags_and_keeps_omitted_fields(http: httpx.Client) -> None:
    account = create(
        http,
        name="a",
        external_id="acct-1",
        properties={"sfdc_id": "001", "csm": {"id": 7, "email": "ana@example.com"}},
        tags=["one", "two"],
    )
    url = f"{ACCOUNTS}{account['id']}/"
    patched = http.patch(url, json={"properties": {"hubspot_deal_id": "d1"}}).json()
    assert patched["properties"] == {"hubspot_deal_id": "d1"}
    assert patched["tags"] == ["one", "two"] and patched["name"] == "a" and patched["external_id"] == "acct-1"
    assert http.patch(url, json={"tags": []}).json()["tags"] == []
    assert http.patch(url, json={"properties": None}).json()["properties"] == {}
    assert http.patch(url, json={"external_id": None}).json()["external_id"] is None


def test_put_requires_name_and_keeps_omitted_fields(http: httpx.Client) -> None:
    account = create(http, name="a", external_id="acct-1", tags=["x"])
    url = f"{ACCOUNTS}{account['id']}/"
    assert http.put(url, json={"tags": []}).json() == error("required", "This field is required.", "name")
    updated = http.put(url, json={"name": "b"}).json()
    assert (updated["name"], updated["external_id"], updated["tags"]) == ("b", "acct-1", ["x"])


def test_updated_at_strictly_increases_on_every_save(http: httpx.Client) -> None:
    account = create(http, name="a")
    url = f"{ACCOUNTS}{account['id']}/"
    stamps = [account["updated_at"]]
    for _ in range(20):
        response = http.patch(url, json={})
        assert response.status_code == 200
        stamps.append(response.json()["updated_at"])
        assert response.json()["created_at"] == account["created_at"]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_delete_is_hard(http: httpx.Client) -> None:
    account = create(http, name="a", external_id="acct-1")
    url = f"{ACCOUNTS}{account['id']}/"
    response = http.delete(url)
    assert response.status_code == 204 and response.content == b""
    assert http.get(url).status_code == 404
    assert http.delete(url).status_code == 404
    assert http.get(ACCOUNTS).json()["count"] == 0
    create(http, name="again", external_id="acct-1")


def test_lookup_accepts_any_uuid_form_and_404s_otherwise(http: httpx.Client) -> None:
    account = create(http, name="a")
    hex_upper = uuid.UUID(account["id"]).hex.upper()
    assert http.get(f"{ACCOUNTS}{hex_upper}/").json()["id"] == account["id"]
    not_found = error("not_found", "Not found.", type_="invalid_request")
    assert http.get(f"{ACCOUNTS}not-a-uuid/").json() == not_found
    assert http.get(f"{ACCOUNTS}{uuid.uuid4()}/").json() == not_found


def test_paths_without_trailing_slash_are_served_without_redirect(http: httpx.Client) -> None:
    account = http.post(ACCOUNTS.rstrip("/"), json={"name": "a"})
    assert account.status_code == 201
    detail = f"{ACCOUNTS}{account.json()['id']}"
    assert http.get(detail).status_code == 200
    assert http.patch(detail, json={"name": "b"}).json()["name"] == "b"
    assert http.get(ACCOUNTS.rstrip("/")).json()["count"] == 1
    assert http.get(MEMBERS.rstrip("/"), headers=bearer("phx_members")).status_code == 200
    assert http.delete(detail).status_code == 204


# Project isolation and unknown projects


def test_projects_are_isolated(http: httpx.Client) -> None:
    account = create(http, name="a")
    other = f"/api/environments/2/accounts/{account['id']}/"
    assert http.get(other).status_code == 404
    assert http.patch(other, json={"name": "b"}).status_code == 404
    assert http.delete(other).status_code == 404
    assert http.get("/api/environments/2/accounts/").json()["count"] == 0
    assert http.get("/api/environments/99/accounts/").status_code == 404
    assert http.get("/api/environments/abc/accounts/").status_code == 404


def test_key_limited_to_other_projects_is_forbidden(http: httpx.Client) -> None:
    response = http.get(ACCOUNTS, headers=bearer("phx_p2"))
    assert response.status_code == 403
    assert response.json() == error(
        "permission_denied",
        "API key does not have access to the requested project: ID 1.",
        type_="authentication_error",
    )
    assert http.post("/api/environments/2/accounts/", json={"name": "a"}, headers=bearer("phx_p2")).status_code == 201
    assert http.get("/api/environments/99/accounts/", headers=bearer("phx_p2")).status_code == 404


# Authentication and scopes


def test_key_is_found_in_header_body_and_query(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as anonymous:
        anonymous.post("/_sandbox/reset")
        assert anonymous.get(ACCOUNTS, headers=bearer("phx_all")).status_code == 200
        assert anonymous.post(ACCOUNTS, json={"name": "a", "personal_api_key": "phx_all"}).status_code == 201
        assert anonymous.get(ACCOUNTS, params={"personal_api_key": "phx_all"}).json()["count"] == 1
        basic = {"Authorization": "Basic abc"}
        assert anonymous.get(ACCOUNTS, params={"personal_api_key": "phx_all"}, headers=basic).status_code == 200


def test_missing_and_invalid_keys_are_401(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as anonymous:
        missing = anonymous.get(ACCOUNTS)
        assert missing.status_code == 401
        assert missing.json() == error(
            "not_authenticated", "Authentication credentials were not provided.", type_="authentication_error"
        )
        by_source = {
            "Authorization header": anonymous.get(ACCOUNTS, headers=bearer("phx_nope")),
            "query string": anonymous.get(ACCOUNTS, params={"personal_api_key": "phx_nope"}),
            "body": anonymous.post(ACCOUNTS, json={"name": "a", "personal_api_key": "phx_nope"}),
        }
    for source, response in by_source.items():
        assert response.status_code == 401
        assert response.json() == error(
            "authentication_failed",
            f"Personal API key found in request {source} is invalid.",
            type_="authentication_error",
        )


def test_scopes(http: httpx.Client) -> None:
    account = create(http, name="a")
    read_only = bearer("phx_ro")
    assert http.get(ACCOUNTS, headers=read_only).status_code == 200
    denied = http.post(ACCOUNTS, json={"name": "b"}, headers=read_only)
    assert denied.status_code == 403
    assert denied.json() == error(
        "permission_denied", "API key missing required scope 'account:write'", type_="authentication_error"
    )
    assert http.delete(f"{ACCOUNTS}{account['id']}/", headers=read_only).status_code == 403
    writer = bearer("phx_account_w")
    assert http.get(ACCOUNTS, headers=writer).status_code == 200
    assert http.patch(f"{ACCOUNTS}{account['id']}/", json={"name": "c"}, headers=writer).status_code == 200
    metrics = http.get(METRICS, headers=writer)
    assert metrics.status_code == 403
    assert metrics.json()["detail"] == "API key missing required scope 'usage_metric:read'"
    assert http.post(ACCOUNTS, json={"name": "legacy"}, headers=bearer("phx_legacy")).status_code == 201


# List filters


def test_search_matches_name_or_external_id_case_insensitively(http: httpx.Client) -> None:
    create(http, name="Acme Labs", external_id="ext-1")
    create(http, name="Globex", external_id="ACME-2")
    create(http, name="Initech", external_id="ext-3", properties={"sfdc_id": "acme"})
    assert sorted(names(http.get(ACCOUNTS, params={"search": "  aCmE "}))) == ["Acme Labs", "Globex"]
    assert names(http.get(ACCOUNTS, params={"search": "EXT-3"})) == ["Initech"]
    assert len(names(http.get(ACCOUNTS, params={"search": "   "}))) == 3
    assert names(http.get(ACCOUNTS, params={"search": "%"})) == []


def test_tags_filter_is_a_json_list_matching_any(http: httpx.Client) -> None:
    create(http, name="a", tags=["billing", "urgent"])
    create(http, name="b", tags=["urgent"])
    create(http, name="c", tags=["other"])
    assert sorted(names(http.get(ACCOUNTS, params={"tags": '["billing","urgent"]'}))) == ["a", "b"]
    assert names(http.get(ACCOUNTS, params={"tags": '["billing"]'})) == ["a"]
    assert len(names(http.get(ACCOUNTS, params={"tags": "[]"}))) == 3
    assert len(names(http.get(ACCOUNTS, params={"tags": ""}))) == 3


@pytest.mark.parametrize("raw", ["billing", '{"a": 1}', "[1]", '"billing"', "null", "[nope"])
def test_malformed_tags_filter_is_a_400(http: httpx.Client, raw: str) -> None:
    response = http.get(ACCOUNTS, params={"tags": raw})
    assert response.status_code == 400
    assert response.json() == error("invalid_input", "Must be a JSON-encoded list of strings.", "tags")


def test_role_filters(http: httpx.Client) -> None:
    ana = {"id": 7, "email": "ana@example.com"}
    create(http, name="csm-ana", properties={"csm": ana})
    create(http, name="owner-ana", properties={"account_owner": ana, "csm": None})
    create(http, name="ae-ben", properties={"account_executive": {"id": 8, "email": "ben@example.com"}})
    create(http, name="string-id", properties={"csm": {"id": "7", "email": "ana@example.com"}})
    create(http, name="none")
    everyone = ["ae-ben", "csm-ana", "none", "owner-ana", "string-id"]

    def query(**params: str) -> list[str]:
        return sorted(names(http.get(ACCOUNTS, params=params)))

    assert query(csm="7") == ["csm-ana"]
    assert query(csm="unassigned") == ["ae-ben", "none", "owner-ana"]
    assert query(account_owner="7") == ["owner-ana"]
    assert query(account_executive="8") == ["ae-ben"]
    assert query(account_executive="unassigned", csm="unassigned") == ["none", "owner-ana"]
    for junk in ("ana@example.com", "Unassigned", "", "7.0"):
        assert query(csm=junk) == everyone
    assert query(all_roles_unassigned="TRUE") == ["none"]
    assert query(all_roles_unassigned="1") == everyone


def test_ordering(http: httpx.Client) -> None:
    first = create(http, name="b")
    create(http, name="c")
    create(http, name="a")
    assert names(http.get(ACCOUNTS)) == ["a", "c", "b"]
    assert names(http.get(ACCOUNTS, params={"ordering": "name"})) == ["a", "b", "c"]
    assert names(http.get(ACCOUNTS, params={"ordering": "-name"})) == ["c", "b", "a"]
    assert names(http.get(ACCOUNTS, params={"ordering": "created_at"})) == ["b", "c", "a"]
    http.patch(f"{ACCOUNTS}{first['id']}/", json={})
    assert names(http.get(ACCOUNTS, params={"ordering": "-updated_at"})) == ["b", "a", "c"]
    assert names(http.get(ACCOUNTS, params={"ordering": "external_id"})) == ["a", "c", "b"]


def test_filters_combine_with_and(http: httpx.Client) -> None:
    create(http, name="acme one", tags=["x"], properties={"csm": {"id": 7, "email": "ana@example.com"}})
    create(http, name="acme two", tags=["x"])
    create(http, name="other", tags=["x"], properties={"csm": {"id": 7, "email": "ana@example.com"}})
    params = {"search": "acme", "tags": '["x"]', "csm": "7"}
    assert names(http.get(ACCOUNTS, params=params)) == ["acme one"]


# Pagination


def test_pagination_links_are_absolute_and_carry_the_query(http: httpx.Client, server: ServerThread) -> None:
    created = [create(http, name=f"acme {i}")["id"] for i in range(7)]
    create(http, name="other")
    base = f"{server.url}{ACCOUNTS}"
    first = http.get(ACCOUNTS, params={"search": "acme", "limit": 3}).json()
    assert first["count"] == 7 and len(first["results"]) == 3
    assert first["previous"] is None
    assert first["next"] == f"{base}?limit=3&offset=3&search=acme"
    second = http.get(first["next"]).json()
    assert second["previous"] == f"{base}?limit=3&search=acme"
    assert second["next"] == f"{base}?limit=3&offset=6&search=acme"
    third = http.get(second["next"]).json()
    assert third["previous"] == f"{base}?limit=3&offset=3&search=acme"
    assert third["next"] is None
    seen = [a["id"] for page in (first, second, third) for a in page["results"]]
    assert seen == list(reversed(created))


@pytest.mark.parametrize(
    ("params", "limit", "offset"),
    [
        ({"limit": "abc"}, 100, 0),
        ({"limit": "0"}, 100, 0),
        ({"limit": "-2"}, 100, 0),
        ({"limit": "2", "offset": "-1"}, 2, 0),
        ({"limit": "2", "offset": "x"}, 2, 0),
        ({"limit": "2", "offset": "4"}, 2, 4),
    ],
)
def test_lenient_limit_and_offset(http: httpx.Client, params: dict[str, str], limit: int, offset: int) -> None:
    for i in range(6):
        create(http, name=f"n{i}")
    page = http.get(ACCOUNTS, params=params).json()
    everything = http.get(ACCOUNTS).json()["results"]
    assert page["results"] == everything[offset : offset + limit]


def test_no_maximum_limit_and_offset_past_the_end(http: httpx.Client) -> None:
    http.post("/_sandbox/seed", json={"count": 250})
    assert len(http.get(ACCOUNTS, params={"limit": 1000}).json()["results"]) == 250
    past = http.get(ACCOUNTS, params={"limit": 10, "offset": 400}).json()
    assert past["results"] == [] and past["next"] is None
    assert past["previous"].endswith("?limit=10&offset=390")


# Usage metrics


def test_metric_create_defaults_and_shape(http: httpx.Client) -> None:
    metric = create(http, METRICS, name="Events", filters={"events": [{"id": "$pageview", "type": "events"}]})
    assert metric == {
        "id": metric["id"],
        "name": "Events",
        "format": "numeric",
        "interval": 7,
        "display": "number",
        "filters": {"events": [{"id": "$pageview", "type": "events"}]},
        "math": "count",
        "math_property": None,
    }
    assert http.get(f"{METRICS}{metric['id']}/").json() == metric


DW = {"source": "data_warehouse", "table_name": "t"}
METRIC_ERRORS = [
    ({"name": None}, "null", "This field may not be null.", "name"),
    ({"name": "m" * 256}, "max_length", "Ensure this field has no more than 255 characters.", "name"),
    ({"filters": []}, "not_a_dict", 'Expected a dictionary of items but got type "list".', "filters"),
    ({"filters": None}, "null", "This field may not be null.", "filters"),
    ({"format": "x"}, "invalid_choice", '"x" is not a valid choice.', "format"),
    ({"display": "pie"}, "invalid_choice", '"pie" is not a valid choice.', "display"),
    ({"math": "avg"}, "invalid_choice", '"avg" is not a valid choice.', "math"),
    ({"interval": "abc"}, "invalid_input", "A valid integer is required.", "interval"),
    ({"interval": -(2**31) - 1}, "min_value", "Ensure this value is greater than or equal to -2147483648.", "interval"),
    ({"math": "sum"}, "invalid_input", "math_property is required when math is 'sum'.", "math_property"),
    ({"math_property": "x"}, "invalid_input", "math_property must be empty when math is 'count'.", "math_property"),
    ({"filters": {"source": "logs"}}, "invalid_input", "Unknown source: 'logs'", "filters"),
    (
        {"filters": DW},
        "invalid_input",
        "Data warehouse metrics require table_name, timestamp_field, key_field.",
        "filters",
    ),
    (
        {"filters": {**DW, "timestamp_field": "ts", "key_field": "k"}},
        "invalid_input",
        "Data warehouse table 't' does not exist.",
        "filters",
    ),
]


@pytest.mark.parametrize(("change", "code", "detail", "attr"), METRIC_ERRORS)
def test_metric_validation(http: httpx.Client, change: dict[str, Any], code: str, detail: str, attr: str) -> None:
    response = http.post(METRICS, json={"name": "m", "filters": {}, **change})
    assert response.status_code == 400
    assert response.json() == error(code, detail, attr)


def test_metric_required_fields(http: httpx.Client) -> None:
    assert http.post(METRICS, json={"filters": {}}).json() == error("required", "This field is required.", "name")
    assert http.post(METRICS, json={"name": "m"}).json() == error("required", "This field is required.", "filters")


def test_metric_sum_and_lax_values(http: httpx.Client) -> None:
    body = {"name": "Revenue", "filters": {"source": "events"}, "math": "sum", "math_property": "amount"}
    metric = create(http, METRICS, **body, interval="30", format="currency", display="sparkline")
    assert (metric["math"], metric["math_property"], metric["interval"]) == ("sum", "amount", 30)
    assert (metric["format"], metric["display"]) == ("currency", "sparkline")


def test_metric_name_is_unique_per_group_type(http: httpx.Client) -> None:
    create(http, METRICS, name="m", filters={})
    duplicate = http.post(METRICS, json={"name": "m", "filters": {}})
    assert duplicate.status_code == 400 and duplicate.json()["attr"] == "name"
    create(http, "/api/projects/1/groups_types/1/metrics/", name="m", filters={})
    other = create(http, METRICS, name="n", filters={})
    assert http.patch(f"{METRICS}{other['id']}/", json={"name": "m"}).json()["attr"] == "name"


def test_metrics_are_scoped_by_group_type_index(http: httpx.Client) -> None:
    metric = create(http, METRICS, name="m", filters={})
    assert http.get("/api/projects/1/groups_types/1/metrics/").json()["count"] == 0
    assert http.get(f"/api/projects/1/groups_types/1/metrics/{metric['id']}/").status_code == 404
    assert http.get(f"/api/projects/2/groups_types/0/metrics/{metric['id']}/").status_code == 404
    assert http.get("/api/projects/1/groups_types/abc/metrics/").status_code == 404
    assert http.post("/api/projects/1/groups_types/x/metrics/", json={"name": "m", "filters": {}}).status_code == 404


def test_metric_patch_put_and_delete(http: httpx.Client) -> None:
    metric = create(http, METRICS, name="m", filters={}, interval=30, display="sparkline")
    url = f"{METRICS}{metric['id']}/"
    patched = http.patch(url, json={"name": "renamed"}).json()
    assert (patched["name"], patched["interval"], patched["display"]) == ("renamed", 30, "sparkline")
    refused = http.patch(url, json={"math": "sum"})
    assert refused.json()["detail"] == "math_property is required when math is 'sum'."
    summed = http.patch(url, json={"math": "sum", "math_property": "amount"}).json()
    assert summed["math"] == "sum"
    back_to_count = http.put(url, json={"name": "full", "filters": {"events": []}, "math_property": None}).json()
    assert back_to_count["interval"] == 7 and back_to_count["display"] == "number"
    assert back_to_count["math"] == "count" and back_to_count["math_property"] is None
    assert http.delete(url).status_code == 204
    assert http.get(url).status_code == 404


def test_metric_list_pagination(http: httpx.Client, server: ServerThread) -> None:
    for i in range(5):
        create(http, METRICS, name=f"m{i}", filters={})
    page = http.get(METRICS, params={"limit": 2, "offset": 2}).json()
    assert page["count"] == 5 and [m["name"] for m in page["results"]] == ["m2", "m3"]
    assert page["next"] == f"{server.url}{METRICS}?limit=2&offset=4"
    assert page["previous"] == f"{server.url}{METRICS}?limit=2"


# Organisation members


def test_members_list(http: httpx.Client, server: ServerThread) -> None:
    response = http.get(MEMBERS, headers=bearer("phx_members"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    ana = next(m for m in body["results"] if m["user"]["id"] == 7)
    assert ana["user"]["email"] == "ana@example.com" and ana["user"]["first_name"] == "Ana"
    assert ana["user"]["is_email_verified"] is True
    assert (ana["level"], ana["is_2fa_enabled"], ana["has_social_auth"]) == (1, False, False)
    uuid.UUID(ana["id"])
    uuid.UUID(ana["user"]["uuid"])
    assert ISO.match(ana["joined_at"]) and ISO.match(ana["updated_at"])
    first = http.get(MEMBERS, params={"limit": 1}).json()
    assert len(first["results"]) == 1 and first["next"] == f"{server.url}{MEMBERS}?limit=1&offset=1"


def test_members_scopes(http: httpx.Client) -> None:
    denied = http.get(MEMBERS, headers=bearer("phx_ro"))
    assert denied.status_code == 403
    assert denied.json()["detail"] == "API key missing required scope 'organization_member:read'"
    scoped = http.get(MEMBERS, headers=bearer("phx_p2"))
    assert scoped.status_code == 403
    assert scoped.json()["detail"] == "API keys with scoped projects are only supported on project-based endpoints."


def test_admin_adds_members_and_reset_restores_config(http: httpx.Client) -> None:
    http.post("/_sandbox/members", json={"id": 9, "email": "chloe@example.com"})
    assert http.get(MEMBERS).json()["count"] == 3
    http.post("/_sandbox/reset")
    assert http.get(MEMBERS).json()["count"] == 2


# Admin: seed, reset, faults


def test_seed_and_reset(http: httpx.Client) -> None:
    assert http.post("/_sandbox/seed", json={"count": 30, "tags": ["Seeded"]}).json() == {"created": 30}
    assert http.post("/_sandbox/seed", json={"start": 20, "count": 20}).json() == {"created": 10}
    listing = http.get(ACCOUNTS, params={"search": "acct-00005"}).json()
    assert listing["count"] == 1 and listing["results"][0]["tags"] == ["seeded"]
    create(http, METRICS, name="m", filters={})
    http.post("/_sandbox/reset")
    assert http.get(ACCOUNTS).json()["count"] == 0
    assert http.get(METRICS).json()["count"] == 0


def test_faults_answer_in_posthogs_shape(http: httpx.Client) -> None:
    http.post("/_sandbox/faults", json={"rate_429": 1.0, "retry_after_s": 3})
    throttled = http.get(ACCOUNTS)
    assert throttled.status_code == 429 and "retry-after" not in throttled.headers  # PostHog sends none
    assert throttled.json() == {
        "type": "throttled_error",
        "code": "throttled",
        "detail": "Request was throttled. Expected available in 3 seconds.",
        "attr": None,
    }
    http.post("/_sandbox/faults", json={"rate_5xx": 1.0})
    failed = http.get(ACCOUNTS)
    assert failed.status_code == 500
    assert failed.json() == {
        "type": "server_error",
        "code": "error",
        "detail": "A server error occurred.",
        "attr": None,
    }
    http.post("/_sandbox/faults", json={})
    stats = http.get("/_sandbox/stats").json()
    assert stats["faults_injected"] == {"429": 1, "500": 1}


# Concurrency


def test_concurrent_writes_from_many_clients(http: httpx.Client, server: ServerThread) -> None:
    def writer(worker: int) -> list[str]:
        stamps = []
        with httpx.Client(base_url=server.url, headers=bearer("phx_all"), trust_env=False) as client:
            for i in range(25):
                response = client.post(ACCOUNTS, json={"name": f"w{worker}-{i}", "external_id": f"w{worker}-{i}"})
                stamps.append(response.json()["updated_at"])
        return stamps

    with ThreadPoolExecutor(max_workers=8) as pool:
        stamps = [stamp for batch in pool.map(writer, range(8)) for stamp in batch]
    assert len(set(stamps)) == 200
    assert http.get(ACCOUNTS).json()["count"] == 200
    requests = http.get("/_sandbox/stats").json()["requests"]
    template = "/api/environments/{project_id}/accounts/"
    assert [r for r in requests if r["method"] == "POST" and r["route"] == template] == [
        {"method": "POST", "route": template, "status": 201, "count": 200}
    ]


# Persistence


def test_data_survives_a_restart_with_a_file_database(tmp_path: Path) -> None:
    config = PostHogSandboxConfig(db_path=str(tmp_path / "posthog.sqlite3"))
    first_app = create_app(config)
    with serving(first_app) as first, httpx.Client(base_url=first.url, headers=bearer("phx_sandbox")) as h:
        account = create(h, name="kept", external_id="acct-1", tags=["t"], properties={"sfdc_id": "001"})
        metric = create(h, METRICS, name="m", filters={})
    first_app.state.store.close()
    second_app = create_app(config)
    with serving(second_app) as second, httpx.Client(base_url=second.url, headers=bearer("phx_sandbox")) as h:
        assert h.get(f"{ACCOUNTS}{account['id']}/").json() == account
        assert h.get(f"{METRICS}{metric['id']}/").json() == metric
        assert h.post(ACCOUNTS, json={"name": "dup", "external_id": "acct-1"}).status_code == 409
        later = h.patch(f"{ACCOUNTS}{account['id']}/", json={"name": "renamed"}).json()
        assert later["updated_at"] > account["updated_at"]
        newer = create(h, name="new")
        assert newer["id"] > account["id"]
    second_app.state.store.close()


# Config specs (CLI)


def test_key_and_member_specs() -> None:
    assert parse_key_spec("phx_p2=*@2,3") == ApiKey("phx_p2", ("*",), (2, 3))
    assert parse_key_spec("phx_ro=account:read,usage_metric:read") == ApiKey(
        "phx_ro", ("account:read", "usage_metric:read")
    )
    assert parse_member_spec("7:ana@example.com") == Member(7, "ana@example.com")
    for bad in ("nokey", "=*", "k=", "k=account:admin", "k=*@x"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_key_spec(bad)
    for bad in ("ana@example.com", "x:ana@example.com", "7:ana"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_member_spec(bad)


def test_ten_thousand_accounts_page_by_thousand(http: httpx.Client) -> None:
    assert http.post("/_sandbox/seed", json={"count": 10_000}).json() == {"created": 10_000}
    page = http.get(ACCOUNTS, params={"limit": 1000, "offset": 5000}).json()
    assert len(page["results"]) == 1000 and page["count"] == 10_000
    assert page["next"].endswith("?limit=1000&offset=6000")
    assert page["previous"].endswith("?limit=1000&offset=4000")
