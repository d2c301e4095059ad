"""Admin routes under ``/_sandbox/`` (exempt from faults, counters and the API allowance).

They stand in for what people and the platform do in a real org, outside the API under test:

- ``POST /_sandbox/seed`` ``{"count", "start": 0, "users": 10, "notify": false}``: deterministic accounts
  ``start..start+count-1`` and sales-rep users ``0..users-1``; ``notify`` also sends Outbound Messages.
- ``GET /_sandbox/sobjects/{type}/{id}``: a record as stored (recycle bin included).
- ``PATCH /_sandbox/sobjects/{type}/{id}[?as_user=005...]`` ``{field: value}``: edit as a person in the UI
  would (by default as the account's owner): modification stamps bumped, Outbound Message sent.
- ``DELETE /_sandbox/sobjects/{type}/{id}[?hard=true]``: to the recycle bin, or purged for good.
- ``POST /_sandbox/sobjects/{type}/{id}/undelete``: back from the recycle bin.
- ``POST /_sandbox/modstamp`` ``{"sobject": "Account", "value": "<datetime>", "ids": [...] | null,
  "limit": n | null}``: give many rows one ``SystemModstamp`` (no ids: every live row, in Id order).
- ``POST /_sandbox/tokens/expire``: expire every issued access token now.
- ``GET|POST /_sandbox/limits`` ``{"used", "max"}``: read or set the daily API usage.
- ``GET|POST /_sandbox/outbound`` ``{"url"}``: Outbound Message listener URL and delivery counters.
- ``POST /_sandbox/oauth`` ``{"jwt_audiences": [...] | null, "client_credentials_user": bool}``: what the
  token endpoint accepts (``POST /_sandbox/reset`` restores the configured values).
- ``POST /_sandbox/request-limit`` ``{"max_bytes"}``: the URI + headers limit (414 / 431 past it).
- ``GET /_sandbox/summary``: record counts, API usage, open cursors, outbound counters.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.salesforce.errors import RecordError, SalesforceError
from sandbox.salesforce.org import Org, base_url, org_of, read_json, record_json, require_object, sobject_or_404
from sandbox.salesforce.schema import ACCOUNT, ObjectSpec, parse_api_datetime
from sandbox.salesforce.store import ADMIN_USER_ID, Record

ADMIN_VERSION = "59.0"

router = APIRouter(prefix="/_sandbox")


class SeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(0, ge=0, le=1_000_000)
    start: int = Field(0, ge=0)
    users: int = Field(10, ge=0, le=100_000)
    notify: bool = False


class ModstampRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sobject: str = "Account"
    value: str
    ids: list[str] | None = None
    limit: int | None = Field(None, ge=0)


class OAuthRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jwt_audiences: list[str] | None = None
    client_credentials_user: bool = True


class RequestLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(ge=256, le=1_048_576)


class LimitsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    used: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class OutboundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None


def _notify(org: Org, request: Request, spec: ObjectSpec, records: list[Record]) -> None:
    if spec is ACCOUNT:
        org.notifier.notify(spec, records, base_url(request))


def _record_error(exc: RecordError) -> SalesforceError:
    return SalesforceError(exc.status, [exc.item])


@router.post("/seed")
async def seed(body: SeedRequest, request: Request) -> dict[str, Any]:
    org = org_of(request)
    records = org.store.seed(body.count, body.start, body.users)
    if body.notify:
        _notify(org, request, ACCOUNT, records)
    return {
        "accounts": len(records),
        "users": body.users,
        "first_id": records[0]["Id"] if records else None,
        "last_id": records[-1]["Id"] if records else None,
    }


@router.get("/sobjects/{sobject}/{record_id}")
async def get_record(sobject: str, record_id: str, request: Request) -> dict[str, Any]:
    spec = sobject_or_404(sobject)
    record = org_of(request).store.lookup(spec, record_id)
    if record is None:
        raise SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")
    return record_json(spec, record, ADMIN_VERSION)


@router.patch("/sobjects/{sobject}/{record_id}")
async def edit_record(sobject: str, record_id: str, request: Request) -> dict[str, Any]:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    values = require_object(await read_json(request))
    current = org.store.lookup(spec, record_id)
    default_actor = (current or {}).get("OwnerId") or ADMIN_USER_ID
    actor = request.query_params.get("as_user") or default_actor
    try:
        saved = org.store.update(spec, record_id, values, actor)
    except RecordError as exc:
        raise _record_error(exc) from exc
    _notify(org, request, spec, [saved])
    return record_json(spec, saved, ADMIN_VERSION)


@router.delete("/sobjects/{sobject}/{record_id}")
async def delete_record(sobject: str, record_id: str, request: Request) -> dict[str, Any]:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    if request.query_params.get("hard", "").lower() == "true":
        if not org.store.purge(spec, record_id):
            raise SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")
        return {"purged": True}
    current = org.store.lookup(spec, record_id)
    actor = request.query_params.get("as_user") or (current or {}).get("OwnerId") or ADMIN_USER_ID
    try:
        saved = org.store.delete(spec, record_id, actor)
    except RecordError as exc:
        raise _record_error(exc) from exc
    return record_json(spec, saved, ADMIN_VERSION)


@router.post("/sobjects/{sobject}/{record_id}/undelete")
async def undelete_record(sobject: str, record_id: str, request: Request) -> dict[str, Any]:
    org = org_of(request)
    spec = sobject_or_404(sobject)
    actor = request.query_params.get("as_user") or ADMIN_USER_ID
    try:
        saved = org.store.undelete(spec, record_id, actor)
    except RecordError as exc:
        raise _record_error(exc) from exc
    _notify(org, request, spec, [saved])
    return record_json(spec, saved, ADMIN_VERSION)


@router.post("/modstamp")
async def set_modstamp(body: ModstampRequest, request: Request) -> dict[str, Any]:
    spec = sobject_or_404(body.sobject)
    value = parse_api_datetime(body.value)
    if value is None:
        raise SalesforceError.one(400, "INVALID_FIELD", f"not a datetime: {body.value}")
    try:
        changed = org_of(request).store.set_modstamp(spec, value, body.ids, body.limit)
    except RecordError as exc:
        raise _record_error(exc) from exc
    return {"updated": len(changed), "ids": changed}


@router.post("/tokens/expire")
async def expire_tokens(request: Request) -> dict[str, int]:
    return {"expired": org_of(request).tokens.expire_all()}


def _limits(org: Org) -> dict[str, int]:
    return {"used": org.store.usage.used, "max": org.store.usage.limit}


@router.get("/limits")
async def get_limits(request: Request) -> dict[str, int]:
    return _limits(org_of(request))


@router.post("/limits")
async def set_limits(body: LimitsRequest, request: Request) -> dict[str, int]:
    org = org_of(request)
    org.store.usage.set(used=body.used, limit=body.max)
    return _limits(org)


def _outbound(org: Org) -> dict[str, Any]:
    sender = org.notifier.sender
    return {
        "url": org.notifier.url,
        "messages_queued": org.notifier.messages_queued,
        "notifications_queued": org.notifier.notifications_queued,
        "delivered": sender.delivered,
        "failed": sender.failed,
        "attempts": sender.attempts,
        "pending": sender.pending(),
    }


@router.get("/outbound")
async def get_outbound(request: Request) -> dict[str, Any]:
    return _outbound(org_of(request))


@router.post("/outbound")
async def set_outbound(body: OutboundRequest, request: Request) -> dict[str, Any]:
    org = org_of(request)
    org.notifier.url = body.url
    return _outbound(org)


@router.get("/summary")
async def summary(request: Request) -> dict[str, Any]:
    org = org_of(request)
    return {
        "records": org.store.counts(),
        "limits": _limits(org),
        "open_cursors": org.cursors.open_count(),
        "outbound": _outbound(org),
    }


@router.post("/oauth")
async def oauth_settings(body: OAuthRequest, request: Request) -> dict[str, Any]:
    org = org_of(request)
    audiences = tuple(body.jwt_audiences) if body.jwt_audiences is not None else None
    org.oauth.settings = replace(
        org.oauth.settings, jwt_audiences=audiences, client_credentials_user=body.client_credentials_user
    )
    return body.model_dump()


@router.post("/request-limit")
async def request_limit(body: RequestLimit, request: Request) -> dict[str, int]:
    org_of(request).max_request_bytes = body.max_bytes
    return body.model_dump()
