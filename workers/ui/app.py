"""The status page's routes (FastAPI, Jinja2 templates autoescaped, one stylesheet, one small script).

| route | shows / does |
|---|---|
| ``GET /ui/`` | per source: status data (last run, cursors and their age, next run, dead letters, and whatever else |
| | ``crmsync status --json`` holds, in words), buttons; SVG charts of PostHog's budget (``charts``) and of each |
| | source's runs; the newest runs of each source and stream |
| ``GET /ui/runs/<id>`` | one run (its stream id): counts, errors, review items, plan, with links to the records |
| ``GET /ui/dlq`` | the dead-letter stream, with a replay button per source |
| ``GET /ui/dry-runs`` | the last dry run of each source and stream: its plan (account, field, before, after, source) |
| ``GET /ui/accounts?search=`` | accounts by name, external id or any CRM id (``accounts``) |
| ``GET /ui/accounts/<id>`` | one account: each managed field's value, who set it and by which rule, its records |
| ``GET /ui/api/status`` | the same JSON as ``crmsync status --json`` |
| ``POST /ui/actions/{sync,dry-run,replay}/<source>`` | enqueue ``crmsync.sync_source`` (dry run or not) or |
| | ``crmsync.replay_dlq`` on the configured broker, then back to the page (303) |

Every route needs the login (``security``); every POST is checked against cross-site use. The pages work without
JavaScript; ``static/refresh.js`` (plain ``fetch``, no build step) only keeps their dead-letter counts current.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from workers.logs import remember_secrets, secrets_of
from workers.runtime import Runtime
from workers.ui import views, words
from workers.ui.account_routes import add_account_routes
from workers.ui.links import RecordLinks
from workers.ui.security import SECURITY_HEADERS, Access, host_allowed, known_queued, valid_stream_id

HERE = Path(__file__).resolve().parent
ACTIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sync": ("crmsync.sync_source", {"mode": "incremental"}, "/ui/"),
    "dry-run": ("crmsync.sync_source", {"mode": "incremental", "dry_run": True}, "/ui/dry-runs"),
    "replay": ("crmsync.replay_dlq", {}, "/ui/dlq"),
}
"""Button → (Celery task, its keyword arguments besides the source, the page to go back to)."""

REFRESH_S = 5
"""How often ``static/refresh.js`` re-reads ``/ui/api/status`` to keep the dead-letter counts current."""

Enqueue = Callable[[str, tuple[Any, ...], dict[str, Any]], str]


def celery_enqueue(runtime: Runtime) -> Enqueue:
    """Send a task by name to the ``bulk`` queue of the config's broker; returns the task id."""
    from workers.celery_app import configure_for

    app = configure_for(runtime.config)

    def send(task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return str(app.send_task(task, args=args, kwargs=kwargs, queue="bulk").id)

    return send


def make_templates() -> Jinja2Templates:
    """The page templates (HTML autoescaped: every value from Redis is text, never markup)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(
        duration=words.duration,
        when=words.when,
        iso=words.iso,
        count=words.count,
        label=words.label,
        human=words.human,
        run_status=words.run_status,
    )
    return templates


def create_ui_app(runtime: Runtime, access: Access, enqueue: Enqueue | None = None) -> FastAPI:
    """The page for ``runtime``'s deployment; ``enqueue`` defaults to Celery on the config's broker.

    Every secret of the config (and the login's password) is registered for masking here, whoever starts the page
    (``crmsync ui``, ``sandbox up``, the demo, a test), so none can be rendered even if a report or reason holds it."""
    remember_secrets([*secrets_of(runtime.config), runtime.settings.personal_api_key.get_secret_value()])
    remember_secrets([access.password] if access.password else [])
    app = FastAPI(title="crmsync", docs_url=None, redoc_url=None, openapi_url=None)
    templates = make_templates()
    links = RecordLinks(runtime.config.ui.links)
    send = enqueue or celery_enqueue(runtime)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="static")

    allowed_hosts = access.allowed_hosts | {h.lower() for h in runtime.config.ui.allowed_hosts}

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Host check (DNS rebinding), then the login; the security headers on every answer."""
        response: Response
        if not host_allowed(request.headers.get("host"), allowed_hosts):
            response = PlainTextResponse("unknown Host (see ui.allowed_hosts)", status_code=421)
        elif not access.authorized(request.headers.get("authorization")):
            response = PlainTextResponse(
                "login required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="crmsync", charset="UTF-8"'},
            )
        elif "\x00" in request.url.path:  # the static files' lookup would raise (a 500) on it
            response = PlainTextResponse("bad path", status_code=400)
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def shown(queued: str | None) -> str | None:
        return known_queued(queued, ACTIONS, runtime.config.enabled_sources())

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        context.update(csrf=access.csrf_token, sources=runtime.config.enabled_sources(), refresh_s=REFRESH_S)
        return templates.TemplateResponse(request, name, context)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/", response_class=HTMLResponse)
    def index(request: Request, queued: str | None = None) -> HTMLResponse:
        data = views.status(runtime)
        charts = views.charts(runtime, data)
        runs = views.recent_runs(runtime)
        return page(request, "index.html", status=data, runs=runs, charts=charts, queued=shown(queued))

    @app.get("/ui/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str) -> HTMLResponse:
        detail = views.run_detail(runtime, run_id, links) if valid_stream_id(run_id) else None
        if detail is None:
            raise HTTPException(404, "no such run (it may have left the stream)")
        return page(request, "run.html", run=detail)

    @app.get("/ui/dlq", response_class=HTMLResponse)
    def dlq(request: Request, queued: str | None = None) -> HTMLResponse:
        return page(request, "dlq.html", dlq=views.dead_letters(runtime, links), queued=shown(queued))

    @app.get("/ui/dry-runs", response_class=HTMLResponse)
    def dry_runs(request: Request, queued: str | None = None) -> HTMLResponse:
        return page(request, "dry_runs.html", dry_runs=views.latest_dry_runs(runtime, links), queued=shown(queued))

    add_account_routes(app, runtime, links, page)

    @app.get("/ui/api/status")
    def api_status() -> JSONResponse:
        return JSONResponse(views.status(runtime))

    @app.post("/ui/actions/{action}/{source}")
    async def act(request: Request, action: str, source: str) -> Response:
        if action not in ACTIONS or source not in runtime.config.enabled_sources():
            raise HTTPException(404, "no such action or source")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        refused = access.cross_site_reason(
            request.headers.get("host", ""),
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
            next(iter(form.get("csrf", [])), None),
        )
        if refused:
            return PlainTextResponse(f"refused: {refused}", status_code=403)
        task, kwargs, back = ACTIONS[action]
        task_id = send(task, (source,), dict(kwargs))
        return RedirectResponse(f"{back}?{urlencode({'queued': f'{action} {source} ({task_id})'})}", status_code=303)

    return app
