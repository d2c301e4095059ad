"""The stand-in's query API over its event log, read against PostHog's source (``posthog/api/query.py``, the
``HogQLQueryResponse`` schema, ``products/customer_analytics/backend/events.py``)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sync.custom_values import DisplayType
from sync.posthog import PostHogClient
from sync.posthog.changes import CHANGES_QUERY
from sync.posthog.custom_properties import create_definition, set_value
from tests.conftest import POSTHOG_KEY, PostHogSandbox
from tests.support.current_posthog import posthog_server  # noqa: F401 (this module's stand-in: current)


def post(posthog: PostHogSandbox, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {POSTHOG_KEY}"}
    return httpx.post(f"{posthog.url}{path}", json=body, headers=headers, trust_env=False)


def query(text: str, **values: Any) -> dict[str, Any]:
    return {"query": {"kind": "HogQLQuery", "query": text, "values": values}}


def test_the_query_api_answers_the_change_query_in_posthogs_shape(posthog: PostHogSandbox, ph: PostHogClient) -> None:
    account = ph.create_account("Acme", "acme", {})
    score = create_definition(ph, "Score", DisplayType.NUMBER)
    set_value(ph, account.id, score.id, "7")
    set_value(ph, account.id, score.id, 7)  # the same value again: stored anew, no event
    set_value(ph, account.id, score.id, 8.5)
    answer = post(
        posthog,
        "/api/projects/1/query/",
        query(CHANGES_QUERY, events=["$account_custom_property_changed"], since="2000-01-01T00:00:00Z"),
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["columns"] == ["uuid", "event", "timestamp", "properties"] and body["hasMore"] is False
    assert [t[0] for t in body["types"]] == body["columns"]
    props = [json.loads(row[3]) for row in body["results"]]
    assert [(p["previous_value"], p["current_value"]) for p in props] == [(None, 7.0), (7.0, 8.5)]
    assert props[0]["property_name"] == "Score" and props[0]["account_id"] == account.id
    assert props[0]["data_type"] == "numeric" and props[0]["actor_type"] == "user"
    assert all(row[2].endswith("Z") for row in body["results"])

    later = post(
        posthog,
        "/api/projects/1/query/",
        query(CHANGES_QUERY, events=["$account_custom_property_changed"], since=body["results"][1][2]),
    )
    assert len(later.json()["results"]) == 1  # from a timestamp on, inclusive


def test_any_other_query_is_refused_with_posthogs_400(posthog: PostHogSandbox) -> None:
    for body in (
        query("SELECT count() FROM events"),
        {"query": {"kind": "EventsQuery", "select": ["*"]}},
        query(CHANGES_QUERY, events="$account_custom_property_changed", since="2000-01-01"),
        query(CHANGES_QUERY, events=[], since="last tuesday"),
    ):
        answer = post(posthog, "/api/projects/1/query/", body)
        assert answer.status_code == 400
        assert set(answer.json()) == {"type", "code", "detail", "attr"} and answer.json()["type"] == "validation_error"
