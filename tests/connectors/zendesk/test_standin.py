"""The Zendesk stand-in speaks the Support API as Zendesk documents it: API token authentication, cursor
pagination, show_many, the incremental export and its own lower limit, update_many jobs, organization fields,
429 with Retry-After. Counted, never timed."""

from __future__ import annotations

import base64

import httpx

from sandbox.identities import company
from sandbox.zendesk.config import EMAIL, TOKEN
from sandbox.zendesk.store import ORG_BASE
from tests.connectors.zendesk.conftest import ZendeskStandIn


def test_api_token_authentication(standin: ZendeskStandIn) -> None:
    assert standin.api("/api/v2/organizations").status_code == 200
    wrong = [
        {},
        {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}/token:nope".encode()).decode()},
        {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()},  # a password login
        {"Authorization": f"Bearer {TOKEN}"},
    ]
    for headers in wrong:
        response = standin.admin.get("/api/v2/organizations", headers=headers)
        assert response.status_code == 401 and response.json() == {"error": "Couldn't authenticate you"}
    assert standin.count(status=401) == len(wrong)


def test_cursor_pagination(standin: ZendeskStandIn) -> None:
    standin.admin.post("/_sandbox/seed", json={"count": 7, "start": 100}).raise_for_status()
    seen: list[int] = []
    params: dict[str, str | int] = {"page[size]": 3}
    pages = 0
    while True:
        body = standin.api("/api/v2/organizations", params=params).json()
        pages += 1
        seen.extend(o["id"] for o in body["organizations"])
        assert set(body["meta"]) >= {"has_more", "after_cursor", "before_cursor"} and set(body["links"]) == {
            "next",
            "prev",
        }
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            break
        assert f"page%5Bafter%5D={body['meta']['after_cursor']}" in body["links"]["next"]
        params = {"page[size]": 3, "page[after]": body["meta"]["after_cursor"]}
    assert seen == [ORG_BASE + i for i in range(100, 107)] and pages == 3
    too_big = standin.api("/api/v2/organizations", params={"page[size]": 101})
    assert too_big.status_code == 400 and too_big.json()["error"] == "InvalidPaginationParameter"
    org = standin.org(str(ORG_BASE + 100))
    assert (org["name"], org["external_id"], org["domain_names"]) == (
        company(100).name,
        company(100).external_id,
        [company(100).domain],
    )


def test_show_many_takes_up_to_100_ids(standin: ZendeskStandIn) -> None:
    ids = [standin.create() for _ in range(3)]
    body = standin.api("/api/v2/organizations/show_many", params={"ids": ",".join([*ids, "999"])}).json()
    assert sorted(str(o["id"]) for o in body["organizations"]) == sorted(ids)
    many = ",".join(str(n) for n in range(101))
    assert standin.api("/api/v2/organizations/show_many", params={"ids": many}).status_code == 400


def test_the_incremental_export_pages_and_has_its_own_lower_limit(standin: ZendeskStandIn) -> None:
    ids = [standin.create() for _ in range(6)]
    for n, org_id in enumerate(ids):  # changed at 1,000,000 + 0, 0, 1, 1, 2, 2 seconds
        standin.admin.post(f"/_sandbox/organizations/{org_id}/updated_at", json={"at": 1_000_000 + n // 2})
    standin.limits(export_page_size=3, export_requests_per_minute=3, requests_per_minute=100)
    pages = []
    start = 1_000_000
    while True:
        body = standin.api("/api/v2/incremental/organizations", params={"start_time": start}).json()
        pages.append([str(o["id"]) for o in body["organizations"]])
        if body["end_of_stream"]:
            assert body["next_page"] is None
            break
        assert body["next_page"].endswith(f"start_time={body['end_time']}")
        start = body["end_time"]
    assert pages == [ids[:4], ids[4:]]  # three asked, then the rest of the last one's second: none split, none lost
    refused = standin.api("/api/v2/incremental/organizations", params={"start_time": 0})
    assert refused.status_code == 200  # the third of three this minute
    refused = standin.api("/api/v2/incremental/organizations", params={"start_time": 0})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "APIRateLimitExceeded"
    assert standin.api("/api/v2/organizations/show_many", params={"ids": ids[0]}).status_code == 200  # others go on
    assert standin.count(route="/api/v2/incremental/organizations", status=429) == 1


def test_the_account_limit_answers_429_with_retry_after(standin: ZendeskStandIn) -> None:
    standin.limits(requests_per_minute=2)
    statuses = [standin.api("/api/v2/organizations", params={"page[size]": 1}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert standin.admin.get("/_sandbox/stats").json()["throttled"] == 1


def test_a_bulk_update_is_a_job_followed_through_its_status(standin: ZendeskStandIn) -> None:
    ids = [standin.create() for _ in range(3)]
    batch = {"organizations": [{"id": int(i), "organization_fields": {"posthog_account_id": f"a-{i}"}} for i in ids]}
    batch["organizations"].append({"id": 12345, "organization_fields": {"posthog_account_id": "x"}})
    queued = standin.api("/api/v2/organizations/update_many", "PUT", json=batch).json()["job_status"]
    assert queued["status"] == "queued" and queued["total"] == 4
    assert standin.org(ids[0])["organization_fields"]["posthog_account_id"] is None  # not run yet
    working = standin.api(f"/api/v2/job_statuses/{queued['id']}").json()["job_status"]
    assert working["status"] == "working"
    done = standin.api(f"/api/v2/job_statuses/{queued['id']}").json()["job_status"]
    assert done["status"] == "completed" and done["progress"] == 4
    assert [r.get("success", False) for r in done["results"]] == [True, True, True, False]
    assert [standin.org(i)["organization_fields"]["posthog_account_id"] for i in ids] == [f"a-{i}" for i in ids]
    over = {"organizations": [{"id": n} for n in range(101)]}
    assert standin.api("/api/v2/organizations/update_many", "PUT", json=over).status_code == 400


def test_organization_fields_must_exist_before_they_are_written(standin: ZendeskStandIn) -> None:
    org = standin.create()
    unknown = {"organization": {"organization_fields": {"no_such_field": "x"}}}
    refused = standin.api(f"/api/v2/organizations/{org}", "PUT", json=unknown)
    assert refused.status_code == 422 and refused.json()["error"] == "RecordInvalid"
    made = standin.api(
        "/api/v2/organization_fields", "POST", json={"organization_field": {"type": "text", "key": "no_such_field"}}
    )
    assert made.status_code == 201
    assert standin.api(f"/api/v2/organizations/{org}", "PUT", json=unknown).status_code == 200
    again = standin.api(
        "/api/v2/organization_fields", "POST", json={"organization_field": {"type": "text", "key": "no_such_field"}}
    )
    assert again.status_code == 422
    keys = [f["key"] for f in standin.api("/api/v2/organization_fields").json()["organization_fields"]]
    assert keys == ["posthog_account_id", "no_such_field"]


def test_faults_and_unrouted_paths_answer_in_zendesks_shape(standin: ZendeskStandIn) -> None:
    standin.faults(rate_429=1.0, retry_after_s=7)
    response = standin.api("/api/v2/organizations")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error"] == "APIRateLimitExceeded"
    standin.faults()
    missing = standin.api("/api/v2/no_such_thing")
    assert missing.status_code == 404 and missing.json() == {"error": "InvalidEndpoint", "description": "Not found"}
    assert isinstance(httpx.get(f"{standin.url}/_sandbox/health").json()["ok"], bool)
