"""Handlers of the relationship routes (``/api/projects/{project_id}/account_relationship_definitions/`` and
``/api/projects/{project_id}/accounts/{account_id}/relationships/``), as PostHog's
``AccountRelationshipDefinitionViewSet`` and ``AccountRelationshipViewSet`` answer them (``views.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.posthog.auth import RequestBody
from sandbox.posthog.errors import conflict, validation_error
from sandbox.posthog.query import parse_page
from sandbox.posthog.relationships import DEFINITION_NAME_TAKEN, DuplicateDefinitionName, RelationshipStore
from sandbox.posthog.service import PostHogApi, page_response
from sandbox.posthog.validation import MISSING, _present, char_field, require_object

NAME_MAX = 400
_TRUE = {"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1", 1}
_FALSE = {"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0", 0}


def boolean_field(value: Any, attr: str) -> bool:
    """DRF ``BooleanField``: its accepted spellings, else "Must be a valid boolean."."""
    if value is None:
        raise validation_error(attr, "null", "This field may not be null.")
    if isinstance(value, str | int | float | bool):
        if value in _TRUE and not (isinstance(value, float) and value != 1):
            return True
        if value in _FALSE:
            return False
    raise validation_error(attr, "invalid", "Must be a valid boolean.")


def uuid_field(value: Any, attr: str) -> str:
    """DRF ``UUIDField``: any form ``uuid.UUID`` parses, else "Must be a valid UUID."."""
    if value is None:
        raise validation_error(attr, "null", "This field may not be null.")
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else str(uuid.UUID(int=value))
    except (ValueError, TypeError, AttributeError):
        raise validation_error(attr, "invalid", "Must be a valid UUID.") from None


def validate_definition(data: object, *, partial: bool) -> dict[str, Any]:
    """``AccountRelationshipDefinitionSerializer``: name, description, is_single_holder (default true)."""
    body = require_object(data)
    out: dict[str, Any] = {}
    name = _present(body, "name", required=not partial)
    if name is not MISSING:
        out["name"] = char_field(name, "name", max_length=NAME_MAX)
    if "description" in body:
        out["description"] = char_field(
            body["description"], "description", max_length=2**31, allow_null=True, allow_blank=True
        )
    if "is_single_holder" in body:
        out["is_single_holder"] = boolean_field(body["is_single_holder"], "is_single_holder")
    elif not partial:
        out["is_single_holder"] = True
    return out


class RelationshipApi:
    """The relationship endpoints over the stand-in's accounts (``api``) and ``RelationshipStore``."""

    def __init__(self, api: PostHogApi, store: RelationshipStore) -> None:
        self.api = api
        self.store = store

    def _definition_id(self, request: Request) -> str:
        return self.api.object_id(request.path_params["id"])

    def list_definitions(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=False)
        page = parse_page(request.query_params)
        count, results = self.store.list_definitions(project_id, page.offset, page.limit)
        return page_response(request, page, count, results)

    def create_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        fields = validate_definition(body.data(), partial=False)
        try:
            definition = self.store.create_definition(project_id, fields, self.api.actor().user_id)
        except DuplicateDefinitionName:
            raise conflict(DEFINITION_NAME_TAKEN) from None
        return JSONResponse(definition, status_code=201)

    def retrieve_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=False)
        definition = self.store.get_definition(project_id, self._definition_id(request))
        return JSONResponse(self.api.found(definition))

    def _update_definition(self, request: Request, body: RequestBody, *, partial: bool) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        definition_id = self._definition_id(request)
        fields = validate_definition(body.data(), partial=partial)
        try:
            definition = self.store.update_definition(project_id, definition_id, fields)
        except DuplicateDefinitionName:
            raise conflict(DEFINITION_NAME_TAKEN) from None
        return JSONResponse(self.api.found(definition))

    def partial_update_definition(self, request: Request, body: RequestBody) -> Response:
        return self._update_definition(request, body, partial=True)

    def update_definition(self, request: Request, body: RequestBody) -> Response:
        return self._update_definition(request, body, partial=False)

    def destroy_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        if not self.store.delete_definition(project_id, self._definition_id(request)):
            raise self.api.not_found()
        return Response(status_code=204)

    # Assignments on one account

    def list_relationships(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self.api.account_of(request, body, write=False)
        history = request.query_params.get("include_history", "").lower() == "true"
        return JSONResponse(self.store.list_relationships(project_id, account["id"], history))

    def assign(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self.api.account_of(request, body, write=True)
        data = require_object(body.data())
        definition_id = uuid_field(_present(data, "definition", required=True), "definition")
        raw_user = _present(data, "user", required=True)
        user_id = self.api.integer(raw_user, "user")
        definition = self.store.get_definition(project_id, definition_id)
        if definition is None:
            raise validation_error("definition", "invalid", "Relationship definition not found.")
        member = self.api.members.get(user_id)
        if member is None:
            raise validation_error("user", "invalid", "User is not a member of this organization.")
        relationship = self.store.assign(
            project_id, account, definition, (member.id, member.email), self.api.actor(), emit=True
        )
        return JSONResponse(relationship, status_code=201)

    def end(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self.api.account_of(request, body, write=True)
        relationship_id = self.api.object_id(request.path_params["id"])
        return JSONResponse(self.api.found(self.store.end(project_id, account, relationship_id, self.api.actor())))
