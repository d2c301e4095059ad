"""The PostHog stand-in's three API generations over loopback HTTP (``docs/posthog.md``, "Three generations").

seed: roles in ``properties``; transitional: roles in ``properties`` mirrored into relationship rows; current:
roles refused in ``properties`` and served by the relationship endpoints, the short 404 body, current-only
account fields, the email-matching lists guarded by the membership level, PostHog's events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.common import serving
from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig, create_app
from sandbox.posthog.config import LEVEL_MEMBER, Generation

ACCOUNTS = "/api/environments/1/accounts/"
PROJECT_ACCOUNTS = "/api/projects/1/accounts/"
DEFINITIONS = "/api/projects/1/account_relationship_definitions/"
ANA = Member(7, "ana@example.com", "Ana")
BEN = Member(8, "ben@example.com", "Ben")
CSM_ANA = {"id": 7, "email": "ana@example.com"}


def _client(generation: Generation, **config: Any) -> Iterator[httpx.Client]:
    settings = PostHogSandboxConfig(
        generation=generation, keys=(ApiKey("phx_all", ("*",)),), members=(ANA, BEN), **config
    )
    with (
        serving(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer phx_all"}, trust_env=False) as http,
    ):
        yield http


@pytest.fixture(scope="module", params=["seed", "transitional", "current"])
def any_generation(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    yield from _client(request.param)


@pytest.fixture(scope="module")
def seed() -> Iterator[httpx.Client]:
    yield from _client("seed")


@pytest.fixture(scope="module")
def transitional() -> Iterator[httpx.Client]:
    yield from _client("transitional")


@pytest.fixture(scope="module")
def current() -> Iterator[httpx.Client]:
    yield from _client("current")


@pytest.fixture(autouse=True)
def _empty(request: pytest.FixtureRequest) -> None:
    for name in ("any_generation", "seed", "transitional", "current"):
        if name in request.fixturenames:
            request.getfixturevalue(name).post("/_sandbox/reset").raise_for_status()


def created(http: httpx.Client, path: str = ACCOUNTS, **body: Any) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def definitions(http: httpx.Client, *names: str) -> dict[str, str]:
    return {name: created(http, DEFINITIONS, name=name)["id"] for name in names}


def relationships(http: httpx.Client, account_id: str, history: bool = False) -> list[dict[str, Any]]:
    query = "?include_history=true" if history else ""
    response = http.get(f"/api/projects/1/accounts/{account_id}/relationships/{query}")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


# Every generation


def test_accounts_are_served_under_projects_too(any_generation: httpx.Client) -> None:
    account = created(any_generation, PROJECT_ACCOUNTS, name="Acme")
    assert any_generation.get(f"{ACCOUNTS}{account['id']}/").json()["name"] == "Acme"
    assert [a["id"] for a in any_generation.get(PROJECT_ACCOUNTS).json()["results"]] == [account["id"]]


def test_the_project_names_its_organization_and_its_members_are_listed_by_it(any_generation: httpx.Client) -> None:
    project = any_generation.get("/api/projects/1/").json()
    assert project["id"] == 1 and project["organization"]
    by_id = any_generation.get(f"/api/organizations/{project['organization']}/members/")
    current = any_generation.get("/api/organizations/@current/members/")
    assert by_id.status_code == 200 and by_id.json()["results"] == current.json()["results"]
    assert any_generation.get("/api/organizations/0190f3a5-0000-7000-8000-00000000dead/members/").status_code == 404


def test_a_usage_metric_interval_has_no_minimum(any_generation: httpx.Client) -> None:
    response = any_generation.post(
        "/api/projects/1/groups_types/0/metrics/", json={"name": "m", "filters": {}, "interval": 0}
    )
    assert response.status_code == 201 and response.json()["interval"] == 0


def test_a_throttled_request_has_no_retry_after_unless_a_proxy_adds_it() -> None:
    for proxy in (False, True):
        for http in _client("current", throttle=(), proxy_retry_after=proxy):
            http.post("/_sandbox/throttle", json={"rates": ["1/3600"]}).raise_for_status()
            assert http.get(ACCOUNTS).status_code == 200
            refused = http.get(ACCOUNTS)
            assert refused.status_code == 429
            assert refused.json()["detail"].startswith("Request was throttled. Expected available in ")
            assert ("Retry-After" in refused.headers) is proxy
            http.post("/_sandbox/faults", json={"rate_429": 1.0, "retry_after_s": 3})
            faulted = http.get(ACCOUNTS)
            assert faulted.json()["detail"] == "Request was throttled. Expected available in 3 seconds."
            assert faulted.headers.get("Retry-After") == ("3" if proxy else None)
            assert http.get("/_sandbox/stats").json()["throttled"] >= 1


# Role keys in properties


def test_seed_stores_roles_in_properties_and_filters_by_them(seed: httpx.Client) -> None:
    account = created(seed, name="Acme", properties={"csm": CSM_ANA})
    created(seed, name="Other")
    assert account["properties"] == {"csm": CSM_ANA}
    assert "churned_at" not in account and "slack_summary_cadence" not in account
    assert [a["name"] for a in seed.get(ACCOUNTS, params={"csm": 7}).json()["results"]] == ["Acme"]
    assert seed.get("/api/projects/1/account_relationship_definitions/").status_code == 404


def test_transitional_mirrors_json_roles_into_relationships(transitional: httpx.Client) -> None:
    ids = definitions(transitional, "CSM", "Account executive")
    account = created(transitional, name="Acme", properties={"csm": CSM_ANA, "account_executive": CSM_ANA})
    assert account["properties"]["csm"] == CSM_ANA  # still stored: JSON is the source of truth
    active = relationships(transitional, account["id"])
    assert {(r["definition"]["name"], r["user"]["id"]) for r in active} == {("CSM", 7), ("Account executive", 7)}

    # the CSM changes hands; account_executive is left out of the JSON, which ends that relationship
    patch = {"properties": {"csm": {"id": 8, "email": "ben@example.com"}}}
    assert transitional.patch(f"{ACCOUNTS}{account['id']}/", json=patch).status_code == 200
    assert [(r["definition"]["id"], r["user"]["id"]) for r in relationships(transitional, account["id"])] == [
        (ids["CSM"], 8)
    ]
    history = relationships(transitional, account["id"], history=True)
    assert sorted((r["definition"]["name"], r["user"]["id"], r["ended_at"] is None) for r in history) == [
        ("Account executive", 7, False),
        ("CSM", 7, False),
        ("CSM", 8, True),
    ]
    # a user PostHog does not know is skipped; the JSON keeps it
    unknown = {"properties": {"csm": {"id": 999, "email": "x@example.com"}}}
    assert transitional.patch(f"{ACCOUNTS}{account['id']}/", json=unknown).json()["properties"] == unknown["properties"]
    assert [r["user"]["id"] for r in relationships(transitional, account["id"])] == [8]
    assert transitional.get("/_sandbox/events").json() == []  # the transitional sync emitted no events


def test_transitional_serves_no_assign_or_end(transitional: httpx.Client) -> None:
    ids = definitions(transitional, "CSM")
    account = created(transitional, name="Acme")
    path = f"/api/projects/1/accounts/{account['id']}/relationships/"
    assert transitional.post(path, json={"definition": ids["CSM"], "user": 7}).status_code == 405


def test_current_refuses_role_keys_and_hides_stored_ones(current: httpx.Client) -> None:
    refused = current.post(ACCOUNTS, json={"name": "Acme", "properties": {"account_owner": CSM_ANA}})
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "account_owner: Extra inputs are not permitted",
        "attr": "properties",
    }
    account = created(current, name="Acme", properties={"metabase_link": "https://m", "email_domains": ["acme.io"]})
    assert account["properties"] == {"metabase_link": "https://m", "email_domains": ["acme.io"]}
    assert (account["churned_at"], account["ignored_at"], account["slack_summary_cadence"]) == (None, None, None)


def test_current_ignores_role_filters_and_hides_churned_accounts(current: httpx.Client) -> None:
    created(current, name="Live")
    created(current, name="Gone", churned_at="2026-09-01T10:00:00")
    assert [a["name"] for a in current.get(ACCOUNTS, params={"csm": 7}).json()["results"]] == ["Live"]
    everything = current.get(ACCOUNTS, params={"include_churned": "TRUE"}).json()["results"]
    assert sorted(a["name"] for a in everything) == ["Gone", "Live"]
    gone = next(a for a in everything if a["name"] == "Gone")
    assert gone["churned_at"] == "2026-09-01T10:00:00.000000Z"


def test_current_all_roles_unassigned_reads_relationships(current: httpx.Client) -> None:
    ids = definitions(current, "CSM")
    held = created(current, name="Held")
    created(current, name="Free")
    path = f"/api/projects/1/accounts/{held['id']}/relationships/"
    assert current.post(path, json={"definition": ids["CSM"], "user": 7}).status_code == 201
    names = [a["name"] for a in current.get(ACCOUNTS, params={"all_roles_unassigned": "true"}).json()["results"]]
    assert names == ["Free"]


def test_current_404_is_the_short_body(current: httpx.Client) -> None:
    missing = current.get(f"{ACCOUNTS}0190f3a5-0000-7000-8000-000000000000/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    unknown_project = current.get("/api/environments/99/accounts/")
    assert unknown_project.json()["code"] == "not_found"  # raised by the routing mixin: the full body


def test_older_generations_keep_the_full_404_body(seed: httpx.Client) -> None:
    missing = seed.get(f"{ACCOUNTS}0190f3a5-0000-7000-8000-000000000000/")
    assert missing.json() == {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}


def test_current_writable_and_read_only_fields(current: httpx.Client) -> None:
    account = created(current, name="Acme", slack_summary_cadence="weekly")
    path = f"{ACCOUNTS}{account['id']}/"
    patched = current.patch(path, json={"churned_at": "2026-09-01T10:00:00+02:00", "ignored_at": "2026-01-01"})
    assert patched.json()["churned_at"] == "2026-09-01T08:00:00.000000Z" and patched.json()["ignored_at"] is None
    bad = current.patch(path, json={"slack_summary_cadence": "hourly"})
    assert bad.status_code == 400 and bad.json()["attr"] == "slack_summary_cadence"
    assert current.patch(path, json={"churned_at": "soon"}).json()["attr"] == "churned_at"
    assert current.patch(path, json={"churned_at": None}).json()["churned_at"] is None


def test_changing_email_matching_lists_needs_an_org_admin() -> None:
    for level, status in ((LEVEL_MEMBER, 403), (8, 200)):
        for http in _client("current", key_owner_level=level):
            account = created(http, name="Acme", properties={"email_domains": ["acme.io"]})
            path = f"{ACCOUNTS}{account['id']}/"
            same = http.patch(path, json={"properties": {"email_domains": ["acme.io"], "sfdc_id": "1"}})
            assert same.status_code == 200  # unchanged lists are no change
            changed = http.patch(path, json={"properties": {"known_emails": ["a@acme.io"]}})
            assert changed.status_code == status, changed.text
            if status == 403:
                assert changed.json()["detail"] == "You do not have permission to perform this action."


# Relationships (current)


def test_relationship_definitions_crud(current: httpx.Client) -> None:
    definition = created(current, DEFINITIONS, name="CSM", description="Customer success")
    assert definition["is_single_holder"] is True
    taken = current.post(DEFINITIONS, json={"name": "CSM"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == "A relationship definition with this name already exists for this team."
    path = f"{DEFINITIONS}{definition['id']}/"
    assert current.patch(path, json={"is_single_holder": "false"}).json()["is_single_holder"] is False
    assert current.post(DEFINITIONS, json={"name": "x" * 401}).json()["code"] == "max_length"
    assert current.get(DEFINITIONS).json()["count"] == 1
    assert current.delete(path).status_code == 204
    assert current.get(path).json() == {"detail": "Not found."}


def test_assign_hands_off_a_single_holder_and_is_a_no_op_for_the_holder(current: httpx.Client) -> None:
    ids = definitions(current, "CSM")
    account = created(current, name="Acme", external_id="acme")
    path = f"/api/projects/1/accounts/{account['id']}/relationships/"
    first = current.post(path, json={"definition": ids["CSM"], "user": 7})
    assert first.status_code == 201 and first.json()["user"] == CSM_ANA and first.json()["ended_at"] is None
    again = current.post(path, json={"definition": ids["CSM"], "user": 7})
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    second = current.post(path, json={"definition": ids["CSM"], "user": 8}).json()
    assert [r["id"] for r in relationships(current, account["id"])] == [second["id"]]
    assert len(relationships(current, account["id"], history=True)) == 2

    ended = current.post(f"{path}{second['id']}/end/")
    assert ended.status_code == 200 and ended.json()["ended_at"] is not None
    assert current.post(f"{path}{second['id']}/end/").json() == {"detail": "Not found."}
    assert relationships(current, account["id"]) == []

    events = current.get("/_sandbox/events").json()
    changes = [
        (e["properties"]["change_type"], e["properties"]["previous_user_id"], e["properties"]["current_user_id"])
        for e in events
    ]
    assert changes == [("assigned", None, 7), ("assigned", 7, 8), ("unassigned", 8, None)]
    assert {e["event"] for e in events} == {"$account_relationship_changed"}
    first_event = events[0]
    assert first_event["properties"]["relationship_name"] == "CSM"
    assert first_event["properties"]["account_external_id"] == "acme"
    assert first_event["properties"]["actor_type"] == "user" and first_event["timestamp"].endswith("Z")


def test_multi_holder_definitions_keep_every_holder(current: httpx.Client) -> None:
    definition = created(current, DEFINITIONS, name="Champions", is_single_holder=False)
    account = created(current, name="Acme")
    path = f"/api/projects/1/accounts/{account['id']}/relationships/"
    for user in (7, 8):
        assert current.post(path, json={"definition": definition["id"], "user": user}).status_code == 201
    assert sorted(r["user"]["id"] for r in relationships(current, account["id"])) == [7, 8]


def test_assign_refusals(current: httpx.Client) -> None:
    ids = definitions(current, "CSM")
    account = created(current, name="Acme")
    path = f"/api/projects/1/accounts/{account['id']}/relationships/"
    not_member = current.post(path, json={"definition": ids["CSM"], "user": 999})
    assert not_member.status_code == 400
    assert (not_member.json()["attr"], not_member.json()["detail"]) == (
        "user",
        "User is not a member of this organization.",
    )
    unknown = current.post(path, json={"definition": "0190f3a5-0000-7000-8000-000000000000", "user": 7})
    assert (unknown.json()["attr"], unknown.json()["detail"]) == ("definition", "Relationship definition not found.")
    assert current.post(path, json={"definition": "nope", "user": 7}).json()["detail"] == "Must be a valid UUID."
    assert current.post(path, json={"user": 7}).json()["code"] == "required"
    missing_account = "/api/projects/1/accounts/0190f3a5-0000-7000-8000-000000000000/relationships/"
    assert current.post(missing_account, json={"definition": ids["CSM"], "user": 7}).json() == {"detail": "Not found."}
    assert current.get("/_sandbox/stats").json()["by_method"]["POST"] >= 5


def test_a_person_may_change_a_controlled_role(current: httpx.Client) -> None:
    """Migration 0053: only autonomous writers are refused on a controlled role; a personal API key acts for
    its user, so the write goes through and the control's timestamp advances."""
    ids = definitions(current, "Account executive")
    account = created(current, name="Acme")
    control = current.post(
        "/_sandbox/relationship_controls", json={"account_id": account["id"], "definition_id": ids["Account executive"]}
    ).json()["controlled_at"]
    path = f"/api/projects/1/accounts/{account['id']}/relationships/"
    assert current.post(path, json={"definition": ids["Account executive"], "user": 7}).status_code == 201
    after = current.get(f"/_sandbox/relationship_controls/{account['id']}").json()[ids["Account executive"]]
    assert after > control


def test_deleting_an_account_deletes_its_relationships(current: httpx.Client) -> None:
    ids = definitions(current, "CSM")
    account = created(current, name="Acme")
    current.post(f"/api/projects/1/accounts/{account['id']}/relationships/", json={"definition": ids["CSM"], "user": 7})
    assert current.delete(f"{ACCOUNTS}{account['id']}/").status_code == 204
    again = created(current, name="Acme 2")
    assert relationships(current, again["id"], history=True) == []
