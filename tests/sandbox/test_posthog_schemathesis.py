"""Schemathesis against the PostHog stand-in's own OpenAPI schema: no 500s, responses match the schema.

The schema is loaded from the in-process app (``from_asgi``). Every operation gets 25 generated requests
with a valid Bearer key. Half of the generated project ids, group type indexes and object ids are steered
onto seeded data (project 1, index 0, a real account or metric id), so the happy paths are exercised too,
not only the 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import experimental
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette_testclient import TestClient

from sandbox.posthog.app import Member, PostHogSandboxConfig, create_app

AUTH = {"Authorization": "Bearer phx_sandbox"}


CHECKS = (not_a_server_error, response_schema_conformance)


def _operations() -> list[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


@dataclass
class Target:
    schema: Any
    account_ids: list[str]
    metric_ids: list[str]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    was_enabled = experimental.OPEN_API_3_1.is_enabled
    experimental.OPEN_API_3_1.enable()
    try:
        app = create_app(PostHogSandboxConfig(members=(Member(7, "ana@example.com", "Ana"),)))
        client = TestClient(app)
        client.post("/_sandbox/seed", json={"count": 40, "tags": ["seeded"]})
        accounts = client.get("/api/environments/1/accounts/", headers=AUTH).json()["results"]
        metrics = [
            client.post(
                "/api/projects/1/groups_types/0/metrics/",
                json={"name": f"metric {i}", "filters": {"events": []}},
                headers=AUTH,
            ).json()["id"]
            for i in range(20)
        ]
        yield Target(schemathesis.from_asgi("/openapi.json", app), [a["id"] for a in accounts], metrics)
    finally:
        if not was_enabled:
            experimental.OPEN_API_3_1.disable()


def _steer(case: Any, target: Target, path: str) -> None:
    """Point about half of the generated path parameters at data that exists."""
    params = case.path_parameters or {}
    if isinstance(params.get("project_id"), int) and params["project_id"] % 2 == 0:
        params["project_id"] = 1
    if isinstance(params.get("group_type_index"), int) and params["group_type_index"] % 2 == 0:
        params["group_type_index"] = 0
    object_id = params.get("id")
    digest = sum(map(ord, object_id)) if isinstance(object_id, str) else 1
    if digest % 2 == 0:
        known = target.metric_ids if "groups_types" in path else target.account_ids
        params["id"] = known[(digest // 2) % len(known)]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_operation_has_no_server_error_and_conforms(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        _steer(case, target, path)
        response = case.call(headers=AUTH)
        case.validate_response(response, checks=CHECKS)

    run()
