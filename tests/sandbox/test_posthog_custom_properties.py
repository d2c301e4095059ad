"""Custom account properties on the PostHog stand-in over loopback HTTP: typed definitions (transitional and
current), per-account values with PostHog's coercion, the append-only history and the change events (current)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.common import serving
from sandbox.posthog.app import ApiKey, PostHogSandboxConfig, create_app
from sandbox.posthog.config import Generation

ACCOUNTS = "/api/projects/1/accounts/"
DEFS = "/api/projects/1/custom_property_definitions/"
ENV_DEFS = "/api/environments/1/custom_property_definitions/"
RED = {"label": "Red", "color": "preset-1"}
GREEN = {"label": "Green", "color": "preset-2"}


def _client(generation: Generation) -> Iterator[httpx.Client]:
    config = PostHogSandboxConfig(generation=generation, keys=(ApiKey("phx_all", ("*",)),))
    with (
        serving(create_app(config)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer phx_all"}, trust_env=False) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def current_server() -> Iterator[httpx.Client]:
    yield from _client("current")


@pytest.fixture
def current(current_server: httpx.Client) -> httpx.Client:
    current_server.post("/_sandbox/reset").raise_for_status()
    return current_server


def define(http: httpx.Client, name: str, display_type: str, **extra: Any) -> dict[str, Any]:
    response = http.post(DEFS, json={"name": name, "display_type": display_type, **extra})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def account(http: httpx.Client, name: str = "Acme") -> str:
    response = http.post(ACCOUNTS, json={"name": name, "external_id": name.lower()})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def put_value(http: httpx.Client, account_id: str, definition_id: str, value: Any) -> httpx.Response:
    return http.post(
        f"{ACCOUNTS}{account_id}/custom_property_values/", json={"definition": definition_id, "value": value}
    )


def test_generations_serve_what_their_source_had() -> None:
    for http in _client("seed"):
        assert http.get(DEFS).status_code == 404
    for http in _client("transitional"):
        assert define(http, "Plan", "select", options=[RED])["display_type"] == "select"
        assert http.post(DEFS, json={"name": "Site", "display_type": "link"}).json()["attr"] == "display_type"
        acme = account(http)
        assert put_value(http, acme, "0190f3a5-0000-7000-8000-000000000000", "x").status_code == 404  # no route


def test_definitions_crud_under_both_scopes(current: httpx.Client) -> None:
    arr = define(current, "ARR", "currency", is_big_number=True, description="Annual revenue")
    assert (arr["target_type"], arr["is_big_number"], arr["options"], arr["source"]) == ("account", True, None, None)
    assert current.get(f"{ENV_DEFS}{arr['id']}/").json()["name"] == "ARR"
    taken = current.post(ENV_DEFS, json={"name": "ARR", "display_type": "number"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == "A custom property with this name already exists for this team."
    # a numeric-only flag is dropped when the type stops being numeric
    assert current.patch(f"{DEFS}{arr['id']}/", json={"display_type": "text"}).json()["is_big_number"] is False
    assert define(current, "Notes", "text", is_big_number=True)["is_big_number"] is False
    assert [d["name"] for d in current.get(DEFS).json()["results"]] == ["ARR", "Notes"]
    assert current.delete(f"{DEFS}{arr['id']}/").status_code == 204
    assert current.get(f"{DEFS}{arr['id']}/").json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("body", "attr", "detail"),
    [
        ({"display_type": "select"}, "options", "A select property needs at least one option."),
        ({"display_type": "select", "options": []}, "options", "A select property needs at least one option."),
        ({"display_type": "select", "options": [{"label": " ", "color": "preset-1"}]}, "options__0__label",
         "This field may not be blank."),  # DRF's CharField trims first, before the facade's own check
        ({"display_type": "select", "options": [RED, RED]}, "options", "Duplicate option label: 'Red'."),
        ({"display_type": "select", "options": [{**RED, "id": "mine"}]}, "options",
         "Option ids are assigned by the server; omit them for new options."),
        ({"display_type": "select", "options": [{"label": "x", "color": "blue"}]}, "options__0__color",
         '"blue" is not a valid choice.'),
        ({"display_type": "colour"}, "display_type", '"colour" is not a valid choice.'),
        ({"display_type": "text", "target_type": "person"}, "target_type",
         "Person/group properties from warehouse data are not enabled yet."),
        ({"display_type": "text", "group_type_index": 1}, "group_type_index",
         "Only valid when target_type is 'group'."),
        ({}, "display_type", "This field is required."),
    ],
)  # fmt: skip
def test_definition_validation(current: httpx.Client, body: dict[str, Any], attr: str, detail: str) -> None:
    response = current.post(DEFS, json={"name": "P", **body})
    assert response.status_code == 400, response.text
    assert (response.json()["attr"], response.json()["detail"]) == (attr, detail)


def test_select_options_get_ids_and_renames_rewrite_values(current: httpx.Client) -> None:
    plan = define(current, "Plan", "select", options=[RED, GREEN])
    red, _green = plan["options"]
    assert red["id"] and red["label"] == "Red"
    acme, beta = account(current), account(current, "Beta")
    assert put_value(current, acme, plan["id"], "Red").status_code == 201
    assert put_value(current, beta, plan["id"], "Green").status_code == 201
    renamed = [{**red, "label": "Crimson"}]  # Green removed
    assert current.patch(f"{DEFS}{plan['id']}/", json={"options": renamed}).status_code == 200
    assert [v["value"] for v in current.get(f"{ACCOUNTS}{acme}/custom_property_values/").json()] == ["Crimson"]
    assert current.get(f"{ACCOUNTS}{beta}/custom_property_values/").json() == []


@pytest.mark.parametrize(
    ("display_type", "sent", "stored"),
    [
        ("number", 12, 12.0),
        ("currency", "1200.50", 1200.5),
        ("percent", -3.5, -3.5),
        ("text", "hello", "hello"),
        ("text", 42, "42"),
        ("boolean", True, True),
        ("boolean", " FALSE ", False),
        ("date", "2026-01-31", "2026-01-31T00:00:00Z"),
        ("datetime", "2026-01-31T10:00:00", "2026-01-31T10:00:00Z"),
        ("datetime", "2026-01-31T10:00:00.123456+02:00", "2026-01-31T08:00:00.123Z"),
        ("link", "https://acme.io/dash", "https://acme.io/dash"),
        ("select", "Red", "Red"),
    ],
)
def test_values_are_coerced_by_type(current: httpx.Client, display_type: str, sent: Any, stored: Any) -> None:
    extra = {"options": [RED]} if display_type == "select" else {}
    definition = define(current, "P", display_type, **extra)
    acme = account(current)
    response = put_value(current, acme, definition["id"], sent)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["value"], body["account_id"], body["definition_id"]) == (stored, acme, definition["id"])
    assert body["created_by_id"] == 1
    assert [v["value"] for v in current.get(f"{ACCOUNTS}{acme}/custom_property_values/").json()] == [stored]


@pytest.mark.parametrize(
    ("display_type", "sent", "detail"),
    [
        ("number", True, "Custom property 'P' expects a numeric value"),
        ("number", "twelve", "Custom property 'P' expects a numeric value"),
        ("currency", "nan", "Custom property 'P' expects a finite numeric value"),
        ("percent", "inf", "Custom property 'P' expects a finite numeric value"),
        ("boolean", "yes", "Custom property 'P' expects a boolean value"),
        ("boolean", 1, "Custom property 'P' expects a boolean value"),
        ("text", True, "Custom property 'P' expects a text value"),
        ("date", "31/01/2026", "Custom property 'P' expects an ISO-8601 datetime"),
        ("datetime", 1700000000, "Custom property 'P' expects an ISO-8601 datetime"),
        ("link", "ftp://acme.io", "Custom property 'P' expects an HTTP or HTTPS URL"),
        ("link", "acme.io", "Custom property 'P' expects an HTTP or HTTPS URL"),
        ("select", "red", "Custom property 'P' expects one of its options: Red"),
    ],
)
def test_values_that_do_not_fit_are_refused(current: httpx.Client, display_type: str, sent: Any, detail: str) -> None:
    extra = {"options": [RED]} if display_type == "select" else {}
    definition = define(current, "P", display_type, **extra)
    response = put_value(current, account(current), definition["id"], sent)
    assert response.status_code == 400
    assert response.json() == {"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": "value"}


def test_value_write_refusals(current: httpx.Client) -> None:
    definition = define(current, "P", "text")
    acme = account(current)
    for value in (None, {"a": 1}, [1]):
        refused = put_value(current, acme, definition["id"], value)
        assert refused.json()["detail"] == "Value must be a string, number, or boolean."
    missing = put_value(current, acme, "0190f3a5-0000-7000-8000-000000000000", "x")
    assert (missing.json()["attr"], missing.json()["detail"]) == ("definition", "Custom property definition not found.")
    gone = put_value(current, "0190f3a5-0000-7000-8000-000000000000", definition["id"], "x")
    assert gone.status_code == 404 and gone.json() == {"detail": "Not found."}
    # PostHog's own warehouse sync feeds it: API writes are closed
    current.post("/_sandbox/custom_property_sources", json={"definition_id": definition["id"]}).raise_for_status()
    assert current.get(f"{DEFS}{definition['id']}/").json()["source"]["source_column"] == "value"
    fed = put_value(current, acme, definition["id"], "x")
    assert fed.status_code == 400 and fed.json()["attr"] == "definition"
    assert (
        fed.json()["detail"] == "This custom property is managed by a data warehouse source and can't be set manually."
    )


def test_history_is_append_only_and_same_value_emits_no_event(current: httpx.Client) -> None:
    definition = define(current, "Health", "number")
    acme = account(current)
    for value in (7, "7", 8):
        assert put_value(current, acme, definition["id"], value).status_code == 201
    active = current.get(f"{ACCOUNTS}{acme}/custom_property_values/").json()
    assert [v["value"] for v in active] == [8.0]
    store = current.get("/_sandbox/events", params={"event": "$account_custom_property_changed"}).json()
    changes = [(e["properties"]["previous_value"], e["properties"]["current_value"]) for e in store]
    assert changes == [(None, 7.0), (7.0, 8.0)]
    first = store[0]
    assert first["properties"]["property_name"] == "Health" and first["properties"]["data_type"] == "numeric"
    assert first["properties"]["account_external_id"] == "acme" and first["distinct_id"]


def test_datetime_events_carry_iso_values(current: httpx.Client) -> None:
    definition = define(current, "Renewal", "date")
    acme = account(current)
    put_value(current, acme, definition["id"], "2026-03-01")
    event = current.get("/_sandbox/events").json()[-1]
    assert event["properties"]["current_value"] == "2026-03-01T00:00:00+00:00"


def test_new_routes_are_counted_and_take_faults(current: httpx.Client) -> None:
    definition = define(current, "P", "text")
    acme = account(current)
    current.post("/_sandbox/stats/reset")
    assert put_value(current, acme, definition["id"], "x").status_code == 201
    routes = {(r["method"], r["route"], r["status"]) for r in current.get("/_sandbox/stats").json()["requests"]}
    assert routes == {("POST", "/api/projects/{project_id}/accounts/{account_id}/custom_property_values/", 201)}
    current.post("/_sandbox/faults", json={"rate_5xx": 1.0})
    assert current.get(f"{ACCOUNTS}{acme}/custom_property_values/").status_code == 500
    assert current.get("/_sandbox/stats").json()["faults_injected"] == {"500": 1}
