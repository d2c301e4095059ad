"""The Zendesk Support stand-in: a FastAPI app speaking the Support API's wire format for organizations.

What it serves (every route behind API token authentication: ``Authorization: Basic base64({email}/token:{token})``;
anything else is 401 ``{"error": "Couldn't authenticate you"}``):

- ``GET /api/v2/organizations``: cursor pagination with ``page[size]`` (1-100, else 400) and ``page[after]``
  (``meta.has_more``, ``meta.after_cursor``, ``meta.before_cursor``, ``links.next``, ``links.prev``); without
  ``page[size]``, offset pagination (``page``, ``per_page``, ``next_page``, ``count``);
- ``GET /api/v2/organizations/show_many?ids=`` (up to 100 ids, else 400); ``GET|PUT|DELETE
  /api/v2/organizations/{id}``; ``POST /api/v2/organizations``;
- ``PUT /api/v2/organizations/update_many``: the batch form ``{"organizations": [{"id", ...}]}`` or the bulk form
  ``?ids=`` with ``{"organization": {...}}``, up to 100, answered with a queued ``job_status``;
  ``GET /api/v2/job_statuses/{id}``: ``working`` for ``job_polls`` reads, then ``completed`` with ``results``;
- ``GET /api/v2/incremental/organizations?start_time=``: the time-based export, ``export_page_size`` a page (then
  the rest of its last second: a page never splits a second), ``end_time`` (past that second, never past the
  current one), ``next_page``, ``end_of_stream``, ``count``; its own per-minute limit on top of the account's;
- ``GET|POST /api/v2/organization_fields`` (cursor pagination; ``key`` unique). Writing a custom field key that
  does not exist is refused (422 ``RecordInvalid``), so push-back needs ``crmsync setup zendesk`` first.

Limits: ``requests_per_minute`` for the account and ``export_requests_per_minute`` for the export, over a rolling
minute; over either, 429 ``{"error": "APIRateLimitExceeded"}`` with ``Retry-After`` (seconds until a slot frees).
Responses carry ``X-Rate-Limit`` and ``X-Rate-Limit-Remaining``. Unrouted paths answer Zendesk's 404
``{"error": "InvalidEndpoint"}``. Each change sends its signed organization event (``sandbox.zendesk.webhooks``).

Admin endpoints (exempt from faults, counters and limits): the shared ``/_sandbox/health``, ``stats``, ``faults``,
``reset`` (``sandbox.common``), and ``POST /_sandbox/seed`` ``{"count", "start"}``, ``POST /_sandbox/organizations``
(create), ``PATCH|DELETE /_sandbox/organizations/{id}`` (a person's edit in the agent UI: it sends its events),
``POST /_sandbox/organizations/{id}/updated_at`` ``{"at": epoch}`` (moves a change back in time),
``POST /_sandbox/fields`` ``{"key"}``, ``POST /_sandbox/limits`` ``{"requests_per_minute"?,
"export_requests_per_minute"?, "export_page_size"?, "job_polls"?}``, ``GET|PUT /_sandbox/webhooks``,
``POST /_sandbox/webhooks/drain?timeout_s=10``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.common import install_sandbox
from sandbox.zendesk.config import ZendeskSandboxConfig
from sandbox.zendesk.store import Invalid, Unknown, ZendeskStore
from sandbox.zendesk.webhooks import ZendeskWebhooks

MAX_IDS = 100


class ZendeskError(Exception):
    """An error answer in Zendesk's shape."""

    def __init__(self, status: int, error: str, description: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["description"] = self.description
        return JSONResponse(body, self.status, headers=self.headers)


class Minute:
    """At most ``limit`` requests in any 60 seconds (0: no limit); thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until a slot frees when refused)."""
        with self._lock:
            while self._times and self._times[0] <= now - 60:
                self._times.popleft()
            if self.limit and len(self._times) >= self.limit:
                return False, 0, self._times[0] + 60 - now
            self._times.append(now)
            return True, max(0, self.limit - len(self._times)), 0.0

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


def fault_response(status: int, retry_after_s: float) -> Response:
    if status == 429:
        return ZendeskError(
            429, "APIRateLimitExceeded", "Number of allowed API requests per minute exceeded"
        ).response()
    return ZendeskError(status, "InternalServerError", "Something went wrong").response()


def create_app(config: ZendeskSandboxConfig) -> FastAPI:
    store = ZendeskStore()
    hooks = ZendeskWebhooks(config.webhook_url, config.webhook_secret)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        hooks.close()

    app = FastAPI(title="Zendesk stand-in", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    store.on_change = hooks.notify
    limits = {"api": Minute(config.requests_per_minute), "export": Minute(config.export_requests_per_minute)}
    for key in config.fields:
        store.add_field(key, key)
    if config.seed:
        store.seed(config.seed, config.seed_start)
    app.state.store = store
    app.state.webhooks = hooks
    app.state.config = config
    expected = "Basic " + base64.b64encode(f"{config.email}/token:{config.token}".encode()).decode()

    def reset() -> None:
        fresh = ZendeskStore(store.base_url)
        store.orgs, store.updated, store.fields, store.jobs = fresh.orgs, fresh.updated, fresh.fields, fresh.jobs
        for window in limits.values():
            window.clear()

    app.state.kit = install_sandbox(app, fault_response, reset)

    @app.exception_handler(ZendeskError)
    async def _zendesk_error(request: Request, exc: ZendeskError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _unrouted(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return ZendeskError(404, "InvalidEndpoint", "Not found").response()
        return ZendeskError(exc.status_code, "InvalidRequest", str(exc.detail)).response()

    def guard(request: Request, response: Response, export: bool = False) -> None:
        """Authentication, then the account's limit (and the export's): Zendesk's 401 and 429."""
        given = request.headers.get("authorization", "")
        if not _same(given, expected):
            raise ZendeskError(401, "Couldn't authenticate you")
        if not store.base_url:
            store.base_url = str(request.base_url).rstrip("/")
        now = time.monotonic()
        for name in ("api", "export") if export else ("api",):
            allowed, remaining, wait = limits[name].acquire(now)
            if not allowed:
                headers = {"Retry-After": str(max(1, math.ceil(wait))), "X-Rate-Limit": str(limits[name].limit)}
                raise ZendeskError(
                    429, "APIRateLimitExceeded", "Number of allowed API requests per minute exceeded", headers
                )
            if name == "api" and limits[name].limit:
                response.headers["X-Rate-Limit"] = str(limits[name].limit)
                response.headers["X-Rate-Limit-Remaining"] = str(remaining)

    def org_id(raw: str) -> int:
        if not raw.isdigit():
            raise ZendeskError(404, "RecordNotFound", "Not found")
        return int(raw)

    # -- organizations ------------------------------------------------------------------------------------

    @app.get("/api/v2/organizations")
    @app.get("/api/v2/organizations.json")
    def list_organizations(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        params = request.query_params
        base = f"{store.base_url}/api/v2/organizations.json"
        if "page[size]" in params:
            size = _int(params["page[size]"], "page[size]")
            if not 1 <= size <= 100:
                raise ZendeskError(400, "InvalidPaginationParameter", "page[size] must be between 1 and 100")
            after_raw = params.get("page[after]")
            after = _cursor(after_raw) if after_raw else None
            orgs, last = store.page(after, size)
            has_more = last is not None
            after_cursor = _encode(orgs[-1]["id"]) if orgs else None
            before_cursor = _encode(orgs[0]["id"]) if orgs else None
            return {
                "organizations": orgs,
                "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
                "links": {
                    "next": f"{base}?page%5Bafter%5D={after_cursor}&page%5Bsize%5D={size}" if has_more else None,
                    "prev": f"{base}?page%5Bbefore%5D={before_cursor}&page%5Bsize%5D={size}" if orgs else None,
                },
            }
        page = _int(params.get("page", "1"), "page")
        per_page = min(100, _int(params.get("per_page", "100"), "per_page"))
        everything, _ = store.page(None, 10**9)
        chunk = everything[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(everything)
        return {
            "organizations": chunk,
            "next_page": f"{base}?page={page + 1}&per_page={per_page}" if more else None,
            "previous_page": f"{base}?page={page - 1}&per_page={per_page}" if page > 1 else None,
            "count": len(everything),
        }

    @app.get("/api/v2/organizations/show_many")
    @app.get("/api/v2/organizations/show_many.json")
    def show_many(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if len(ids) > MAX_IDS:
            raise ZendeskError(400, "InvalidValue", f"ids: at most {MAX_IDS}")
        found = []
        for raw in ids:
            if raw.isdigit():
                with suppress(Unknown):
                    found.append(store.get(int(raw)))
        return {"organizations": found, "next_page": None, "previous_page": None, "count": len(found)}

    @app.put("/api/v2/organizations/update_many")
    @app.put("/api/v2/organizations/update_many.json")
    async def update_many(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        body = await _json(request)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if ids:
            values = body.get("organization")
            if not isinstance(values, dict):
                raise ZendeskError(400, "InvalidValue", "organization: an object is required with ids")
            items = [(int(i) if i.isdigit() else None, n, values) for n, i in enumerate(ids)]
        else:
            batch = body.get("organizations")
            if not isinstance(batch, list) or not all(isinstance(o, dict) for o in batch):
                raise ZendeskError(400, "InvalidValue", "organizations: a list of objects is required")
            items = [
                (int(o["id"]) if str(o.get("id", "")).isdigit() else None, n, {k: v for k, v in o.items() if k != "id"})
                for n, o in enumerate(batch)
            ]
        if not items or len(items) > MAX_IDS:
            raise ZendeskError(400, "InvalidValue", f"between 1 and {MAX_IDS} organizations a job")
        return {"job_status": store.queue_job(items, app.state.config.job_polls)}

    @app.get("/api/v2/organizations/{raw_id}")
    def show(raw_id: str, request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        try:
            return {"organization": store.get(org_id(raw_id.removesuffix(".json")))}
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None

    @app.put("/api/v2/organizations/{raw_id}")
    async def update(raw_id: str, request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        body = await _json(request)
        values = body.get("organization")
        if not isinstance(values, dict):
            raise ZendeskError(400, "InvalidValue", "organization: an object is required")
        try:
            org, _ = store.update(org_id(raw_id.removesuffix(".json")), values)
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None
        except Invalid as exc:
            raise ZendeskError(422, "RecordInvalid", str(exc)) from None
        return {"organization": org}

    @app.post("/api/v2/organizations", status_code=201)
    @app.post("/api/v2/organizations.json", status_code=201)
    async def create(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        values = (await _json(request)).get("organization")
        if not isinstance(values, dict) or not values.get("name"):
            raise ZendeskError(422, "RecordInvalid", "name: cannot be blank")
        try:
            return {"organization": store.create(values)}
        except Invalid as exc:
            raise ZendeskError(422, "RecordInvalid", str(exc)) from None

    @app.delete("/api/v2/organizations/{raw_id}", status_code=204)
    def delete(raw_id: str, request: Request, response: Response) -> Response:
        guard(request, response)
        try:
            store.delete(org_id(raw_id.removesuffix(".json")))
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None
        return Response(status_code=204)

    @app.get("/api/v2/job_statuses/{job_id}")
    def job_status(job_id: str, request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        try:
            return {"job_status": store.job_status(job_id.removesuffix(".json"))}
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None

    # -- incremental export ---------------------------------------------------------------------------------

    @app.get("/api/v2/incremental/organizations")
    @app.get("/api/v2/incremental/organizations.json")
    def export(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response, export=True)
        raw = request.query_params.get("start_time")
        if raw is None:
            raise ZendeskError(400, "InvalidValue", "start_time is required")
        start_time = _int(raw, "start_time")
        orgs, end, done = store.changed_since(start_time, app.state.config.export_page_size)
        base = f"{store.base_url}/api/v2/incremental/organizations.json"
        return {
            "organizations": orgs,
            "count": len(orgs),
            "end_of_stream": done,
            "end_time": end,
            "next_page": None if done else f"{base}?start_time={end}",
        }

    # -- organization fields ----------------------------------------------------------------------------------

    @app.get("/api/v2/organization_fields")
    @app.get("/api/v2/organization_fields.json")
    def list_fields(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        fields = store.list_fields()
        size = _int(request.query_params.get("page[size]", "100"), "page[size]")
        after_raw = request.query_params.get("page[after]")
        start = _cursor(after_raw) + 1 if after_raw else 0
        chunk = fields[start : start + size]
        has_more = start + size < len(fields)
        return {
            "organization_fields": chunk,
            "meta": {"has_more": has_more, "after_cursor": _encode(start + len(chunk) - 1) if chunk else None},
            "links": {"next": None},
        }

    @app.post("/api/v2/organization_fields", status_code=201)
    @app.post("/api/v2/organization_fields.json", status_code=201)
    async def create_field(request: Request, response: Response) -> dict[str, Any]:
        guard(request, response)
        values = (await _json(request)).get("organization_field")
        if not isinstance(values, dict) or not values.get("key") or not values.get("type"):
            raise ZendeskError(422, "RecordInvalid", "organization_field: key and type are required")
        key = str(values["key"])
        if not key.replace("_", "").isalnum() or key.isdigit():
            raise ZendeskError(422, "RecordInvalid", "key: letters, numbers and underscores, not only numbers")
        try:
            return {"organization_field": store.add_field(key, str(values.get("title") or key), str(values["type"]))}
        except Invalid as exc:
            raise ZendeskError(422, "RecordInvalid", str(exc)) from None

    # -- admin ----------------------------------------------------------------------------------------------

    @app.post("/_sandbox/seed")
    async def admin_seed(request: Request) -> dict[str, Any]:
        body = await _json(request)
        made = store.seed(int(body.get("count", 0)), int(body.get("start", 0)))
        return {"created": len(made), "organizations": [str(i) for i in made]}

    @app.post("/_sandbox/organizations")
    async def admin_create(request: Request) -> dict[str, Any]:
        return store.create(await _json(request))

    @app.patch("/_sandbox/organizations/{raw_id}")
    async def admin_edit(raw_id: str, request: Request) -> dict[str, Any]:
        try:
            org, changes = store.update(org_id(raw_id), await _json(request))
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None
        except Invalid as exc:
            raise ZendeskError(422, "RecordInvalid", str(exc)) from None
        return {"organization": org, "changes": changes}

    @app.delete("/_sandbox/organizations/{raw_id}")
    def admin_delete(raw_id: str) -> dict[str, Any]:
        try:
            return store.delete(org_id(raw_id))
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None

    @app.post("/_sandbox/organizations/{raw_id}/updated_at")
    async def admin_backdate(raw_id: str, request: Request) -> dict[str, Any]:
        try:
            store.backdate(org_id(raw_id), float((await _json(request))["at"]))
        except Unknown:
            raise ZendeskError(404, "RecordNotFound", "Not found") from None
        return store.get(org_id(raw_id))

    @app.post("/_sandbox/fields")
    async def admin_field(request: Request) -> dict[str, Any]:
        body = await _json(request)
        try:
            return store.add_field(str(body["key"]), str(body.get("title") or body["key"]))
        except Invalid as exc:
            raise ZendeskError(422, "RecordInvalid", str(exc)) from None

    @app.post("/_sandbox/limits")
    async def admin_limits(request: Request) -> dict[str, Any]:
        body = await _json(request)
        cfg = app.state.config
        if "requests_per_minute" in body:
            cfg.requests_per_minute = limits["api"].limit = int(body["requests_per_minute"])
        if "export_requests_per_minute" in body:
            cfg.export_requests_per_minute = limits["export"].limit = int(body["export_requests_per_minute"])
        if "export_page_size" in body:
            cfg.export_page_size = int(body["export_page_size"])
        if "job_polls" in body:
            cfg.job_polls = int(body["job_polls"])
        for window in limits.values():
            window.clear()
        return {
            "requests_per_minute": cfg.requests_per_minute,
            "export_requests_per_minute": cfg.export_requests_per_minute,
            "export_page_size": cfg.export_page_size,
            "job_polls": cfg.job_polls,
        }

    @app.get("/_sandbox/webhooks")
    def admin_webhooks() -> dict[str, Any]:
        sender = hooks.sender
        return {
            "url": hooks.url,
            "delivered": sender.delivered,
            "failed": sender.failed,
            "attempts": sender.attempts,
            "pending": sender.pending(),
        }

    @app.put("/_sandbox/webhooks")
    async def admin_set_webhooks(request: Request) -> dict[str, Any]:
        body = await _json(request)
        hooks.url = body.get("url")
        if body.get("secret"):
            hooks.secret = str(body["secret"])
        return {"url": hooks.url}

    @app.post("/_sandbox/webhooks/drain")
    def admin_drain(timeout_s: float = 10.0) -> dict[str, Any]:
        return {"drained": hooks.sender.drain(timeout_s)}

    return app


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ZendeskError(400, "InvalidValue", f"{name}: not an integer") from None


def _encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"o:{position}".encode()).decode().rstrip("=")


def _cursor(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(raw)
        return int(text[2:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ZendeskError(400, "InvalidPaginationParameter", "page[after]: invalid cursor") from None


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ZendeskError(400, "InvalidValue", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ZendeskError(400, "InvalidValue", "the body must be a JSON object")
    return body
