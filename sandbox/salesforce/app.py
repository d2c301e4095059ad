"""The Salesforce stand-in app: a FastAPI server that simple-salesforce 1.12 talks to unchanged (over TLS).

Vendor endpoints (wire format of the real REST API, v20.0 to v62.0):

- ``POST /services/oauth2/token``: password, JWT bearer and client-credentials grants (``auth``).
- ``GET /services/data/vXX.X/query/``, ``/queryAll/``, ``/query/{locator}``: SOQL (``soql``, ``query``)
  with server-side cursors (``cursors``); ``/limits/``; describe; ``sobjects/{type}/updated|deleted``
  (``routes_data``).
- ``sobjects/{type}`` create, ``sobjects/{type}/{id}`` GET/PATCH/DELETE, upsert by External ID,
  ``composite/sobjects`` (``routes_sobjects``).

Every ``/services/data`` response carries ``Sforce-Limit-Info: api-usage=used/max``; authenticated calls
count against the daily allowance and get 403 ``REQUEST_LIMIT_EXCEEDED`` past it. Errors are Salesforce's
JSON lists ``[{"message", "errorCode"[, "fields"]}]``. Saves of Accounts post SOAP Outbound Messages to
``outbound_url`` (``outbound``).

Shared machinery (``sandbox.common``): ``GET /_sandbox/health``, ``GET /_sandbox/stats``,
``POST /_sandbox/faults`` (injected 429s answer ``[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message":
"ConcurrentPerOrgLongTxn Limit exceeded."}]``, 5xx ``UNKNOWN_EXCEPTION``), ``POST /_sandbox/reset``.

Admin endpoints of this stand-in (see ``routes_admin``): ``POST /_sandbox/seed``,
``GET|PATCH|DELETE /_sandbox/sobjects/{type}/{id}``, ``POST /_sandbox/sobjects/{type}/{id}/undelete``,
``POST /_sandbox/modstamp``, ``POST /_sandbox/tokens/expire``, ``GET|POST /_sandbox/limits``,
``POST /_sandbox/oauth`` (accepted JWT audiences, client-credentials Run As user),
``POST /_sandbox/request-limit`` (the URI + headers limit: 414 / 431 past it),
``GET|POST /_sandbox/outbound``, ``GET /_sandbox/summary``.

``create_app(config)`` returns the app with ``app.state.kit`` (``SandboxKit``), ``app.state.store``
(``Store``) and ``app.state.org`` (``Org``: store, tokens, cursors, outbound notifier).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common import install_sandbox
from sandbox.salesforce import routes_admin, routes_data, routes_sobjects
from sandbox.salesforce.auth import OAuthSettings, TokenEndpoint, TokenStore
from sandbox.salesforce.config import SalesforceSandboxConfig
from sandbox.salesforce.cursors import CursorStore
from sandbox.salesforce.errors import OAuthError, RecordError, SalesforceError, fault_body
from sandbox.salesforce.org import Org, base_url, org_of
from sandbox.salesforce.outbound import OutboundMessageSender, OutboundNotifier
from sandbox.salesforce.store import ApiUsage, Store

DATA_PREFIX = "/services/data"


class LimitInfoMiddleware:
    """Adds ``Sforce-Limit-Info: api-usage=used/max`` to every ``/services/data`` response, faults included."""

    def __init__(self, app: ASGIApp, usage: ApiUsage) -> None:
        self.app = app
        self.usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(DATA_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Sforce-Limit-Info", self.usage.header())
            await send(message)

        await self.app(scope, receive, send_with_header)


class RequestSizeLimit:
    """Salesforce's limit on one request's size: URI plus headers at most ``org.max_request_bytes`` (16,384).

    A URI over the limit on its own answers 414 ``URI Too Long``; URI and headers together over it answer 431
    ``Request Header Fields Too Large`` (Salesforce Help 000386264). The answer is the edge's plain text, not the
    REST API's JSON, and nothing behind it runs (no allowance is spent, no request counted).
    """

    def __init__(self, app: ASGIApp, org: Org) -> None:
        self.app = app
        self.org = org

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/services"):
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        limit = self.org.max_request_bytes
        status = 414 if len(target) > limit else 431 if len(target) + header_bytes > limit else 0
        if not status:
            await self.app(scope, receive, send)
            return
        text = "URI Too Long" if status == 414 else "Request Header Fields Too Large"
        await PlainTextResponse(text, status_code=status)(scope, receive, send)


def _fault_responder(status: int, retry_after_s: float) -> Response:
    return JSONResponse(fault_body(status), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SalesforceError)
    async def salesforce_error(request: Request, exc: SalesforceError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RecordError)
    async def record_error(request: Request, exc: RecordError) -> Response:
        return JSONResponse([exc.item.rest_body()], status_code=exc.status)

    @app.exception_handler(OAuthError)
    async def oauth_error(request: Request, exc: OAuthError) -> Response:
        return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/services"):
            return await http_exception_handler(request, exc)
        if exc.status_code == 405:
            body = [
                {
                    "errorCode": "METHOD_NOT_ALLOWED",
                    "message": f"HTTP Method '{request.method}' not allowed. Allowed are GET,PATCH,POST,DELETE",
                }
            ]
            return JSONResponse(body, status_code=405)
        body = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        return JSONResponse(body, status_code=exc.status_code)


def create_app(config: SalesforceSandboxConfig | None = None) -> FastAPI:
    """Build one stand-in org from ``config`` (seeded at once when ``config.seed`` > 0)."""
    config = config or SalesforceSandboxConfig()
    store = Store(config.username, config.daily_api_limit)
    if config.seed:
        store.seed(config.seed, config.seed_start)
    tokens = TokenStore(config.org_id, config.token_lifetime_s)
    sender = OutboundMessageSender(max_attempts=config.outbound_attempts, base_delay_s=config.outbound_retry_base_s)
    notifier = OutboundNotifier(config.org_id, config.outbound_url, sender, tokens)
    oauth = TokenEndpoint(
        OAuthSettings(
            org_id=config.org_id,
            username=config.username,
            password=config.password,
            client_id=config.client_id,
            client_secret=config.client_secret,
            jwt_public_key_pem=config.jwt_public_key_pem,
            jwt_audiences=config.jwt_audiences,
            client_credentials_user=config.client_credentials_user,
        ),
        store,
        tokens,
    )
    org = Org(config, store, tokens, CursorStore(), notifier, oauth, config.max_request_bytes)

    app = FastAPI(title="Salesforce stand-in", redirect_slashes=False)
    app.state.org = org
    app.state.store = store
    _install_error_handlers(app)

    @app.post("/services/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        form = dict(request.query_params)
        form.update(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        body = org_of(request).oauth.grant(form, request.headers.get("authorization"), base_url(request))
        return JSONResponse(body)

    @app.get("/services/oauth2/userinfo")
    async def userinfo(request: Request) -> Response:
        """The OpenID Connect UserInfo endpoint (help.salesforce.com, "Query for User Information"): who the
        bearer token's user is and ``organization_id``, the 18-character org id. A bad token: 403."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        session = org_of(request).tokens.check(token.strip()) if scheme.lower() == "bearer" else None
        if session is None:
            return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
        base = base_url(request)
        return JSONResponse(
            {
                "sub": f"{base}/id/{config.org_id}/{session.user_id}",
                "user_id": session.user_id,
                "organization_id": config.org_id,
                "preferred_username": config.username,
                "email": config.username,
                "zoneinfo": "GMT",
                "urls": {"rest": f"{base}/services/data/v{{version}}/"},
            }
        )

    app.include_router(routes_data.router)
    app.include_router(routes_sobjects.router)
    app.include_router(routes_admin.router)

    initial_oauth = oauth.settings

    def reset() -> None:
        store.reset()
        org.cursors.clear()
        notifier.reset_counters()
        oauth.settings = initial_oauth
        org.max_request_bytes = config.max_request_bytes

    app.state.kit = install_sandbox(app, _fault_responder, reset)
    app.add_middleware(LimitInfoMiddleware, usage=store.usage)
    app.add_middleware(RequestSizeLimit, org=org)
    return app
