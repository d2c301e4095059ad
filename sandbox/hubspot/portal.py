"""What every route needs (store, limits, webhooks) and the checks that run before each vendor call.

``require_app_budget`` / ``require_search_budget`` are FastAPI dependencies: they check the bearer token
(401 ``INVALID_AUTHENTICATION`` otherwise), then draw from the right rate-limit budget (429 otherwise),
and leave the ``X-HubSpot-RateLimit-*`` headers in the request scope, where ``RateLimitHeaders`` adds
them to whatever response the route produces, errors included.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.hubspot.config import HubSpotSandboxConfig
from sandbox.hubspot.errors import HubSpotError, bad_request
from sandbox.hubspot.ratelimit import RateLimiter
from sandbox.hubspot.store import HubSpotStore
from sandbox.hubspot.webhooks import WebhookPublisher

HEADERS_KEY = "hubspot.rate_limit_headers"
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


@dataclass
class Portal:
    """One stand-in portal's parts, at ``app.state.portal``."""

    config: HubSpotSandboxConfig
    store: HubSpotStore
    limiter: RateLimiter
    webhooks: WebhookPublisher
    association_page_size: int = 500


def portal_of(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def _check(request: Request, *, search: bool) -> None:
    portal = portal_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), portal.config.token):
        raise HubSpotError(401, "INVALID_AUTHENTICATION", AUTH_MESSAGE)
    headers = portal.limiter.check(search=search)
    holder = request.scope.get(HEADERS_KEY)
    if isinstance(holder, dict):
        holder.update(headers)


def _app_budget(request: Request) -> None:
    _check(request, search=False)


def _search_budget(request: Request) -> None:
    _check(request, search=True)


require_app_budget = Depends(_app_budget)
require_search_budget = Depends(_search_budget)


class RateLimitHeaders:
    """Pure ASGI middleware: adds the rate-limit headers a dependency left in the scope to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, str] = {}
        scope[HEADERS_KEY] = holder

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and holder:
                raw = list(message.get("headers", []))
                raw.extend((k.lower().encode(), v.encode()) for k, v in holder.items())
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or HubSpot's 400 for malformed input."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise bad_request(f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(body, dict):
        raise bad_request("Invalid input JSON: expected an object.")
    return body
