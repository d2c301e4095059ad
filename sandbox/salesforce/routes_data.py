"""Read-side REST resources: versions, limits, SOQL query/queryAll with cursors, describe, updated/deleted.

- ``GET /services/data/`` lists API versions (no session needed, as on the real platform).
- ``GET .../query/?q=SOQL`` and ``.../queryAll/?q=SOQL``: ``{"totalSize", "done", ["nextRecordsUrl"],
  "records"}``; the page size is the configured ``batch_size`` unless ``Sforce-Query-Options: batchSize=N``
  asks for another (clamped to 200..2000). ``nextRecordsUrl`` is ``/services/data/vXX.X/query/01g...-N`` for
  both, and ``.../query/{locator}`` and ``.../queryAll/{locator}`` both serve it.
- ``GET .../limits/`` reports ``DailyApiRequests: {"Max", "Remaining"}`` (and a few other limits).
- ``GET .../sobjects/``, ``.../sobjects/{type}/``, ``.../sobjects/{type}/describe/``: describe results.
- ``GET .../sobjects/{type}/updated/`` and ``/deleted/`` with ``start``/``end``: ids changed or deleted in a
  window no older than 30 days (``INVALID_REPLICATION_DATE`` otherwise).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sandbox.salesforce import query as soql_query
from sandbox.salesforce.cursors import Page
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.org import MAX_VERSION, Call, authenticate, org_of, sobject_or_404
from sandbox.salesforce.schema import OBJECTS, ObjectSpec, format_datetime, now_utc, parse_api_datetime

MIN_BATCH, MAX_BATCH = 200, 2000
REPLICATION_WINDOW = timedelta(days=30)
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)

router = APIRouter()


def _release(major: int) -> str:
    seasons = ("Spring", "Summer", "Winter")
    # v59.0 is Winter '24, then Spring '24, Summer '24, Winter '25...: three releases a year.
    offset = major - 59
    season = seasons[(2 + offset) % 3]
    year = 24 + offset // 3
    return f"{season} '{year:02d}"


@router.get("/services/data")
@router.get("/services/data/")
async def versions() -> list[dict[str, str]]:
    return [
        {"label": _release(major), "url": f"/services/data/v{major}.0", "version": f"{major}.0"}
        for major in range(MAX_VERSION - 10, MAX_VERSION + 1)
    ]


@router.get("/services/data/{version}")
@router.get("/services/data/{version}/")
async def resources(call: Call = Depends(authenticate)) -> dict[str, str]:
    base = f"/services/data/v{call.version}"
    return {name: f"{base}/{name}" for name in ("limits", "query", "queryAll", "sobjects", "composite")}


@router.get("/services/data/{version}/limits")
@router.get("/services/data/{version}/limits/")
async def limits(request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    usage = org_of(request).store.usage
    return {
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "DailyApiRequests": {"Max": usage.limit, "Remaining": max(0, usage.limit - usage.used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "SingleEmail": {"Max": 15, "Remaining": 15},
    }


def _batch_size(request: Request, default: int) -> int:
    match = _BATCH_RE.search(request.headers.get("sforce-query-options", ""))
    if match is None:
        return default
    return min(MAX_BATCH, max(MIN_BATCH, int(match.group(1))))


def _page_body(page: Page, version: str) -> dict[str, Any]:
    body: dict[str, Any] = {"totalSize": page.total_size, "done": page.next_locator is None}
    if page.next_locator is not None:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{page.next_locator}"
    body["records"] = page.records
    return body


def _run_query(request: Request, call: Call, include_deleted: bool) -> dict[str, Any]:
    org = org_of(request)
    text = request.query_params.get("q")
    if not text:
        raise SalesforceError.one(400, "MALFORMED_QUERY", "A query string has to be specified")
    result = soql_query.execute(org.store, text, include_deleted, call.version, now_utc())
    if result.count_only:
        return {"totalSize": result.total_size, "done": True, "records": []}
    batch = _batch_size(request, org.config.batch_size)
    return _page_body(org.cursors.first_page(result.records, batch, call.session.user_id), call.version)


@router.get("/services/data/{version}/query")
@router.get("/services/data/{version}/query/")
async def query(request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    return _run_query(request, call, include_deleted=False)


@router.get("/services/data/{version}/queryAll")
@router.get("/services/data/{version}/queryAll/")
async def query_all(request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    return _run_query(request, call, include_deleted=True)


@router.get("/services/data/{version}/query/{locator}")
@router.get("/services/data/{version}/queryAll/{locator}")
async def query_more(locator: str, request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    page = org_of(request).cursors.next_page(locator, call.session.user_id)
    return _page_body(page, call.version)


def _describe_field(spec: ObjectSpec, name: str) -> dict[str, Any]:
    field = spec.field(name)
    assert field is not None
    return {
        "name": field.name,
        "label": field.label,
        "type": field.type.value,
        "length": field.length,
        "custom": field.custom,
        "externalId": field.external_id,
        "idLookup": field.name == "Id" or field.external_id,
        "unique": False,
        "nillable": field.nillable,
        "createable": field.createable,
        "updateable": field.updateable,
        "filterable": True,
        "sortable": True,
        "referenceTo": [field.reference_to] if field.reference_to else [],
        "relationshipName": field.relationship_name,
    }


def _object_summary(spec: ObjectSpec, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{spec.name}"
    return {
        "name": spec.name,
        "label": spec.name,
        "keyPrefix": spec.key_prefix,
        "custom": False,
        "queryable": True,
        "createable": True,
        "updateable": True,
        "deletable": spec.has_is_deleted,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }


@router.get("/services/data/{version}/sobjects")
@router.get("/services/data/{version}/sobjects/")
async def describe_global(call: Call = Depends(authenticate)) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [_object_summary(spec, call.version) for spec in OBJECTS.values()],
    }


@router.get("/services/data/{version}/sobjects/{sobject}/describe")
@router.get("/services/data/{version}/sobjects/{sobject}/describe/")
async def describe(sobject: str, call: Call = Depends(authenticate)) -> dict[str, Any]:
    spec = sobject_or_404(sobject)
    return {**_object_summary(spec, call.version), "fields": [_describe_field(spec, f.name) for f in spec.fields]}


def _window(request: Request) -> tuple[Any, Any]:
    start = parse_api_datetime(request.query_params.get("start", ""))
    end = parse_api_datetime(request.query_params.get("end", ""))
    if start is None or end is None:
        raise SalesforceError.one(400, "MALFORMED_QUERY", "start and end must be valid dateTime values")
    now = now_utc()
    if end < start:
        raise SalesforceError.one(400, "INVALID_REPLICATION_DATE", "EndDate can not be before StartDate")
    if start < now - REPLICATION_WINDOW:
        raise SalesforceError.one(400, "INVALID_REPLICATION_DATE", "startDate can not be more than 30 days ago")
    latest = min(end, now)
    return start, latest


@router.get("/services/data/{version}/sobjects/{sobject}/deleted")
@router.get("/services/data/{version}/sobjects/{sobject}/deleted/")
async def deleted(sobject: str, request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    spec = sobject_or_404(sobject)
    start, latest = _window(request)
    store = org_of(request).store
    out = []
    with store.lock:
        for record_id, record in store.rows(spec).items():
            when = store.deleted_at(spec, record_id)
            if record.get("IsDeleted") and when is not None and start <= when <= latest:
                out.append({"id": record_id, "deletedDate": format_datetime(when)})
    out.sort(key=lambda item: (item["deletedDate"], item["id"]))
    earliest = (now_utc() - timedelta(days=15)).replace(second=0)
    return {
        "deletedRecords": out,
        "earliestDateAvailable": format_datetime(earliest),
        "latestDateCovered": format_datetime(latest),
    }


@router.get("/services/data/{version}/sobjects/{sobject}/updated")
@router.get("/services/data/{version}/sobjects/{sobject}/updated/")
async def updated(sobject: str, request: Request, call: Call = Depends(authenticate)) -> dict[str, Any]:
    spec = sobject_or_404(sobject)
    start, latest = _window(request)
    store = org_of(request).store
    with store.lock:
        found = sorted(r["Id"] for r in store.iter_live(spec) if start <= r["SystemModstamp"] <= latest)
    return {"ids": found, "latestDateCovered": format_datetime(latest)}


@router.get("/services/data/{version}/sobjects/{sobject}")
@router.get("/services/data/{version}/sobjects/{sobject}/")
async def sobject_basic_info(sobject: str, call: Call = Depends(authenticate)) -> JSONResponse:
    spec = sobject_or_404(sobject)
    return JSONResponse({"objectDescribe": _object_summary(spec, call.version), "recentItems": []})
