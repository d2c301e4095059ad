"""The rest of the CRM surface the sync uses: owners, property definitions, v4 associations."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.hubspot.errors import HubSpotError, bad_request, not_found
from sandbox.hubspot.model import COMPANIES, DEALS, ObjectType, association_types, object_type
from sandbox.hubspot.objects_api import bool_param, int_param
from sandbox.hubspot.portal import json_body, portal_of, require_app_budget
from sandbox.hubspot.render import batch_json
from sandbox.hubspot.timefmt import now_ms

router = APIRouter()
MAX_OWNERS_PAGE = 500
MAX_ASSOCIATION_INPUTS = 1_000


def _object_type(name: str) -> ObjectType:
    found = object_type(name)
    if found is None:
        raise bad_request(f"Unable to infer object type from: {name}")
    return found


@router.get("/account-info/v3/details", dependencies=[require_app_budget])
async def account_details(request: Request) -> JSONResponse:
    """``GET /account-info/v3/details``: the portal the token belongs to (``portalId``, the Hub ID), as documented
    at developers.hubspot.com/docs/api-reference/latest/account/account-information/get-account-details."""
    portal = portal_of(request)
    return JSONResponse(
        {
            "portalId": portal.config.portal_id,
            "accountType": "STANDARD",
            "timeZone": "US/Eastern",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "-05:00",
            "utcOffsetMilliseconds": -18_000_000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
    )


@router.get("/crm/v3/owners/", dependencies=[require_app_budget])
@router.get("/crm/v3/owners", dependencies=[require_app_budget], include_in_schema=False)
async def owners_page(request: Request) -> JSONResponse:
    """``owners_api.get_page(email=, after=, limit=, archived=)``; ``after`` is an offset."""
    owners = portal_of(request).store.owner_list(archived=bool_param(request, "archived"))
    email = request.query_params.get("email")
    if email:
        owners = [o for o in owners if o.email.lower() == email.lower()]
    limit = int_param(request, "limit", 100, MAX_OWNERS_PAGE)
    after = int_param(request, "after", 0, 10**9)
    chosen = owners[after : after + limit]
    body: dict[str, Any] = {"results": [o.to_json() for o in chosen]}
    if after + limit < len(owners):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return JSONResponse(body)


@router.get("/crm/v3/owners/{ownerId}", dependencies=[require_app_budget])
async def owner_by_id(request: Request) -> JSONResponse:
    """``owners_api.get_by_id(owner_id, id_property="id"|"userId")``."""
    key = request.path_params["ownerId"]
    by_user = request.query_params.get("idProperty") == "userId"
    for owner in portal_of(request).store.owner_list(archived=bool_param(request, "archived")):
        if str(owner.user_id if by_user else owner.id) == key:
            return JSONResponse(owner.to_json())
    raise not_found(f"Owner {key} not found.", context={"id": [key]})


@router.get("/crm/v3/properties/{objectType}", dependencies=[require_app_budget])
async def properties_list(request: Request) -> JSONResponse:
    """``properties.core_api.get_all(object_type)``."""
    kind = _object_type(request.path_params["objectType"])
    if bool_param(request, "archived"):
        return JSONResponse({"results": []})
    defs = portal_of(request).store.property_defs(kind)
    return JSONResponse({"results": [d.to_json() for d in defs.values()]})


@router.get("/crm/v3/properties/{objectType}/{propertyName}", dependencies=[require_app_budget])
async def property_by_name(request: Request) -> JSONResponse:
    """``properties.core_api.get_by_name(object_type, property_name)``."""
    kind = _object_type(request.path_params["objectType"])
    name = request.path_params["propertyName"]
    definition = portal_of(request).store.property_defs(kind).get(name)
    if definition is None:
        raise not_found(f"Unable to find property with name {name} on object type {kind.type_id}")
    return JSONResponse(definition.to_json())


@router.post("/crm/v3/properties/{objectType}", dependencies=[require_app_budget])
async def property_create(request: Request) -> JSONResponse:
    """``properties.core_api.create(object_type, property_create)``: 201, or 409 if the name exists."""
    kind = _object_type(request.path_params["objectType"])
    definition = portal_of(request).store.create_property(kind, await json_body(request))
    return JSONResponse(definition.to_json(), status_code=201)


def _pair(request: Request, from_key: str, to_key: str) -> tuple[ObjectType, ObjectType]:
    from_type = _object_type(request.path_params[from_key])
    to_type = _object_type(request.path_params[to_key])
    if {from_type, to_type} != {DEALS, COMPANIES}:
        raise bad_request(
            f"No association definitions between {from_type.plural} and {to_type.plural} in this stand-in."
        )
    return from_type, to_type


def _targets(request: Request, from_type: ObjectType, record_id: int) -> list[dict[str, Any]]:
    return [
        {"toObjectId": target, "associationTypes": [t.v4_json() for t in association_types(from_type, primary)]}
        for target, primary in portal_of(request).store.associated(from_type, record_id)
    ]


def _after_token(offset: int) -> str:
    """An opaque ``paging.next.after`` (HubSpot's are base64 strings the client must hand back unchanged)."""
    return base64.urlsafe_b64encode(f"assoc-{offset}".encode()).decode()


def _after_offset(token: Any) -> int:
    """The offset an ``after`` token stands for; 400 ``VALIDATION_ERROR`` for one this stand-in never issued."""
    if token is None or token == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(str(token).encode()).decode()
        prefix, _, digits = text.partition("-")
        if prefix == "assoc" and digits.isdigit():
            return int(digits)
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad_request(f"Invalid paging token 'after': {token}")


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", dependencies=[require_app_budget])
async def associations_batch_read(request: Request) -> JSONResponse:
    """``associations.v4.batch_api.get_page``: ids without links (or unknown) come back as 207 errors.

    Each input is paged on its own, as HubSpot does: an input ``{"id", "after"}`` resumes that id's links, and a
    result with more links than ``association_page_size`` carries ``paging.next.after``."""
    started = now_ms()
    from_type, to_type = _pair(request, "fromObjectType", "toObjectType")
    body = await json_body(request)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise bad_request("'inputs' must be a list of objects.")
    if len(inputs) > MAX_ASSOCIATION_INPUTS:
        raise bad_request(f"Batch input is limited to {MAX_ASSOCIATION_INPUTS} inputs, got {len(inputs)}.")
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    portal = portal_of(request)
    size = portal.association_page_size
    for item in inputs:
        key = str(item.get("id", ""))
        offset = _after_offset(item.get("after"))
        record = portal.store.get(from_type, int(key)) if key.isdigit() else None
        targets = _targets(request, from_type, record.id) if record is not None else []
        if targets:
            result: dict[str, Any] = {"from": {"id": key}, "to": targets[offset : offset + size]}
            if offset + size < len(targets):
                result["paging"] = {"next": {"after": _after_token(offset + size)}}
            results.append(result)
        else:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type.singular} is associated with {from_type.singular} {key}.",
                    "context": {"fromObjectId": [key]},
                    "errors": [],
                    "links": {},
                }
            )
    status = 207 if errors else 200
    return JSONResponse(batch_json(results, started, now_ms(), errors), status_code=status)


@router.get("/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", dependencies=[require_app_budget])
async def associations_page(request: Request) -> JSONResponse:
    """``associations.v4.basic_api.get_page``: one record's links, ``limit`` up to 500, offset ``after``."""
    from_type, _ = _pair(request, "objectType", "toObjectType")
    key = request.path_params["objectId"]
    store = portal_of(request).store
    record = store.get(from_type, int(key)) if key.isdigit() else None
    if record is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"{from_type.upper} {key} not found.", context={"id": [key]})
    targets = _targets(request, from_type, record.id)
    limit = int_param(request, "limit", 500, 500)
    after = int_param(request, "after", 0, 10**9)
    body: dict[str, Any] = {"results": targets[after : after + limit]}
    if after + limit < len(targets):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return JSONResponse(body)
