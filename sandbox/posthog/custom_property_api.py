"""Handlers of the custom property routes, as PostHog's ``CustomPropertyDefinitionViewSet`` and
``CustomPropertyValueViewSet`` answer them (``presentation/views/views.py``, ``serializers.py``):

- ``/api/{projects|environments}/{project_id}/custom_property_definitions/`` CRUD;
- ``/api/projects/{project_id}/accounts/{account_id}/custom_property_values/`` ``GET`` (active values, newest
  first, not paginated) and ``POST {"definition", "value"}`` (201 with the new value row).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.posthog.auth import RequestBody
from sandbox.posthog.config import Generation
from sandbox.posthog.custom_properties import (
    NAME_TAKEN,
    OPTION_COLORS,
    SOURCE_MANAGED,
    CustomPropertyStore,
    DuplicateName,
    InvalidOptions,
    InvalidValue,
)
from sandbox.posthog.errors import conflict, validation_error
from sandbox.posthog.query import parse_page
from sandbox.posthog.relationship_api import boolean_field, uuid_field
from sandbox.posthog.service import PostHogApi, page_response
from sandbox.posthog.validation import MISSING, _check_characters, _present, char_field, choice_field, require_object

NAME_MAX = 400
DISPLAY_TYPES_TRANSITIONAL = ("text", "number", "currency", "percent", "date", "datetime", "boolean", "select")
DISPLAY_TYPES_CURRENT = (*DISPLAY_TYPES_TRANSITIONAL, "link")  # migration 0045 added "link"
TARGET_TYPES = ("account", "person", "group")


def _options(value: Any) -> list[dict[str, Any]] | None:
    """``CustomPropertyOptionSerializer(many=True, allow_null=True)``: ``{id?, label, color}`` each."""
    if value is None:
        return None
    if not isinstance(value, list):
        detail = f'Expected a list of items but got type "{type(value).__name__}".'
        raise validation_error("options", "not_a_list", detail)
    options = []
    for index, item in enumerate(value):
        attr = f"options__{index}"
        if not isinstance(item, dict):
            detail = f"Invalid data. Expected a dictionary, but got {type(item).__name__}."
            raise validation_error(f"{attr}__non_field_errors", "invalid", detail)
        option_id = item.get("id")
        if option_id is not None:
            option_id = char_field(option_id, f"{attr}__id", max_length=2**31, allow_blank=True)
        label = char_field(_present(item, "label", required=True), f"{attr}__label", max_length=NAME_MAX)
        color = choice_field(_present(item, "color", required=True), f"{attr}__color", OPTION_COLORS)
        options.append({"id": option_id, "label": label, "color": color})
    return options


def validate_definition(data: object, *, partial: bool, generation: Generation) -> dict[str, Any]:
    """``CustomPropertyDefinitionSerializer`` with its ``validate()`` (the group rule, create and PUT only)."""
    body = require_object(data)
    display_types = DISPLAY_TYPES_CURRENT if generation == "current" else DISPLAY_TYPES_TRANSITIONAL
    out: dict[str, Any] = {}
    name = _present(body, "name", required=not partial)
    if name is not MISSING:
        out["name"] = char_field(name, "name", max_length=NAME_MAX)
    if "description" in body:
        out["description"] = char_field(
            body["description"], "description", max_length=2**31, allow_null=True, allow_blank=True
        )
    display = _present(body, "display_type", required=not partial)
    if display is not MISSING:
        out["display_type"] = choice_field(display, "display_type", display_types)
    target = body.get("target_type", "account" if not partial else MISSING)
    if target is not MISSING:
        out["target_type"] = choice_field(target, "target_type", TARGET_TYPES)
    index = body.get("group_type_index")
    if index is not None:
        index = PostHogApi.integer(index, "group_type_index")
        if not 0 <= index <= 4:
            bound = "greater than or equal to 0" if index < 0 else "less than or equal to 4"
            raise validation_error("group_type_index", "min_value" if index < 0 else "max_value",
                                   f"Ensure this value is {bound}.")  # fmt: skip
    if "is_big_number" in body:
        out["is_big_number"] = boolean_field(body["is_big_number"], "is_big_number")
    elif not partial:
        out["is_big_number"] = False
    if "options" in body:
        out["options"] = _options(body["options"])
    if not partial:
        is_group = out.get("target_type") == "group"
        if is_group and index is None:
            raise validation_error("group_type_index", "invalid", "Required when target_type is 'group'.")
        if not is_group and index is not None:
            raise validation_error("group_type_index", "invalid", "Only valid when target_type is 'group'.")
    return out


class CustomPropertyApi:
    """The custom property endpoints over the stand-in's accounts (``api``) and ``CustomPropertyStore``."""

    def __init__(self, api: PostHogApi, store: CustomPropertyStore) -> None:
        self.api = api
        self.store = store

    def list_definitions(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=False)
        page = parse_page(request.query_params)
        count, results = self.store.list_definitions(project_id, page.offset, page.limit)
        return page_response(request, page, count, results)

    def create_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        fields = validate_definition(body.data(), partial=False, generation=self.api.generation)
        if fields["target_type"] in ("person", "group"):
            detail = "Person/group properties from warehouse data are not enabled yet."
            raise validation_error("target_type", "invalid", detail)
        try:
            definition = self.store.create_definition(project_id, fields, self.api.actor().user_id)
        except DuplicateName:
            raise conflict(NAME_TAKEN) from None
        except InvalidOptions as exc:
            raise validation_error("options", "invalid", str(exc)) from None
        return JSONResponse(definition, status_code=201)

    def retrieve_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=False)
        definition_id = self.api.object_id(request.path_params["id"])
        return JSONResponse(self.api.found(self.store.get_definition(project_id, definition_id)))

    def _update_definition(self, request: Request, body: RequestBody, *, partial: bool) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        definition_id = self.api.object_id(request.path_params["id"])
        fields = validate_definition(body.data(), partial=partial, generation=self.api.generation)
        data = body.data()
        sent = {k: v for k, v in fields.items() if k in ("name", "description", "display_type", "is_big_number",
                                                          "options") and k in data}  # fmt: skip
        try:
            definition = self.store.update_definition(project_id, definition_id, sent)
        except DuplicateName:
            raise conflict(NAME_TAKEN) from None
        except InvalidOptions as exc:
            raise validation_error("options", "invalid", str(exc)) from None
        return JSONResponse(self.api.found(definition))

    def partial_update_definition(self, request: Request, body: RequestBody) -> Response:
        return self._update_definition(request, body, partial=True)

    def update_definition(self, request: Request, body: RequestBody) -> Response:
        return self._update_definition(request, body, partial=False)

    def destroy_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api.project(request, body, "account", write=True)
        definition_id = self.api.object_id(request.path_params["id"])
        if not self.store.delete_definition(project_id, definition_id):
            raise self.api.not_found()
        return Response(status_code=204)

    # Values of one account

    def list_values(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self.api.account_of(request, body, write=False)
        return JSONResponse(self.store.list_values(project_id, account["id"]))

    def set_value(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self.api.account_of(request, body, write=True)
        data = require_object(body.data())
        definition_id = uuid_field(_present(data, "definition", required=True), "definition")
        value = _present(data, "value", required=True)
        if value is None or isinstance(value, dict | list):
            raise validation_error("value", "invalid", "Value must be a string, number, or boolean.")
        if isinstance(value, str):
            _check_characters("value", value)  # Postgres refuses these; PostHog would answer a 500
        definition = self.store.get_definition(project_id, definition_id)
        if definition is not None and definition["source"] is not None:
            raise validation_error("definition", "invalid", SOURCE_MANAGED)
        if definition is None:
            raise validation_error("definition", "invalid", "Custom property definition not found.")
        try:
            row = self.store.set_value(project_id, account, definition, value, self.api.actor())
        except InvalidValue as exc:
            raise validation_error("value", "invalid", str(exc)) from None
        return JSONResponse(row, status_code=201)
