"""Operations beyond the seed generation's: accounts under ``/api/projects/``, the project, members of a named
organisation, relationships (transitional and current) and custom properties (``custom_property_routes``).

Which generation serves what (``docs/posthog.md``, "Three generations of the accounts API"):

- every generation: ``/api/projects/{project_id}/accounts/``, ``GET /api/projects/{project_id}/`` and
  ``/api/organizations/{organization_id}/members/``;
- transitional and current: relationship definitions CRUD and an account's relationships (``GET``);
- current only: assigning (``POST``) and ending a relationship: while the JSON role keys were the source of
  truth PostHog exposed no assign/end (``COMPROMISES.md``, "transitional JSON forward-sync").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sandbox.posthog.config import Generation
from sandbox.posthog.custom_property_api import CustomPropertyApi
from sandbox.posthog.relationship_api import RelationshipApi
from sandbox.posthog.routes import (
    ACCOUNT_RESOURCE,
    OBJECT_ID,
    PAGINATION,
    PROJECT_ID,
    Operation,
    Resource,
    _param,
    model_viewset,
)
from sandbox.posthog.schemas import (
    CustomPropertyDefinition,
    CustomPropertyValue,
    CustomPropertyValueList,
    PaginatedCustomPropertyDefinitionList,
    PaginatedOrganizationMemberList,
    PaginatedRelationshipDefinitionList,
    Project,
    Relationship,
    RelationshipDefinition,
    RelationshipList,
)
from sandbox.posthog.service import PostHogApi

PROJECT_ACCOUNTS = "/api/projects/{project_id}/accounts/"
PROJECT = "/api/projects/{project_id}/"
ORGANIZATION_MEMBERS = "/api/organizations/{organization_id}/members/"
DEFINITIONS = "/api/projects/{project_id}/account_relationship_definitions/"
RELATIONSHIPS = "/api/projects/{project_id}/accounts/{account_id}/relationships/"

CUSTOM_DEFINITIONS = "/api/{scope}/{{project_id}}/custom_property_definitions/"
CUSTOM_VALUES = "/api/projects/{project_id}/accounts/{account_id}/custom_property_values/"

ACCOUNT_ID = _param("account_id", "path", {"type": "string", "format": "uuid"}, "UUID of the parent account.")
ORGANIZATION_ID = _param(
    "organization_id", "path", {"type": "string"}, "The project's organisation id (GET /api/projects/{id}/)."
)

DEFINITION_RESOURCE = Resource(
    collection=DEFINITIONS,
    prefix="account_relationship_definitions",
    noun="relationship definition",
    tag="relationships",
    model=RelationshipDefinition,
    page_model=PaginatedRelationshipDefinitionList,
    scope_params=(PROJECT_ID,),
    list_params=tuple(PAGINATION),
    list_errors=(401, 403, 404),
    write_errors=(400, 401, 403, 404, 409, 415),
    create_body="RelationshipDefinitionCreate",
    patch_body="PatchedRelationshipDefinition",
)


def _custom_definition_resource(scope: str) -> Resource:
    return Resource(
        collection=CUSTOM_DEFINITIONS.format(scope=scope),
        prefix=f"{scope}_custom_property_definitions",
        noun="custom property definition",
        tag="custom_properties",
        model=CustomPropertyDefinition,
        page_model=PaginatedCustomPropertyDefinitionList,
        scope_params=(PROJECT_ID,),
        list_params=tuple(PAGINATION),
        list_errors=(401, 403, 404),
        write_errors=(400, 401, 403, 404, 409, 415),
        create_body="CustomPropertyDefinitionCreate",
        patch_body="PatchedCustomPropertyDefinition",
    )


def custom_property_operations(api: CustomPropertyApi, generation: Generation) -> list[Operation]:
    """Definitions from the transitional generation on (both URL scopes); values on current."""
    if generation == "seed":
        return []
    handlers = (
        api.list_definitions,
        api.create_definition,
        api.retrieve_definition,
        api.partial_update_definition,
        api.update_definition,
        api.destroy_definition,
    )
    ops = [*model_viewset(_custom_definition_resource("projects"), handlers),
           *model_viewset(_custom_definition_resource("environments"), handlers)]  # fmt: skip
    if generation == "current":
        ops += [
            _op(CUSTOM_VALUES, "GET", api.list_values, "accounts_custom_property_values_list",
                "List an account's active custom property values (newest first)",
                response_model=CustomPropertyValueList, parameters=(PROJECT_ID, ACCOUNT_ID), tag="custom_properties"),
            _op(CUSTOM_VALUES, "POST", api.set_value, "accounts_custom_property_values_create",
                "Set one custom property value of the account", status_code=201, response_model=CustomPropertyValue,
                errors=(400, 401, 403, 404, 415), body_model="CustomPropertyValueSet",
                parameters=(PROJECT_ID, ACCOUNT_ID), tag="custom_properties"),
        ]  # fmt: skip
    return ops


def _op(path: str, method: str, handler: Any, operation_id: str, summary: str, **kw: Any) -> Operation:
    options: dict[str, Any] = {
        "status_code": 200,
        "errors": (401, 403, 404),
        "parameters": (PROJECT_ID,),
        "tag": "accounts",
    }
    options.update(kw)
    return Operation(path=path, method=method, handler=handler, operation_id=operation_id, summary=summary, **options)


def extra_operations(api: PostHogApi, relationships: RelationshipApi, generation: Generation) -> list[Operation]:
    """The operations this generation serves besides the seed ones (custom properties come separately)."""
    accounts = (
        api.list_accounts,
        api.create_account,
        api.retrieve_account,
        api.partial_update_account,
        api.update_account,
        api.destroy_account,
    )
    project_accounts = replace(ACCOUNT_RESOURCE, collection=PROJECT_ACCOUNTS, prefix="project_accounts")
    ops = [
        *model_viewset(project_accounts, accounts),
        _op(PROJECT, "GET", api.retrieve_project, "projects_retrieve", "Retrieve a project (its organization)",
            response_model=Project, tag="projects"),
        _op(ORGANIZATION_MEMBERS, "GET", api.list_members, "organizations_members_by_id_list",
            "List the members of an organisation", response_model=PaginatedOrganizationMemberList,
            parameters=(ORGANIZATION_ID, *PAGINATION), tag="organization_members"),
    ]  # fmt: skip
    if generation == "seed":
        return ops
    definitions = (
        relationships.list_definitions,
        relationships.create_definition,
        relationships.retrieve_definition,
        relationships.partial_update_definition,
        relationships.update_definition,
        relationships.destroy_definition,
    )
    ops += model_viewset(DEFINITION_RESOURCE, definitions)
    ops.append(
        _op(RELATIONSHIPS, "GET", relationships.list_relationships, "accounts_relationships_list",
            "List an account's relationships (active; include_history=true for ended ones too)",
            response_model=RelationshipList, tag="relationships",
            parameters=(PROJECT_ID, ACCOUNT_ID, _param("include_history", "query", {"type": "boolean"},
                                                       "Only the text 'true' (any case) enables it."))),
    )  # fmt: skip
    if generation == "current":
        ops += [
            _op(RELATIONSHIPS, "POST", relationships.assign, "accounts_relationships_create",
                "Assign an organisation member to a relationship of the account", status_code=201,
                response_model=Relationship, errors=(400, 401, 403, 404, 415), body_model="RelationshipAssign",
                parameters=(PROJECT_ID, ACCOUNT_ID), tag="relationships"),
            _op(RELATIONSHIPS + "{id}/end/", "POST", relationships.end, "accounts_relationships_end_create",
                "End an active relationship", response_model=Relationship,
                parameters=(PROJECT_ID, ACCOUNT_ID, OBJECT_ID), tag="relationships"),
        ]  # fmt: skip
    return ops
