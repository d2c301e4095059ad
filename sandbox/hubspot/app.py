"""The HubSpot stand-in: a FastAPI app speaking the CRM API paths and shapes ``hubspot-api-client`` 12 uses.

Vendor API (``Authorization: Bearer <token>``, else 401 ``INVALID_AUTHENTICATION``):

- ``GET/POST /crm/v3/objects/{deals,companies}`` (or by object type id, ``0-3``, ``0-2``); ``GET/PATCH/DELETE
  .../{id}`` (``idProperty``, ``archived``, ``properties``, ``associations``); ``POST .../search``; ``POST .../merge``;
  ``POST .../batch/{read,update,upsert,create,archive}`` (207 with ``errors[].context.ids`` for unknown ids)
- ``GET /crm/v3/owners/`` and ``/crm/v3/owners/{ownerId}``
- ``GET/POST /crm/v3/properties/{objectType}``, ``GET .../{propertyName}`` (create: 201, duplicate: 409)
- ``POST /crm/v4/associations/{deals,companies}/{companies,deals}/batch/read``,
  ``GET /crm/v4/objects/{type}/{id}/associations/{toType}``

Every vendor error carries HubSpot's error body, FastAPI's own 404/405/422 included (``http_errors``).
Every vendor response carries ``X-HubSpot-RateLimit-*`` headers; over budget answers 429 ``RATE_LIMITS``.
Every change (API or admin) is sent as a signed v3 webhook to the configured URL.

Admin (``/_sandbox``, no auth, exempt from faults, counters and rate limits):

- shared (``sandbox.common``): ``GET health``, ``GET stats``, ``POST faults``, ``POST reset``
- ``POST seed`` ``{count, start=0, owners=10, external_ids=true, notify=false}``: deterministic data
- ``GET summary``: active/archived counts per object type, owner count
- ``PATCH objects/{type}/{id}`` ``{properties, change_source="CRM_UI"}``: edit as a UI user would
- ``DELETE objects/{type}/{id}[?permanent=true]``: archive (or purge for good)
- ``POST objects/{type}/merge`` ``{primary_id, merged_id}``
- ``POST objects/{type}/modified`` ``{timestamp, ids?}``: many records to one ``hs_lastmodifieddate``
- ``GET webhook`` / ``PUT webhook {url, format}`` / ``POST webhook/drain``: delivery target, format (``legacy`` or
  ``generic``; ``reset`` restores the configured one) and counters
- ``PUT ratelimits`` ``{app_limit_per_10s, search_limit_per_s, daily_limit}``
- ``POST ratelimits/search-throttle`` ``{count}``: the next ``count`` searches answer 429 ``SECONDLY``
- ``PUT associations/paging`` ``{page_size}``: links per input in a v4 association batch-read answer
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import install_sandbox
from sandbox.hubspot import admin, crm_api
from sandbox.hubspot.config import HubSpotSandboxConfig
from sandbox.hubspot.errors import HubSpotError, error_body
from sandbox.hubspot.http_errors import install_hubspot_error_bodies
from sandbox.hubspot.model import COMPANIES, DEALS
from sandbox.hubspot.objects_api import objects_router
from sandbox.hubspot.portal import HEADERS_KEY, Portal, RateLimitHeaders
from sandbox.hubspot.ratelimit import RateLimited, RateLimiter, RateLimitSettings, injected_rate_limit
from sandbox.hubspot.store import HubSpotStore
from sandbox.hubspot.webhooks import WebhookPublisher


def create_app(config: HubSpotSandboxConfig | None = None) -> FastAPI:
    """A ready HubSpot stand-in; ``app.state.store``, ``app.state.kit`` and ``app.state.portal`` expose it."""
    config = config or HubSpotSandboxConfig()
    webhooks = WebhookPublisher(
        config.portal_id, config.app_id, config.app_secret, config.webhook_url, config.webhook_format
    )
    store = HubSpotStore(config.portal_id, listener=webhooks.publish)
    limiter = RateLimiter(RateLimitSettings(config.app_limit_per_10s, config.search_limit_per_s, config.daily_limit))
    portal = Portal(config, store, limiter, webhooks, config.association_page_size)
    if config.seed:
        store.seed(config.seed_start, config.seed)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        webhooks.close()

    app = FastAPI(title="HubSpot stand-in", lifespan=lifespan)
    app.state.portal = portal
    app.state.store = store

    @app.exception_handler(HubSpotError)
    async def _hubspot_error(request: Request, exc: HubSpotError) -> Response:
        if isinstance(exc, RateLimited):
            holder = request.scope.get(HEADERS_KEY)
            if isinstance(holder, dict):
                holder.update(exc.headers)
        return exc.response()

    for kind in (DEALS, COMPANIES):
        app.include_router(objects_router(kind))
        app.include_router(objects_router(kind, kind.type_id))
    app.include_router(crm_api.router)
    install_hubspot_error_bodies(app)
    app.include_router(admin.router)
    app.add_middleware(RateLimitHeaders)

    def fault(status: int, retry_after_s: float) -> Response:
        if status == 429:
            error = injected_rate_limit(limiter.settings)
            return error.response(headers=error.headers)
        body = error_body("INTERNAL_ERROR", "internal error")
        return JSONResponse(body, status_code=status)

    def reset() -> None:
        store.reset()
        limiter.reset()
        webhooks.reset()
        portal.association_page_size = config.association_page_size

    app.state.kit = install_sandbox(app, fault, reset)
    return app
