"""The PostHog Customer API stand-in: accounts, group-type usage metrics and organisation members.

A FastAPI app that answers like PostHog's own Django REST Framework views, as read from PostHog's source
(the team's reference: ``posthog-accounts-api.md``):

- ``/api/environments/{project_id}/accounts/`` and ``.../{id}/``: list (filters, limit/offset with
  absolute ``next``/``previous``), create, retrieve, PATCH, PUT, DELETE.
- ``/api/projects/{project_id}/groups_types/{group_type_index}/metrics/`` and ``.../{id}/``: list,
  create, retrieve, PATCH, PUT, DELETE.
- ``GET /api/organizations/@current/members/``: paginated memberships.
- Beyond the seed generation's routes (``PostHogSandboxConfig.generation``, ``docs/posthog.md`` "Three generations
  of the accounts API"): accounts under ``/api/projects/``, the project with its ``organization``, members by
  organisation id, relationships (``relationship_api``) and custom properties (``custom_property_api``).

Every path also answers without its trailing slash (no redirect). Errors are drf-exceptions-hog bodies
``{type, code, detail, attr}``; bodies are parsed like DRF's ``request.data`` (unknown keys ignored).
Admin routes (exempt from faults and counters): the shared ``/_sandbox/{health,stats,faults,reset}`` plus
``POST /_sandbox/seed`` (bulk accounts from ``sandbox.identities``), ``POST /_sandbox/members``,
``POST /_sandbox/throttle`` ``{"rates": ["480/60", "4800/3600"]}`` (``GET``: the rates and each key's use),
``GET /_sandbox/info``, ``GET /_sandbox/events`` (PostHog's account events), ``POST /_sandbox/relationship_controls``
and ``POST /_sandbox/custom_property_sources``.

Throttling (off unless ``PostHogSandboxConfig.throttle`` or ``POST /_sandbox/throttle`` sets rates) follows
PostHog's ``rate_limit.py``: sliding windows per personal API key, answered 429 ``throttled_error`` without
``Retry-After`` unless ``proxy_retry_after`` (``sandbox/posthog/throttle.py``); ``/_sandbox/stats`` counts those
429s as ``throttled``.

Deliberate deviations from PostHog, each where PostHog answers a 500 (schemathesis must find none):

- PATCH/PUT setting an ``external_id`` another account of the project has: PostHog does not catch the
  unique violation (500); the stand-in answers the create's 409 ``conflict`` body.
- A usage-metric name already used in the project and group type: PostHog lets the database fail (500);
  here 400 ``{"code": "unique", "attr": "name"}``.
- Values PostHog's database cannot store: non-string or over-255-character tags, NUL characters or lone
  surrogates inside JSON fields, numbers beyond a float's range, an ``interval`` outside 1..2147483647,
  a ``group_type_index`` that is not a non-negative 32-bit integer: 400 (404 for the index), not a 500.

Other known differences: form-encoded bodies (DRF would parse them) are answered 415, clients send JSON;
``ordering=name`` sorts by code point (Postgres sorts by its collation); ties in any ordering are broken
by id; members live in memory (from the config and ``/_sandbox/members``), accounts and metrics in SQLite.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.common import ADMIN_PREFIX, install_sandbox
from sandbox.posthog import routes
from sandbox.posthog.auth import KeyRing, RequestBody
from sandbox.posthog.config import (
    SANDBOX_USER_ID,
    ApiKey,
    Member,
    PostHogSandboxConfig,
    parse_key_spec,
    parse_member_spec,
)
from sandbox.posthog.custom_properties import CustomPropertyStore
from sandbox.posthog.custom_property_api import CustomPropertyApi
from sandbox.posthog.errors import ApiError, fault_responder, method_not_allowed, not_found, server_error
from sandbox.posthog.hogql import QUERY, QueryApi
from sandbox.posthog.members import MemberDirectory
from sandbox.posthog.relationship_api import RelationshipApi
from sandbox.posthog.relationships import RelationshipStore
from sandbox.posthog.routes import Handler
from sandbox.posthog.routes_extra import custom_property_operations, extra_operations
from sandbox.posthog.schemas import PATCH_MODELS, REQUEST_MODELS
from sandbox.posthog.service import PostHogApi
from sandbox.posthog.store import PostHogStore
from sandbox.posthog.throttle import Throttle, key_ident, parse_throttle_spec
from sandbox.posthog.validation import normalise_tags

__all__ = [
    "SANDBOX_USER_ID",
    "ApiKey",
    "Member",
    "PostHogSandboxConfig",
    "create_app",
    "parse_key_spec",
    "parse_member_spec",
]


async def _read_body(request: Request) -> RequestBody:
    return RequestBody(await request.body(), request.headers.get("content-type"))


def _endpoint(handler: Handler) -> Callable[..., Response]:
    """A sync FastAPI endpoint (run in the thread pool) around ``handler``, with the body read first."""

    def endpoint(request: Request, body: RequestBody = Depends(_read_body)) -> Response:
        return handler(request, body)

    return endpoint


class SeedRequest(BaseModel):
    """``POST /_sandbox/seed``: accounts for identities ``start .. start+count-1`` (existing ids skipped)."""

    project_id: int | None = None
    start: int = Field(0, ge=0)
    count: int = Field(ge=1, le=200_000)
    tags: list[str] = Field(default_factory=list)


class ThrottleRequest(BaseModel):
    """``POST /_sandbox/throttle``: the rates every key is held to from now on (``N/SECONDS``); ``[]`` turns
    throttling off. Histories start empty."""

    rates: list[str] = Field(default_factory=list)


class ControlRequest(BaseModel):
    """``POST /_sandbox/relationship_controls``: a person takes control of a role on an account (PostHog's
    ``enroll_role``, migration 0053); the definition becomes ``is_controlled``."""

    account_id: str
    definition_id: str


class SourceRequest(BaseModel):
    """``POST /_sandbox/custom_property_sources``: bind a definition to a data-warehouse view column, as PostHog's
    own sync does (``enabled: false`` unbinds it). A bound definition refuses API writes."""

    definition_id: str
    source_column: str = "value"
    key_column: str = "external_id"
    enabled: bool = True


class MemberRequest(BaseModel):
    """``POST /_sandbox/members``: add (or replace, by id) an organisation member."""

    id: int
    email: str
    first_name: str = ""
    last_name: str = ""
    level: int = 1


def _install_admin(
    app: FastAPI,
    config: PostHogSandboxConfig,
    store: PostHogStore,
    members: MemberDirectory,
    throttle: Throttle,
    relationships: RelationshipStore,
    custom: CustomPropertyStore,
) -> None:
    @app.post(f"{ADMIN_PREFIX}/custom_property_sources", include_in_schema=False)
    def _source(request: SourceRequest) -> dict[str, bool]:
        source = None
        if request.enabled:
            source = {
                "id": request.definition_id,
                "definition": request.definition_id,
                "saved_query": None,
                "source_column": request.source_column,
                "key_column": request.key_column,
                "is_enabled": True,
                "consecutive_failures": 0,
                "last_synced_at": None,
                "last_sync_error": None,
            }
        return {"ok": custom.set_source(request.definition_id, source)}

    @app.get(f"{ADMIN_PREFIX}/events", include_in_schema=False)
    def _events(event: str | None = None) -> list[dict[str, Any]]:
        return store.events.listing(event)

    @app.post(f"{ADMIN_PREFIX}/relationship_controls", include_in_schema=False)
    def _control(request: ControlRequest) -> dict[str, str]:
        return {"controlled_at": relationships.control(request.account_id, request.definition_id)}

    @app.get(f"{ADMIN_PREFIX}/relationship_controls/{{account_id}}", include_in_schema=False)
    def _controls(account_id: str) -> dict[str, str]:
        return relationships.controls(account_id)

    @app.post(f"{ADMIN_PREFIX}/seed", include_in_schema=False)
    def _seed(request: SeedRequest) -> dict[str, int]:
        project_id = request.project_id if request.project_id is not None else config.projects[0]
        tags = normalise_tags(request.tags)
        return {"created": store.seed_accounts(project_id, request.start, request.count, tags)}

    @app.post(f"{ADMIN_PREFIX}/members", include_in_schema=False)
    def _member(request: MemberRequest) -> dict[str, bool]:
        members.put(Member(request.id, request.email, request.first_name, request.last_name, request.level))
        return {"ok": True}

    @app.post(f"{ADMIN_PREFIX}/throttle", include_in_schema=False)
    def _throttle(request: ThrottleRequest) -> dict[str, list[str]]:
        try:
            rates = [parse_throttle_spec(spec) for spec in request.rates]
        except ValueError as exc:
            raise ApiError(400, "validation_error", "invalid_input", str(exc), "rates") from None
        throttle.configure(rates)
        return {"rates": [str(r) for r in throttle.rates]}

    @app.get(f"{ADMIN_PREFIX}/throttle", include_in_schema=False)
    def _throttle_state() -> dict[str, Any]:
        return {
            "rates": [str(r) for r in throttle.rates],
            "used": {k.key: throttle.used(key_ident(k.key)) for k in config.keys},
        }

    @app.get(f"{ADMIN_PREFIX}/info", include_in_schema=False)
    def _info() -> dict[str, Any]:
        return {
            "projects": list(config.projects),
            "keys": [
                {"key": k.key, "scopes": list(k.scopes), "projects": None if k.projects is None else list(k.projects)}
                for k in config.keys
            ],
            "members": [m["user"] for m in members.listing()],
            "db_path": config.db_path,
            "throttle": [str(r) for r in throttle.rates],
            "generation": config.generation,
            "organization": config.organization_id,
            "proxy_retry_after": config.proxy_retry_after,
        }


def _install_errors(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            response = method_not_allowed(request.method).response()
            response.headers.update(exc.headers or {})
            return response
        if exc.status_code == 404:
            return not_found().response()
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def crash(request: Request, exc: Exception) -> Response:
        return server_error().response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def _install_openapi(app: FastAPI) -> None:
    """FastAPI's schema plus the request-body models (referenced from ``openapi_extra``) and bearer auth."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, definitions = models_json_schema(
            [(model, "validation") for model in REQUEST_MODELS], ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(definitions.get("$defs", {}))
        for patched, base in PATCH_MODELS.items():
            body = copy.deepcopy(schemas[base])
            body.pop("required", None)
            for field in body["properties"].values():
                field.pop("default", None)
            body["title"] = patched
            schemas[patched] = body
        components["securitySchemes"] = {
            "PersonalAPIKeyAuth": {"type": "http", "scheme": "bearer", "description": "Personal API key"}
        }
        schema["security"] = [{"PersonalAPIKeyAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(config: PostHogSandboxConfig = PostHogSandboxConfig()) -> FastAPI:
    """A ready PostHog stand-in; ``app.state.store`` is its ``PostHogStore``, ``app.state.kit`` its ``SandboxKit``."""
    if not config.projects:
        raise ValueError("PostHogSandboxConfig.projects must name at least one project")
    store = PostHogStore(config.db_path)
    owner = config.key_owner if config.generation != "seed" else None
    members = MemberDirectory(config.members, owner)
    throttle = Throttle(config.throttle)
    api = PostHogApi(
        store,
        KeyRing(config.keys),
        frozenset(config.projects),
        members,
        throttle,
        config.tagging,
        generation=config.generation,
        proxy_retry_after=config.proxy_retry_after,
        organization_id=config.organization_id,
    )
    relationship_store = RelationshipStore(store)
    relationship_api = RelationshipApi(api, relationship_store)
    custom_store = CustomPropertyStore(store)
    custom_api = CustomPropertyApi(api, custom_store)

    def sync_roles(project_id: int, account: dict[str, Any]) -> None:
        def resolve(user_id: Any) -> tuple[int, str] | None:
            try:
                member = members.get(int(user_id))
            except (TypeError, ValueError, OverflowError):
                return None
            return None if member is None else (member.id, member.email)

        relationship_store.sync_from_properties(project_id, account, resolve, api.actor())

    api.sync_roles = sync_roles
    app = FastAPI(
        title="PostHog Customer API (crmsync stand-in)",
        version="1.0.0",
        description="Accounts, group-type usage metrics and organisation members, as PostHog serves them.",
        redirect_slashes=False,
    )
    operations = [
        *routes.operations(api),
        *extra_operations(api, relationship_api, config.generation),
        *custom_property_operations(custom_api, config.generation),
    ]
    for spec in operations:
        options = spec.fastapi_options()
        app.add_api_route(spec.path, _endpoint(spec.handler), methods=[spec.method], **options)
        options.update(include_in_schema=False, operation_id=None)
        app.add_api_route(spec.path.rstrip("/"), _endpoint(spec.handler), methods=[spec.method], **options)

    # the query API is PostHog's core (every generation): here it answers crmsync's change-events query
    queries = QueryApi(api)
    for path, method, handler in [(QUERY, "POST", queries.query)]:
        app.add_api_route(path, _endpoint(handler), methods=[method], include_in_schema=False)
        app.add_api_route(path.rstrip("/"), _endpoint(handler), methods=[method], include_in_schema=False)

    def reset() -> None:
        store.reset()
        members.reset()
        throttle.reset()

    app.state.config = config
    app.state.store = store
    app.state.members = members
    app.state.throttle = throttle
    app.state.relationships = relationship_store
    app.state.kit = install_sandbox(
        app,
        fault_responder(retry_after=config.proxy_retry_after),
        reset,
        retry_after_header=config.proxy_retry_after,
    )
    app.state.custom_properties = custom_store
    _install_admin(app, config, store, members, throttle, relationship_store, custom_store)
    _install_errors(app)
    _install_openapi(app)
    return app
