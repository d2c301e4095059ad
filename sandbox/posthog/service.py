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

from sandbox.posthog.auth import KeyRing, RequestBody, authorize
from sandbox.posthog.config import SANDBOX_USER_ID, ApiKey
from sandbox.posthog.errors import ApiError, conflict, not_found, throttled
from sandbox.posthog.members import MemberDirectory
from sandbox.posthog.query import Page, page_links, parse_account_query, parse_page
from sandbox.posthog.store import DuplicateExternalId, DuplicateMetricName, PostHogStore
from sandbox.posthog.throttle import Throttle, key_ident
from sandbox.posthog.validation import metric_name_taken, validate_account, validate_metric

GROUP_TYPE_INDEX_MAX = 2_147_483_647


def external_id_conflict() -> ApiError:
    return conflict("An account with this external_id already exists for this team.")


ORGANIZATION_ID = str(uuid.uuid5(uuid.UUID("6f1f6a0e-5b5e-4c1e-9a53-0d2b6a0b7c11"), "organization"))
"""The stand-in's one organisation: every project belongs to it."""


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


def _page_response(request: Request, page: Page, count: int, results: list[dict[str, Any]]) -> JSONResponse:
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
    ) -> None:
        self.tagging = tagging
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
                raise throttled(wait)
        return key

    def _project(self, request: Request, body: RequestBody, scope_object: str, *, write: bool) -> int:
        project_id = _project_id(request.path_params["project_id"])
        self._admit(request, body, scope_object, write=write, project_id=project_id)
        if project_id is None or project_id not in self.projects:
            raise not_found()
        return project_id

    # Accounts

    def _taggable(self, fields: dict[str, Any]) -> dict[str, Any]:
        """An organisation without the tagging feature: PostHog's ``TaggedItemSerializerMixin._attempt_set_tags``
        returns early, "silently fail on updating tags so that entire request isn't blocked"."""
        return fields if self.tagging else {k: v for k, v in fields.items() if k != "tags"}

    def _shown(self, account: dict[str, Any]) -> dict[str, Any]:
        """...and its ``to_representation`` answers ``tags: []`` for every object of such an organisation."""
        return account if self.tagging else {**account, "tags": []}

    def list_accounts(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=False)
        query = parse_account_query(request.query_params)
        page = parse_page(request.query_params)
        count, results = self.store.list_accounts(project_id, query, page)
        return _page_response(request, page, count, [self._shown(a) for a in results])

    def create_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=True)
        fields = self._taggable(validate_account(body.data(), partial=False))
        try:
            account = self.store.create_account(project_id, fields, SANDBOX_USER_ID)
        except DuplicateExternalId:
            raise external_id_conflict() from None
        return JSONResponse(self._shown(account), status_code=201)

    def retrieve_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=False)
        account_id = _object_id(request.path_params["id"])
        return JSONResponse(self._shown(_found(self.store.get_account(project_id, account_id))))

    def _update_account(self, request: Request, body: RequestBody, *, partial: bool) -> Response:
        project_id = self._project(request, body, "account", write=True)
        account_id = _object_id(request.path_params["id"])
        _found(self.store.get_account(project_id, account_id))
        fields = self._taggable(validate_account(body.data(), partial=partial))
        try:
            account = self.store.update_account(project_id, account_id, fields)
        except DuplicateExternalId:
            raise external_id_conflict() from None
        return JSONResponse(self._shown(_found(account)))

    def partial_update_account(self, request: Request, body: RequestBody) -> Response:
        return self._update_account(request, body, partial=True)

    def update_account(self, request: Request, body: RequestBody) -> Response:
        return self._update_account(request, body, partial=False)

    def destroy_account(self, request: Request, body: RequestBody) -> Response:
        project_id = self._project(request, body, "account", write=True)
        account_id = _object_id(request.path_params["id"])
        if not self.store.delete_account(project_id, account_id):
            raise not_found()
        return Response(status_code=204)

    # Group-type usage metrics

    def _group(self, request: Request, body: RequestBody, *, write: bool) -> tuple[int, int]:
        project_id = self._project(request, body, "usage_metric", write=write)
        return project_id, _group_type_index(request.path_params["group_type_index"])

    def list_metrics(self, request: Request, body: RequestBody) -> Response:
        project_id, index = self._group(request, body, write=False)
        page = parse_page(request.query_params)
        count, results = self.store.list_metrics(project_id, index, page)
        return _page_response(request, page, count, results)

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

    # The project and its organisation (``posthog/api/project.py``: a project names its ``organization``)

    def retrieve_project(self, request: Request, body: RequestBody) -> Response:
        project_id = _project_id(request.path_params["project_id"])
        self._admit(request, body, "project", write=False, project_id=project_id)
        if project_id is None or project_id not in self.projects:
            raise not_found()
        return JSONResponse({"id": project_id, "organization": ORGANIZATION_ID, "name": f"Project {project_id}"})

    def list_organization_members(self, request: Request, body: RequestBody) -> Response:
        """``/api/organizations/<id>/members/``: the one organisation of the stand-in; any other id is a 404."""
        if request.path_params["organization_id"] not in (ORGANIZATION_ID, "@current"):
            self._admit(request, body, "organization_member", write=False, project_id=None, project_level=False)
            raise not_found()
        return self.list_members(request, body)

    # Organisation members

    def list_members(self, request: Request, body: RequestBody) -> Response:
        self._admit(request, body, "organization_member", write=False, project_id=None, project_level=False)
        page = parse_page(request.query_params)
        members = self.members.listing()
        results = members[page.offset : page.offset + page.limit]
        return _page_response(request, page, len(members), results)
