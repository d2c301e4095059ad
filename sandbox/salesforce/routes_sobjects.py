"""Write-side REST resources: sObject rows, External ID upsert, sObject Collections.

- ``POST .../sobjects/{type}/`` → 201 ``{"id", "success": true, "errors": []}``.
- ``GET .../sobjects/{type}/{id}[?fields=A,B]``; ``PATCH`` → 204; ``DELETE`` → 204 (recycle bin).
  A malformed or foreign id answers 404 ``NOT_FOUND`` ("Provided external ID field does not exist or is
  not accessible"), a missing one 404 ``NOT_FOUND``, a deleted one 404 ``ENTITY_IS_DELETED``.
- ``GET``/``PATCH .../sobjects/{type}/{ExternalIdField}/{value}``: read or upsert by External ID. Upsert
  answers 201 ``{"id", "success", "errors", "created": true}`` on insert; on update 200 with
  ``"created": false`` from API v46.0 (204 with no body before); several matches 300 with the records' URLs;
  ``?updateOnly=true`` refuses to insert (404).
- ``PATCH``/``POST``/``DELETE .../composite/sobjects`` (up to 200 records; ``allOrNone`` rolls the whole
  request back) → 200 with one ``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}`` per
  record; ``GET``/``POST .../composite/sobjects/{type}`` retrieve many by id (``null`` for missing ones).

Saves of Accounts send Outbound Messages (see ``outbound``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sandbox.salesforce import ids
from sandbox.salesforce.errors import ErrorItem, RecordError, SalesforceError, json_parser_error
from sandbox.salesforce.org import (
    UPSERT_200_SINCE,
    Call,
    Org,
    authenticate,
    org_of,
    parse_field_list,
    read_json,
    record_json,
    record_url,
    require_object,
    sobject_or_404,
)
from sandbox.salesforce.schema import OBJECTS, FieldSpec, ObjectSpec, object_spec
from sandbox.salesforce.store import MultipleMatches, Record

MAX_COLLECTION = 200
MAX_RETRIEVE = 2000
ROLLED_BACK = ErrorItem(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
    (),
)

router = APIRouter()


def _rest_error(exc: RecordError) -> SalesforceError:
    return SalesforceError(exc.status, [ErrorItem(exc.item.error_code, exc.item.message, exc.item.fields or ())])


def _existing(org: Org, spec: ObjectSpec, raw_id: str) -> Record:
    canonical = ids.normalize_id(raw_id)
    if canonical is None or not canonical.startswith(spec.key_prefix):
        raise SalesforceError.one(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {raw_id}"
        )
    record = org.store.lookup(spec, canonical)
    if record is None:
        raise SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")
    if record.get("IsDeleted"):
        raise SalesforceError.one(404, "ENTITY_IS_DELETED", "entity is deleted", ())
    return record


def _notify(org: Org, call: Call, saved: list[tuple[ObjectSpec, Record]]) -> None:
    by_type: dict[str, tuple[ObjectSpec, list[Record]]] = {}
    for spec, record in saved:
        by_type.setdefault(spec.name, (spec, []))[1].append(record)
    for spec, records in by_type.values():
        if spec.name == "Account":
            org.notifier.notify(spec, records, call.base_url)


# --- single records ------------------------------------------------------------------------------------


@router.post("/services/data/{version}/sobjects/{sobject}")
@router.post("/services/data/{version}/sobjects/{sobject}/")
async def create(sobject: str, request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    body = require_object(await read_json(request))
    try:
        record = org.store.insert(spec, body, call.session.user_id)
    except RecordError as exc:
        raise _rest_error(exc) from exc
    _notify(org, call, [(spec, record)])
    return JSONResponse({"id": record["Id"], "success": True, "errors": []}, status_code=201)


@router.get("/services/data/{version}/sobjects/{sobject}/{record_id}")
async def get_record(
    sobject: str, record_id: str, request: Request, call: Call = Depends(authenticate)
) -> dict[str, Any]:
    spec = sobject_or_404(sobject)
    record = _existing(org_of(request), spec, record_id)
    wanted = request.query_params.get("fields")
    return record_json(spec, record, call.version, parse_field_list(spec, wanted) if wanted else None)


@router.patch("/services/data/{version}/sobjects/{sobject}/{record_id}")
async def update_record(sobject: str, record_id: str, request: Request, call: Call = Depends(authenticate)) -> Response:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    record = _existing(org, spec, record_id)
    body = require_object(await read_json(request))
    try:
        saved = org.store.update(spec, record["Id"], body, call.session.user_id)
    except RecordError as exc:
        raise _rest_error(exc) from exc
    _notify(org, call, [(spec, saved)])
    return Response(status_code=204)


@router.delete("/services/data/{version}/sobjects/{sobject}/{record_id}")
async def delete_record(sobject: str, record_id: str, request: Request, call: Call = Depends(authenticate)) -> Response:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    record = _existing(org, spec, record_id)
    try:
        org.store.delete(spec, record["Id"], call.session.user_id)
    except RecordError as exc:
        raise _rest_error(exc) from exc
    return Response(status_code=204)


# --- External ID ---------------------------------------------------------------------------------------


def _external_field(spec: ObjectSpec, name: str, value: str) -> FieldSpec:
    field_spec = spec.field(name)
    if field_spec is None or not field_spec.external_id or not value:
        raise SalesforceError.one(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}"
        )
    return field_spec


def _multiple(version: str, spec: ObjectSpec, record_ids: list[str]) -> JSONResponse:
    return JSONResponse([record_url(version, spec, i) for i in record_ids], status_code=300)


@router.get("/services/data/{version}/sobjects/{sobject}/{field_name}/{value:path}")
async def get_by_external_id(
    sobject: str, field_name: str, value: str, request: Request, call: Call = Depends(authenticate)
) -> Any:
    spec = sobject_or_404(sobject)
    ext = _external_field(spec, field_name, value)
    matches = org_of(request).store.find_by_external_id(spec, ext, value)
    if not matches:
        raise SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")
    if len(matches) > 1:
        return _multiple(call.version, spec, [r["Id"] for r in matches])
    return record_json(spec, matches[0], call.version)


@router.patch("/services/data/{version}/sobjects/{sobject}/{field_name}/{value:path}")
async def upsert(
    sobject: str, field_name: str, value: str, request: Request, call: Call = Depends(authenticate)
) -> Response:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    ext = _external_field(spec, field_name, value)
    body = require_object(await read_json(request))
    update_only = request.query_params.get("updateOnly", "").lower() == "true"
    try:
        record, created = org.store.upsert(spec, ext, value, body, call.session.user_id, update_only)
    except MultipleMatches as exc:
        return _multiple(call.version, spec, exc.record_ids)
    except RecordError as exc:
        raise _rest_error(exc) from exc
    _notify(org, call, [(spec, record)])
    result: dict[str, Any] = {"id": record["Id"], "success": True, "errors": []}
    if call.major >= UPSERT_200_SINCE:
        result["created"] = created
        return JSONResponse(result, status_code=201 if created else 200)
    return JSONResponse(result, status_code=201) if created else Response(status_code=204)


# --- sObject Collections -------------------------------------------------------------------------------


@dataclass
class _Op:
    """One record of a collection request, resolved as far as the request allows."""

    spec: ObjectSpec | None
    record_id: str | None
    values: dict[str, Any] = field(default_factory=dict)
    error: ErrorItem | None = None


def _result(op: _Op, error: ErrorItem | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.record_id is not None:
        out["id"] = op.record_id
    out["success"] = error is None
    out["errors"] = [] if error is None else [error.collection_body()]
    return out


def _run(
    org: Org,
    ops: list[_Op],
    all_or_none: bool,
    check: Callable[[_Op], None],
    apply: Callable[[_Op], Record | None],
) -> tuple[list[dict[str, Any]], list[tuple[ObjectSpec, Record]]]:
    """Check then apply each op; with ``all_or_none`` nothing is applied unless every op passes."""
    saved: list[tuple[ObjectSpec, Record]] = []
    with org.store.lock:
        errors: list[ErrorItem | None] = []
        for op in ops:
            error = op.error
            if error is None:
                try:
                    check(op)
                except RecordError as exc:
                    error = exc.item
            errors.append(error)
        if all_or_none and any(errors):
            return [_result(op, err or ROLLED_BACK) for op, err in zip(ops, errors, strict=True)], []
        results = []
        for op, error in zip(ops, errors, strict=True):
            if error is None:
                try:
                    record = apply(op)
                except RecordError as exc:
                    error = exc.item
                else:
                    if record is not None and op.spec is not None:
                        op.record_id = record["Id"]
                        saved.append((op.spec, record))
            results.append(_result(op, error))
    return results, saved


def _collection_body(body: Any) -> tuple[list[Any], bool]:
    body = require_object(body)
    records = body.get("records")
    if not isinstance(records, list):
        raise json_parser_error("records must be a list of sObjects")
    if len(records) > MAX_COLLECTION:
        raise SalesforceError.one(
            400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded. A request can contain up to {MAX_COLLECTION} records."
        )
    return records, bool(body.get("allOrNone", False))


def _op_from(item: Any, need_id: bool) -> _Op:
    if not isinstance(item, dict):
        return _Op(None, None, error=ErrorItem("JSON_PARSER_ERROR", "each record must be a JSON object", ()))
    values = dict(item)
    attributes = values.pop("attributes", None)
    raw_id = None
    for key in [k for k in values if k.lower() == "id"]:
        raw_id = values.pop(key)
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    spec = object_spec(type_name) if isinstance(type_name, str) else None
    if spec is None:
        return _Op(None, None, error=ErrorItem("INVALID_TYPE", "Must send a concrete entity type.", ()))
    if not need_id:
        if raw_id is not None:
            return _Op(spec, None, error=ErrorItem("INVALID_FIELD", "cannot specify Id in an insert call", ()))
        return _Op(spec, None, values)
    if not raw_id:
        return _Op(spec, None, error=ErrorItem("MISSING_ARGUMENT", "Id not specified in an update call", ()))
    canonical = ids.normalize_id(str(raw_id))
    if canonical is None or not canonical.startswith(spec.key_prefix):
        message = f"{spec.name} ID: id value of incorrect type: {raw_id}"
        return _Op(spec, None, error=ErrorItem("MALFORMED_ID", message, ("Id",)))
    return _Op(spec, canonical, values)


@router.patch("/services/data/{version}/composite/sobjects")
@router.patch("/services/data/{version}/composite/sobjects/")
async def collection_update(request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    org = org_of(request)
    records, all_or_none = _collection_body(await read_json(request))
    actor = call.session.user_id

    def check(op: _Op) -> None:
        assert op.spec is not None and op.record_id is not None
        org.store.check_update(op.spec, op.record_id, op.values)

    def apply(op: _Op) -> Record:
        assert op.spec is not None and op.record_id is not None
        return org.store.update(op.spec, op.record_id, op.values, actor)

    results, saved = _run(org, [_op_from(r, need_id=True) for r in records], all_or_none, check, apply)
    _notify(org, call, saved)
    return JSONResponse(results)


@router.post("/services/data/{version}/composite/sobjects")
@router.post("/services/data/{version}/composite/sobjects/")
async def collection_create(request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    org = org_of(request)
    records, all_or_none = _collection_body(await read_json(request))
    actor = call.session.user_id

    def check(op: _Op) -> None:
        assert op.spec is not None
        org.store.check_insert(op.spec, op.values, actor)

    def apply(op: _Op) -> Record:
        assert op.spec is not None
        return org.store.insert(op.spec, op.values, actor)

    results, saved = _run(org, [_op_from(r, need_id=False) for r in records], all_or_none, check, apply)
    _notify(org, call, saved)
    return JSONResponse(results)


@router.delete("/services/data/{version}/composite/sobjects")
@router.delete("/services/data/{version}/composite/sobjects/")
async def collection_delete(request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    org = org_of(request)
    raw_ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    if len(raw_ids) > MAX_COLLECTION:
        raise SalesforceError.one(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded: {MAX_COLLECTION}")
    all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
    ops = []
    for raw in raw_ids:
        canonical = ids.normalize_id(raw)
        spec = next((s for s in OBJECTS.values() if canonical and canonical.startswith(s.key_prefix)), None)
        if canonical is None or spec is None:
            ops.append(_Op(None, None, error=ErrorItem("MALFORMED_ID", f"malformed id {raw}", ())))
        else:
            ops.append(_Op(spec, canonical))
    actor = call.session.user_id

    def check(op: _Op) -> None:
        assert op.spec is not None and op.record_id is not None
        org.store.check_delete(op.spec, op.record_id)

    def apply(op: _Op) -> None:
        assert op.spec is not None and op.record_id is not None
        org.store.delete(op.spec, op.record_id, actor)
        return None

    results, _ = _run(org, ops, all_or_none, check, apply)
    return JSONResponse(results)


def _retrieve(org: Org, call: Call, spec: ObjectSpec, raw_ids: list[str], field_names: str) -> JSONResponse:
    if not raw_ids or not field_names:
        raise SalesforceError.one(400, "MISSING_ARGUMENT", "ids and fields are required")
    if len(raw_ids) > MAX_RETRIEVE:
        raise SalesforceError.one(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded: {MAX_RETRIEVE}")
    fields = parse_field_list(spec, field_names)
    id_field = spec.field("Id")
    assert id_field is not None
    columns = [id_field, *(f for f in fields if f.name != "Id")]
    out: list[dict[str, Any] | None] = []
    for raw in raw_ids:
        record = org.store.lookup(spec, raw)
        if record is None or record.get("IsDeleted") or not record["Id"].startswith(spec.key_prefix):
            out.append(None)
        else:
            out.append(record_json(spec, record, call.version, columns))
    return JSONResponse(out)


@router.get("/services/data/{version}/composite/sobjects/{sobject}")
async def collection_retrieve(sobject: str, request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    spec = sobject_or_404(sobject)
    raw_ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    return _retrieve(org_of(request), call, spec, raw_ids, request.query_params.get("fields", ""))


@router.post("/services/data/{version}/composite/sobjects/{sobject}")
async def collection_retrieve_post(sobject: str, request: Request, call: Call = Depends(authenticate)) -> JSONResponse:
    spec = sobject_or_404(sobject)
    body = require_object(await read_json(request))
    raw_ids = body.get("ids")
    fields = body.get("fields")
    if not isinstance(raw_ids, list) or not isinstance(fields, list):
        raise SalesforceError.one(400, "MISSING_ARGUMENT", "ids and fields are required")
    return _retrieve(org_of(request), call, spec, [str(i) for i in raw_ids], ",".join(str(f) for f in fields))
