"""``/crm/v3/objects/{deals,companies}``: list, read, create, update, archive, merge, search and batch.

Routes are registered per object type with literal paths (``/crm/v3/objects/deals/batch/update``) and the
SDK's own path parameter names (``{dealId}``), so request counters read like the API reference.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.hubspot.errors import bad_request, batch_error, not_found
from sandbox.hubspot.model import COMPANIES, DEALS, ObjectType, Record
from sandbox.hubspot.portal import json_body, portal_of, require_app_budget, require_search_budget
from sandbox.hubspot.render import associations_json, batch_json, property_names, record_json
from sandbox.hubspot.search import parse_search, run_search
from sandbox.hubspot.timefmt import now_ms

API_SOURCE = "INTEGRATION"
MAX_PAGE = 100
MAX_BATCH = 100
_PRIMARY_TYPE_IDS = {DEALS.plural: (5, 341), COMPANIES.plural: (6, 342)}


def list_param(request: Request, name: str) -> list[str] | None:
    """A repeated or comma-separated query parameter (``properties=a&properties=b`` or ``a,b``)."""
    values = [part.strip() for raw in request.query_params.getlist(name) for part in raw.split(",")]
    values = [v for v in values if v]
    return values or None


def bool_param(request: Request, name: str) -> bool:
    """The SDK sends Python booleans as ``True``/``False``; HubSpot also accepts lowercase."""
    return request.query_params.get(name, "false").strip().lower() == "true"


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise bad_request(f"Query parameter '{name}' must be a non-negative integer, got '{raw}'.")
    value = int(raw)
    if value > maximum:
        raise bad_request(f"Query parameter '{name}' must be at most {maximum}, got {value}.")
    return value


def _inputs(body: dict[str, Any], *, maximum: int = MAX_BATCH) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise bad_request("'inputs' must be a list of objects.")
    if len(inputs) > maximum:
        raise bad_request(f"Batch input is limited to {maximum} inputs, got {len(inputs)}.")
    return inputs


def _properties(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad_request("'properties' must be an object of property name to value.")
    return raw


def _not_found_error(object_type: ObjectType, ids: list[str]) -> dict[str, Any]:
    return batch_error(
        "OBJECT_NOT_FOUND",
        f"Could not get some {object_type.upper} objects, they may be deleted or not exist. Check that ids are valid.",
        {"ids": ids},
    )


def _record_id(raw: Any) -> int | None:
    text = str(raw).strip() if raw is not None else ""
    return int(text) if text.isdigit() else None


def objects_router(object_type: ObjectType, path_name: str | None = None) -> APIRouter:
    """All object routes for ``object_type``, under ``/crm/v3/objects/<path_name>``: its plural name (the
    default, as hubspot-api-client calls it) or its object type id (``0-3``), the form HubSpot's own OpenAPI
    spec for deals uses; HubSpot serves both."""
    router = APIRouter()
    base = f"/crm/v3/objects/{path_name or object_type.plural}"
    id_param = f"{object_type.singular}Id"
    app_budget = [require_app_budget]

    def links_from(raw: Any) -> list[tuple[int, bool]]:
        if raw in (None, []):
            return []
        if not isinstance(raw, list):
            raise bad_request("'associations' must be a list.")
        primary_id, unlabeled_id = _PRIMARY_TYPE_IDS[object_type.plural]
        links: list[tuple[int, bool]] = []
        for spec in raw:
            target = _record_id((spec.get("to") or {}).get("id")) if isinstance(spec, dict) else None
            types = {t.get("associationTypeId") for t in spec.get("types") or [] if isinstance(t, dict)}
            if target is None or not types or not types <= {primary_id, unlabeled_id}:
                raise bad_request(
                    f"Invalid association: expected to.id and associationTypeId {primary_id} or {unlabeled_id}."
                )
            links.append((target, primary_id in types))
        return links

    @router.get(base, dependencies=app_budget)
    async def get_page(request: Request) -> JSONResponse:
        store = portal_of(request).store
        limit = int_param(request, "limit", 10, MAX_PAGE)
        after_raw = request.query_params.get("after")
        if after_raw and not after_raw.isdigit():
            raise bad_request(f"Invalid 'after' paging token '{after_raw}'.")
        names = property_names(object_type, list_param(request, "properties"), store.property_defs(object_type))
        wanted = list_param(request, "associations") or []
        records, next_after = store.page(
            object_type, int(after_raw) if after_raw else None, limit, archived=bool_param(request, "archived")
        )
        results = []
        for record in records:
            body = record_json(record, names)
            links = associations_json(store, object_type, record.id, _plural(wanted))
            if links:
                body["associations"] = links
            results.append(body)
        page: dict[str, Any] = {"results": results}
        if next_after is not None:
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
            link = f"{request.url.replace(query=urlencode([*query, ('after', str(next_after))]))}"
            page["paging"] = {"next": {"after": str(next_after), "link": link}}
        return JSONResponse(page)

    @router.post(base, dependencies=app_budget)
    async def create(request: Request) -> JSONResponse:
        store = portal_of(request).store
        body = await json_body(request)
        properties = _properties(body.get("properties"))
        record = store.create(object_type, properties, API_SOURCE, links_from(body.get("associations")))
        names = [*object_type.default_properties, *properties]
        return JSONResponse(record_json(record, dict.fromkeys(names)), status_code=201)

    @router.post(f"{base}/search", dependencies=[require_search_budget])
    async def search(request: Request) -> JSONResponse:
        store = portal_of(request).store
        schema = store.property_defs(object_type)
        query = parse_search(await json_body(request), schema)
        page = run_search(query, store.active_records(object_type), object_type.searchable)
        names = property_names(object_type, query.properties, schema)
        body: dict[str, Any] = {"total": page.total, "results": [record_json(r, names) for r in page.results]}
        if page.next_after is not None:
            body["paging"] = {"next": {"after": str(page.next_after)}}
        return JSONResponse(body)

    @router.post(f"{base}/batch/read", dependencies=app_budget)
    async def batch_read(request: Request) -> JSONResponse:
        store = portal_of(request).store
        started = now_ms()
        body = await json_body(request)
        inputs = _inputs(body)
        id_property = body.get("idProperty") or None
        archived = bool_param(request, "archived")
        raw_props = body.get("properties")
        names = property_names(
            object_type, raw_props if isinstance(raw_props, list) else None, store.property_defs(object_type)
        )
        found: dict[int, Record] = {}
        missing: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            record = store.resolve(object_type, key, id_property, archived=archived)
            if record is None:
                missing.append(key)
            else:
                found.setdefault(record.id, record)
        errors = [_not_found_error(object_type, missing)] if missing else []
        results = [record_json(r, names) for r in found.values()]
        return JSONResponse(batch_json(results, started, now_ms(), errors), status_code=207 if errors else 200)

    @router.post(f"{base}/batch/update", dependencies=app_budget)
    async def batch_update(request: Request) -> JSONResponse:
        store = portal_of(request).store
        started = now_ms()
        inputs = _inputs(await json_body(request))
        keys = [str(item.get("id", "")) for item in inputs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise bad_request(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        updates: list[tuple[Record, dict[str, Any]]] = []
        missing: list[str] = []
        for key, item in zip(keys, inputs, strict=True):
            record = store.resolve(object_type, key, item.get("idProperty") or None)
            if record is None:
                missing.append(key)
            else:
                updates.append((record, _properties(item.get("properties"))))
        updated = store.update_many(object_type, updates, API_SOURCE) if updates else []
        results = [
            record_json(record, dict.fromkeys([*object_type.default_properties, *props]))
            for record, (_, props) in zip(updated, updates, strict=True)
        ]
        errors = [_not_found_error(object_type, missing)] if missing else []
        return JSONResponse(batch_json(results, started, now_ms(), errors), status_code=207 if errors else 200)

    @router.post(f"{base}/batch/upsert", dependencies=app_budget)
    async def batch_upsert(request: Request) -> JSONResponse:
        store = portal_of(request).store
        started = now_ms()
        inputs = _inputs(await json_body(request))
        triples: list[tuple[str, str, dict[str, Any]]] = []
        for item in inputs:
            id_property = item.get("idProperty")
            key = item.get("id")
            if not id_property or key in (None, ""):
                raise bad_request("Each upsert input needs 'idProperty' (a unique property) and 'id' (its value).")
            triples.append((str(id_property), str(key), _properties(item.get("properties"))))
        outcome = store.upsert_many(object_type, triples, API_SOURCE)
        results = []
        for (record, new), (id_property, _, props) in zip(outcome, triples, strict=True):
            names = dict.fromkeys([*object_type.default_properties, *props, id_property])
            results.append({**record_json(record, names), "new": new})
        return JSONResponse(batch_json(results, started, now_ms(), []))

    @router.post(f"{base}/batch/create", dependencies=app_budget)
    async def batch_create(request: Request) -> JSONResponse:
        store = portal_of(request).store
        started = now_ms()
        inputs = _inputs(await json_body(request))
        specs = [(_properties(i.get("properties")), links_from(i.get("associations"))) for i in inputs]
        records = store.create_many(object_type, specs, API_SOURCE)
        results = [
            record_json(record, dict.fromkeys([*object_type.default_properties, *props]))
            for record, (props, _) in zip(records, specs, strict=True)
        ]
        return JSONResponse(batch_json(results, started, now_ms(), []), status_code=201)

    @router.post(f"{base}/batch/archive", dependencies=app_budget)
    async def batch_archive(request: Request) -> Response:
        store = portal_of(request).store
        inputs = _inputs(await json_body(request))
        ids = [i for i in (_record_id(item.get("id")) for item in inputs) if i is not None]
        store.archive_many(object_type, ids, API_SOURCE)
        return Response(status_code=204)

    @router.post(f"{base}/merge", dependencies=app_budget)
    async def merge(request: Request) -> JSONResponse:
        store = portal_of(request).store
        body = await json_body(request)
        primary = _record_id(body.get("primaryObjectId"))
        merged = _record_id(body.get("objectIdToMerge"))
        if primary is None or merged is None:
            raise bad_request("'primaryObjectId' and 'objectIdToMerge' must be object ids.")
        record = store.merge(object_type, primary, merged, API_SOURCE)
        names = [*object_type.default_properties, "hs_merged_object_ids"]
        return JSONResponse(record_json(record, names))

    @router.get(f"{base}/{{{id_param}}}", dependencies=app_budget)
    async def get_by_id(request: Request) -> JSONResponse:
        store = portal_of(request).store
        key = request.path_params[id_param]
        record = store.resolve(
            object_type,
            key,
            request.query_params.get("idProperty") or None,
            archived=bool_param(request, "archived"),
        )
        if record is None:
            raise not_found("Object not found.  objectId are usually numeric.", context={"id": [key]})
        names = property_names(object_type, list_param(request, "properties"), store.property_defs(object_type))
        body = record_json(record, names)
        links = associations_json(store, object_type, record.id, _plural(list_param(request, "associations") or []))
        if links:
            body["associations"] = links
        return JSONResponse(body)

    @router.patch(f"{base}/{{{id_param}}}", dependencies=app_budget)
    async def update(request: Request) -> JSONResponse:
        store = portal_of(request).store
        key = request.path_params[id_param]
        body = await json_body(request)
        record = store.resolve(object_type, key, request.query_params.get("idProperty") or None)
        if record is None:
            raise not_found("Object not found.  objectId are usually numeric.", context={"id": [key]})
        properties = _properties(body.get("properties"))
        store.update(object_type, record, properties, API_SOURCE)
        return JSONResponse(record_json(record, dict.fromkeys([*object_type.default_properties, *properties])))

    @router.delete(f"{base}/{{{id_param}}}", dependencies=app_budget)
    async def archive(request: Request) -> Response:
        record_id = _record_id(request.path_params[id_param])
        if record_id is not None:
            portal_of(request).store.archive(object_type, record_id, API_SOURCE)
        return Response(status_code=204)

    return router


def _plural(wanted: list[str]) -> list[str]:
    """``associations=company`` and ``=companies`` (and type ids) both mean companies."""
    names = {"company": "companies", "companies": "companies", "0-2": "companies"}
    names |= {"deal": "deals", "deals": "deals", "0-3": "deals"}
    return [names[w.lower()] for w in wanted if w.lower() in names]
