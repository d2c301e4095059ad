"""Request handlers of the PostHog stand-in, in DRF's order of checks.

Each handler: authenticate the key, check project access and scope (``auth``), count the request against the
key's throttles when they are on (``throttle``: 429 ``throttled``), resolve the project and
the object (404), validate the body (400), then write (409 on a duplicate ``external_id``). Handlers are
plain methods taking the request and its lazily parsed body, so the app can mount them on both the
slashed and the unslashed path.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.posthog import generations
from sandbox.posthog.auth import KeyRing, RequestBody, authorize
from sandbox.posthog.config import LEVEL_ADMIN, SANDBOX_USER_ID, ApiKey, Generation
from sandbox.posthog.errors import ApiError, ShortNotFound, conflict, not_found, throttled
from sandbox.posthog.events import Actor
from sandbox.posthog.members import MemberDirectory, member_out
from sandbox.posthog.query import Page, page_links, parse_account_query, parse_page
from sandbox.posthog.store import DuplicateExternalId, DuplicateMetricName, PostHogStore
from sandbox.posthog.throttle import Throttle, key_ident
from sandbox.posthog.validation import integer_field, metric_name_taken, validate_metric

GROUP_TYPE_INDEX_MAX = 2_147_483_647


def external_id_conflict() -> ApiError:
    return conflict("An account with this external_id already exists for this team.")


def _project_id(raw: str) -> int | None:
    """PostHog resolves ``project_id`` as an integer team id; anything else is a 404 later."""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _group_type_index(raw: str) -> int:
    if raw.isascii() and raw.isdigit() and int(raw) <= GROUP_TYPE_INDEX_MAX:
        return int(raw)
    raise not_found()


def _object_id(raw: str) -> str:
    """Django's UUID lookup: any form ``uuid.UUID`` parses (braces, no hyphens, upper case); else 404."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise not_found() from None


def page_response(request: Request, page: Page, count: int, results: list[dict[str, Any]]) -> JSONResponse:
    next_url, previous_url = page_links(str(request.url), page, count)
    return JSONResponse({"count": count, "next": next_url, "previous": previous_url, "results": results})


def _found(item: dict[str, Any] | None) -> dict[str, Any]:
    if item is None:
        raise not_found()
    return item


