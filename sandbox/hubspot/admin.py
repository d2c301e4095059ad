"""``/_sandbox/...`` routes that drive the stand-in from tests and demos (no auth, no rate limits, no faults).

Edits made here behave like a person working in HubSpot's UI: they are validated like API writes, bump
``hs_lastmodifieddate`` and send webhooks with ``changeSource: CRM_UI``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sandbox.common import ADMIN_PREFIX
from sandbox.hubspot.errors import bad_request, not_found
from sandbox.hubspot.model import COMPANIES, DEALS, ObjectType, object_type
from sandbox.hubspot.portal import portal_of
from sandbox.hubspot.ratelimit import RateLimitSettings
from sandbox.hubspot.render import record_json
from sandbox.hubspot.timefmt import parse_timestamp

router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)
UI_SOURCE = "CRM_UI"


class SeedRequest(BaseModel):
    """Seed identities ``start..start+count-1`` (companies, their deals) and owners ``0..owners-1``."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, le=1_000_000)
    start: int = Field(0, ge=0)
    owners: int = Field(10, ge=0, le=1_000)
    external_ids: bool = True
    notify: bool = False


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    properties: dict[str, Any]
    change_source: str = UI_SOURCE


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_id: int
    merged_id: int


class ModifiedRequest(BaseModel):
    """Set ``hs_lastmodifieddate`` of ``ids`` (all active records when omitted) to one ``timestamp``."""

    model_config = ConfigDict(extra="forbid")

    timestamp: int | str
    ids: list[int] | None = None


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None
    format: Literal["legacy", "generic"] | None = None


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_limit_per_10s: int = Field(190, ge=0)
    search_limit_per_s: int = Field(5, ge=0)
    daily_limit: int = Field(500_000, ge=0)


class SearchThrottle(BaseModel):
    """The next ``count`` search requests answer 429 (policy ``SECONDLY``)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, le=1_000)


class AssociationPaging(BaseModel):
    """Links per input in one v4 association batch-read answer (HubSpot pages each input on its own)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(ge=1, le=10_000)


def _kind(name: str) -> ObjectType:
    found = object_type(name)
    if found is None:
        raise bad_request(f"Unknown object type '{name}': deals or companies.")
    return found


@router.post("/seed")
def seed(request: Request, body: SeedRequest) -> dict[str, Any]:
    store = portal_of(request).store
    store.ensure_owners(body.owners)
    plan = store.seed(body.start, body.count, external_ids=body.external_ids, notify=body.notify)
    return {**plan.summary(), "owners": len(store.owner_list())}


@router.get("/summary")
def summary(request: Request) -> dict[str, Any]:
    store = portal_of(request).store
    return {
        kind.plural: {"active": store.count(kind), "archived": store.count(kind, archived=True)}
        for kind in (DEALS, COMPANIES)
    } | {"owners": len(store.owner_list())}


@router.patch("/objects/{object_type}/{record_id}")
def edit(request: Request, object_type: str, record_id: int, body: EditRequest) -> dict[str, Any]:
    kind = _kind(object_type)
    store = portal_of(request).store
    record = store.get(kind, record_id)
    if record is None:
        raise not_found(f"{kind.upper} {record_id} not found.")
    store.update(kind, record, body.properties, body.change_source)
    return record_json(record, dict.fromkeys([*kind.default_properties, *body.properties]))


@router.delete("/objects/{object_type}/{record_id}")
def delete(request: Request, object_type: str, record_id: int, permanent: bool = False) -> dict[str, Any]:
    kind = _kind(object_type)
    store = portal_of(request).store
    done = store.purge(kind, record_id, UI_SOURCE) if permanent else store.archive(kind, record_id, UI_SOURCE)
    if not done:
        raise not_found(f"{kind.upper} {record_id} not found.")
    return {"id": str(record_id), "archived": not permanent, "purged": permanent}


@router.post("/objects/{object_type}/merge")
def merge(request: Request, object_type: str, body: MergeRequest) -> dict[str, Any]:
    kind = _kind(object_type)
    record = portal_of(request).store.merge(kind, body.primary_id, body.merged_id, UI_SOURCE)
    return record_json(record, [*kind.default_properties, "hs_merged_object_ids"])


@router.post("/objects/{object_type}/modified")
def set_modified(request: Request, object_type: str, body: ModifiedRequest) -> dict[str, int]:
    kind = _kind(object_type)
    ms = parse_timestamp(str(body.timestamp))
    if ms is None:
        raise bad_request(f"Invalid timestamp '{body.timestamp}': epoch ms or ISO 8601.")
    return {"updated": portal_of(request).store.set_modified(kind, body.ids, ms)}


@router.get("/webhook")
def webhook_status(request: Request) -> dict[str, Any]:
    return portal_of(request).webhooks.stats()


@router.put("/webhook")
def webhook_target(request: Request, body: WebhookTarget) -> dict[str, Any]:
    webhooks = portal_of(request).webhooks
    webhooks.url = body.url
    if body.format is not None:
        webhooks.format = body.format
    return webhooks.stats()


@router.post("/webhook/drain")
def webhook_drain(request: Request, timeout: float = 10.0) -> JSONResponse:
    webhooks = portal_of(request).webhooks
    drained = webhooks.drain(timeout)
    return JSONResponse({"drained": drained, **webhooks.stats()}, status_code=200 if drained else 504)


@router.put("/ratelimits")
def rate_limits(request: Request, body: RateLimits) -> dict[str, int]:
    settings = RateLimitSettings(body.app_limit_per_10s, body.search_limit_per_s, body.daily_limit)
    portal_of(request).limiter.configure(settings)
    return body.model_dump()


@router.post("/ratelimits/search-throttle")
def search_throttle(request: Request, body: SearchThrottle) -> dict[str, int]:
    portal_of(request).limiter.throttle_searches(body.count)
    return body.model_dump()


@router.put("/associations/paging")
def association_paging(request: Request, body: AssociationPaging) -> dict[str, int]:
    portal_of(request).association_page_size = body.page_size
    return body.model_dump()
