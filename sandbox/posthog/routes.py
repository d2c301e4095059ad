"""The stand-in's operations: path, method, handler, and what the OpenAPI schema says about them.

Handlers read their path and query parameters from the request themselves (PostHog parses them leniently,
FastAPI would answer 422), so parameters and request bodies are declared here through ``openapi_extra``
and the schema still describes exactly what the server accepts and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from sandbox.posthog.auth import RequestBody
from sandbox.posthog.query import ORDERINGS
from sandbox.posthog.schemas import (
    Account,
    ErrorBody,
    NotFoundBody,
    PaginatedAccountList,
    PaginatedOrganizationMemberList,
    PaginatedUsageMetricList,
    UsageMetric,
)
from sandbox.posthog.service import PostHogApi

ACCOUNTS = "/api/environments/{project_id}/accounts/"
METRICS = "/api/projects/{project_id}/groups_types/{group_type_index}/metrics/"
MEMBERS = "/api/organizations/@current/members/"

_ERRORS = {
    400: "Validation error (only the first one is reported)",
    401: "No personal API key, or an invalid one",
    403: "The key lacks the scope, or may not access this project",
    404: "Unknown project, group type index or object",
    409: "Another object of the project has this external_id or name",
    415: "The body is not JSON",
}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}


PROJECT_ID = _param("project_id", "path", {"type": "integer"}, "Project (environment) id.")
OBJECT_ID = _param("id", "path", {"type": "string", "format": "uuid"}, "Object id (UUID).")
GROUP_TYPE_INDEX = _param(
    "group_type_index", "path", {"type": "integer", "minimum": 0}, "Group type index (a non-number is a 404)."
)
PAGINATION = [
    _param("limit", "query", {"type": "integer"}, "Page size; default 100, no maximum; invalid → 100."),
    _param("offset", "query", {"type": "integer"}, "Start index; invalid or negative → 0."),
]
ACCOUNT_FILTERS = [
    _param("search", "query", {"type": "string"}, "Trimmed; case-insensitive substring of name or external_id."),
    _param("tags", "query", {"type": "string"}, 'JSON-encoded list of tags, e.g. ["billing"]; matches ANY.'),
    *[
        _param(role, "query", {"type": "string"}, "'unassigned' or an integer user id; other values are ignored.")
        for role in ("csm", "account_executive", "account_owner")
    ],
    _param("all_roles_unassigned", "query", {"type": "boolean"}, "Only the text 'true' (any case) enables it."),
    _param("ordering", "query", {"type": "string", "enum": list(ORDERINGS)}, "Other values are ignored."),
]


def _json_body(model: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
    }


Handler = Callable[[Request, RequestBody], Response]


@dataclass(frozen=True)
class Operation:
    """One documented operation; the app mounts it on ``path`` and on ``path`` without the slash."""

    path: str
    method: str
    handler: Handler
    operation_id: str
    summary: str
    status_code: int
    response_model: type[BaseModel] | None
    errors: tuple[int, ...]
    parameters: tuple[dict[str, Any], ...]
    body_model: str | None = None
    tag: str = "accounts"

    def fastapi_options(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"parameters": list(self.parameters)}
        if self.body_model is not None:
            extra.update(_json_body(self.body_model))
        return {
            "status_code": self.status_code,
            "response_model": self.response_model,
            "responses": {
                code: {"model": NotFoundBody if code == 404 else ErrorBody, "description": _ERRORS[code]}
                for code in self.errors
            },
            "openapi_extra": extra,
            "operation_id": self.operation_id,
            "summary": self.summary,
            "tags": [self.tag],
        }


Handlers = tuple[Handler, Handler, Handler, Handler, Handler, Handler]
"""list, create, retrieve, partial update (PATCH), update (PUT), destroy."""


@dataclass(frozen=True)
class Resource:
    """A DRF ``ModelViewSet``-like resource: a collection path and an item path below it."""

    collection: str
    prefix: str
    noun: str
    tag: str
    model: type[BaseModel]
    page_model: type[BaseModel]
    scope_params: tuple[dict[str, Any], ...]
    list_params: tuple[dict[str, Any], ...]
    list_errors: tuple[int, ...]
    write_errors: tuple[int, ...]
    create_body: str
    patch_body: str


def model_viewset(res: Resource, handlers: Handlers) -> list[Operation]:
    list_, create, retrieve, partial_update, update, destroy = handlers
    item = res.collection + "{id}/"
    item_params = (*res.scope_params, OBJECT_ID)
    read_errors = (401, 403, 404)

    def op(path: str, method: str, handler: Handler, action: str, summary: str, **kw: Any) -> Operation:
        options: dict[str, Any] = {"status_code": 200, "response_model": res.model, "errors": read_errors}
        options.update(kw)
        return Operation(
            path=path,
            method=method,
            handler=handler,
            operation_id=f"{res.prefix}_{action}",
            summary=summary,
            parameters=options.pop("parameters", item_params),
            tag=res.tag,
            **options,
        )

    return [
        op(res.collection, "GET", list_, "list", f"List {res.noun}s", response_model=res.page_model,
           errors=res.list_errors, parameters=(*res.scope_params, *res.list_params)),
        op(res.collection, "POST", create, "create", f"Create a {res.noun}", status_code=201,
           errors=res.write_errors, parameters=res.scope_params, body_model=res.create_body),
        op(item, "GET", retrieve, "retrieve", f"Retrieve a {res.noun}"),
        op(item, "PATCH", partial_update, "partial_update", f"Update the given fields of a {res.noun}",
           errors=res.write_errors, body_model=res.patch_body),
        op(item, "PUT", update, "update", f"Update a {res.noun}", errors=res.write_errors,
           body_model=res.create_body),
        op(item, "DELETE", destroy, "destroy", f"Delete a {res.noun}", status_code=204, response_model=None),
    ]  # fmt: skip


ACCOUNT_RESOURCE = Resource(
    collection=ACCOUNTS,
    prefix="accounts",
    noun="account",
    tag="accounts",
    model=Account,
    page_model=PaginatedAccountList,
    scope_params=(PROJECT_ID,),
    list_params=(*ACCOUNT_FILTERS, *PAGINATION),
    list_errors=(400, 401, 403, 404),
    write_errors=(400, 401, 403, 404, 409, 415),
    create_body="AccountCreate",
    patch_body="PatchedAccount",
)
METRIC_RESOURCE = Resource(
    collection=METRICS,
    prefix="groups_types_metrics",
    noun="usage metric",
    tag="usage_metrics",
    model=UsageMetric,
    page_model=PaginatedUsageMetricList,
    scope_params=(PROJECT_ID, GROUP_TYPE_INDEX),
    list_params=tuple(PAGINATION),
    list_errors=(401, 403, 404),
    write_errors=(400, 401, 403, 404, 415),
    create_body="UsageMetricCreate",
    patch_body="PatchedUsageMetric",
)


def operations(api: PostHogApi) -> list[Operation]:
    """The seed generation's public operations, in documentation order (``routes_extra`` adds the rest)."""
    accounts = (
        api.list_accounts,
        api.create_account,
        api.retrieve_account,
        api.partial_update_account,
        api.update_account,
        api.destroy_account,
    )
    metrics = (
        api.list_metrics,
        api.create_metric,
        api.retrieve_metric,
        api.partial_update_metric,
        api.update_metric,
        api.destroy_metric,
    )
    members = Operation(
        path=MEMBERS,
        method="GET",
        handler=api.list_members,
        operation_id="organizations_members_list",
        summary="List organisation members",
        status_code=200,
        response_model=PaginatedOrganizationMemberList,
        errors=(401, 403),
        parameters=tuple(PAGINATION),
        tag="organization_members",
    )
    return [*model_viewset(ACCOUNT_RESOURCE, accounts), *model_viewset(METRIC_RESOURCE, metrics), members]