class PostHogApi:
    """The stand-in's endpoints over one store, key ring, project set and member directory."""

    def __init__(
        self,
        store: PostHogStore,
        keys: KeyRing,
        projects: frozenset[int],
        members: MemberDirectory,
        throttle: Throttle | None = None,
        tagging: bool = True,
        generation: Generation = "seed",
        proxy_retry_after: bool = False,
        organization_id: str = "",
    ) -> None:
        self.tagging = tagging
        self.generation: Generation = generation
        self.proxy_retry_after = proxy_retry_after
        self.organization_id = organization_id
        self.sync_roles: Any = None  # transitional: set by the app to the relationship mirror
        self.store = store
        self.keys = keys
        self.projects = projects
        self.members = members
        self.throttle = throttle or Throttle()

    def _admit(
        self,
        request: Request,
        body: RequestBody,
        scope_object: str,
        *,
        write: bool,
        project_id: int | None,
        project_level: bool = True,
    ) -> ApiKey:
        """Authenticate, check permissions, then throttle: DRF's order (``APIView.initial``), so a 401 or 403
        costs no budget. A key found in the body is not throttled (PostHog's throttle never reads the body)."""
        key, source = self.keys.identify(request.headers, request.query_params, body)
        authorize(
            key,
            scope_object,
            write=write,
            project_id=project_id,
            known_projects=self.projects,
            project_level=project_level,
        )
        if source != "body":
            wait = self.throttle.check(key_ident(key.key))
            if wait is not None:
                raise throttled(wait, retry_after=self.proxy_retry_after)
        return key

    def _project(self, request: Request, body: RequestBody, scope_object: str, *, write: bool) -> int:
        project_id = _project_id(request.path_params["project_id"])
        self._admit(request, body, scope_object, write=write, project_id=project_id)
        if project_id is None or project_id not in self.projects:
            raise not_found()
        return project_id

    # Shared by the sibling handler modules (relationships, custom properties)

    def project(self, request: Request, body: RequestBody, scope_object: str, *, write: bool) -> int:
        return self._project(request, body, scope_object, write=write)

    def not_found(self) -> ApiError:
        """A view's own 404 for a missing object: ``{"detail": "Not found."}`` on current."""
        return ShortNotFound() if self.generation == "current" else not_found()

    def found(self, item: dict[str, Any] | None) -> dict[str, Any]:
        if item is None:
            raise self.not_found()
        return item

    def object_id(self, raw: str) -> str:
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            raise self.not_found() from None

    def account_of(self, request: Request, body: RequestBody, *, write: bool) -> tuple[int, dict[str, Any]]:
        """The project and the account of ``/accounts/:account_id/...`` (a nested route): 404 when either is unknown."""
        project_id = self._project(request, body, "account", write=write)
        account_id = self.object_id(request.path_params["account_id"])
        return project_id, self.found(self.store.get_account(project_id, account_id))

    @staticmethod
    def integer(value: Any, attr: str) -> int:
        return integer_field(value, attr, min_value=-(2**63), max_value=2**63 - 1)

    def actor(self) -> Actor:
        """The keys' user (a person, ``actor_type`` ``user``), as PostHog's events name them."""
        owner = self.members.owner
        if owner is None:
            return Actor(SANDBOX_USER_ID, "", "")
        return Actor(owner.id, owner.email, member_out(owner, 0)["user"]["distinct_id"])

    # Accounts

    def _taggable(self, fields: dict[str, Any]) -> dict[str, Any]:
        """An organisation without the tagging feature: PostHog's ``TaggedItemSerializerMixin._attempt_set_tags``
        returns early, "silently fail on updating tags so that entire request isn't blocked"."""
        return fields if self.tagging else {k: v for k, v in fields.items() if k != "tags"}

    def _shown(self, account: dict[str, Any]) -> dict[str, Any]:
        """...and its ``to_representation`` answers ``tags: []`` for every object of such an organisation."""
        account = generations.shown(account, self.generation)
        return account if self.tagging else {**account, "tags": []}

    def _validated(self, body: RequestBody, *, partial: bool) -> dict[str, Any]:
        fields = generations.validate_account_body(body.data(), partial=partial, generation=self.generation)
        return self._taggable(fields)

    def _mirror_roles(self, project_id: int, account: dict[str, Any]) -> None:
        """Transitional: the JSON role keys are copied into relationship rows after every account write."""
        if self.generation == "transitional" and self.sync_roles is not None:
            self.sync_roles(project_id, account)

    def list_accounts(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=False)
        query = parse_account_query(request.query_params, current=self.generation == "current")
        page = parse_page(request.query_params)
        count, results = self.store.list_accounts(project_id, query, page)
        return page_response(request, page, count, [self._shown(a) for a in results])

    def create_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=True)
        fields = self._validated(body, partial=False)
        try:
            account = self.store.create_account(project_id, fields, SANDBOX_USER_ID)
        except DuplicateExternalId:
            raise external_id_conflict() from None
        self._mirror_roles(project_id, account)
        return JSONResponse(self._shown(account), status_code=201)

    def retrieve_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=False)
        account_id = self.object_id(request.path_params["id"])
        return JSONResponse(self._shown(self.found(self.store.get_account(project_id, account_id))))

    def _update_account(self, request: Request, body: RequestBody, *, partial: bool) -> Response:
        project_id = self._project(request, body, "account", write=True)
        account_id = self.object_id(request.path_params["id"])
        stored = self.found(self.store.get_account(project_id, account_id))
        fields = self._validated(body, partial=partial)
        if (
            self.generation == "current"
            and "properties" in fields
            and (self.members.owner is None or self.members.owner.level < LEVEL_ADMIN)
            and generations.matching_lists_changed(stored["properties"], fields["properties"])
        ):
            raise generations.forbidden_matching_update()
        try:
            account = self.store.update_account(project_id, account_id, fields)
        except DuplicateExternalId:
            raise external_id_conflict() from None
        account = self.found(account)
        self._mirror_roles(project_id, account)
        return JSONResponse(self._shown(account))

    def partial_update_account(self, request: Request, body: RequestBody) -> Response:
        return self._update_account(request, body, partial=True)

    def update_account(self, request: Request, body: RequestBody) -> Response:
        return self._update_account(request, body, partial=False)

    def destroy_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=True)
        account_id = self.object_id(request.path_params["id"])
        if not self.store.delete_account(project_id, account_id):
            raise self.not_found()
        return Response(status_code=204)

    # Group-type usage metrics

    def _group(self, request: Request, body: RequestBody, *, write: bool) -> tuple[int, int]:
        project_id = self._project(request, body, "usage_metric", write=write)
        return project_id, _group_type_index(request.path_params["group_type_index"])

    def list_metrics(self, request: Request, body: RequestBody) -> Response:
        project_id, index = self._group(request, body, write=False)
        page = parse_page(request.query_params)
        count, results = self.store.list_metrics(project_id, index, page)
        return page_response(request, page, count, results)

    def create_metric(self, request: Request, body: RequestBody) -> Response:
        project_id, index = self._group(request, body, write=True)
        fields = validate_metric(body.data(), partial=False, instance=None)
        try:
            metric = self.store.create_metric(project_id, index, fields)
        except DuplicateMetricName:
            raise metric_name_taken() from None
        return JSONResponse(metric, status_code=201)

    def retrieve_metric(self, request: Request, body: RequestBody) -> Response:
        project_id, index = self._group(request, body, write=False)
        metric_id = _object_id(request.path_params["id"])
        return JSONResponse(_found(self.store.get_metric(project_id, index, metric_id)))

    def _update_metric(self, request: Request, body: RequestBody, *, partial: bool) -> Response:
        project_id, index = self._group(request, body, write=True)
        metric_id = _object_id(request.path_params["id"])
        instance = _found(self.store.get_metric(project_id, index, metric_id))
        fields = validate_metric(body.data(), partial=partial, instance=instance)
        try:
            metric = self.store.update_metric(project_id, index, metric_id, fields)
        except DuplicateMetricName:
            raise metric_name_taken() from None
        return JSONResponse(_found(metric))

    def partial_update_metric(self, request: Request, body: RequestBody) -> Response:
        return self._update_metric(request, body, partial=True)

    def update_metric(self, request: Request, body: RequestBody) -> Response:
        return self._update_metric(request, body, partial=False)

    def destroy_metric(self, request: Request, body: RequestBody) -> Response:
        project_id, index = self._group(request, body, write=True)
        metric_id = _object_id(request.path_params["id"])
        if not self.store.delete_metric(project_id, index, metric_id):
            raise not_found()
        return Response(status_code=204)

    # Projects and organisation members

    def retrieve_project(self, request: Request, body: RequestBody) -> Response:
        """``GET /api/projects/{id}/``: the fields of PostHog's ``ProjectBackwardCompatSerializer`` a client
        needs, among them ``organization`` (the organisation's UUID), which names the members to list."""
        project_id = self._project(request, body, "project", write=False)
        return JSONResponse(
            {
                "id": project_id,
                "organization": self.organization_id,
                "name": f"Project {project_id}",
                "created_at": "2024-01-01T00:00:00.000000Z",
            }
        )

    def list_members(self, request: Request, body: RequestBody) -> Response:
        self._admit(request, body, "organization_member", write=False, project_id=None, project_level=False)
        organization = request.path_params.get("organization_id", "@current")
        if organization != "@current" and organization != self.organization_id:
            raise not_found()
        page = parse_page(request.query_params)
        members = self.members.listing()
        results = members[page.offset : page.offset + page.limit]
        return page_response(request, page, len(members), results)
