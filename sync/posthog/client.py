"""An httpx client for the PostHog Customer API: accounts, group type usage metrics, organisation members.

- One ``httpx.Client`` is the transport seam: pass your own (a loopback stand-in, a custom transport) or let
  the client build one from ``PostHogSettings``.
- With a ``budget`` (``sync.budget.RequestBudget``, shared through Redis by every worker using the same key),
  every attempt first takes a slot in PostHog's throttle windows, waiting for one when they are full; when the
  wait would exceed the budget's ``max_wait_s`` it raises ``BudgetExhausted`` (retryable, ``retry_after`` = when
  a slot frees) and sends nothing. A 429 then blocks the budget for every worker until its ``Retry-After`` has
  passed. Without one (``None``, the default), the client sends at once and only reacts to 429s.
- Every non-2xx answer becomes an error of ``sync.posthog.errors``. 429, 5xx and transport errors are
  retried here with jittered exponential backoff (``Retry-After`` honoured, never cut short: a longer one than
  ``max_backoff_s`` is raised with its true ``retry_after``), bounded in count and total time;
  400/401/403/404/409 never are. A POST is retried after a 5xx or a lost connection only when the caller says
  a repeat cannot create a duplicate (``create_account`` does so when an ``external_id`` is set: a repeat then
  answers 409, which the caller resolves). A 429 is always safe to retry: the request was not processed.
  All of it is the one path every vendor call takes (``sync.calls``); ``stats`` counts what it sent.
- The API key is sent as ``Authorization: Bearer`` and never appears in errors, logs or ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from sync.budget import RequestBudget
from sync.calls import ErrorTable, VendorCalls, VendorRules, WindowBudget
from sync.errors import CrmsyncError, RetryableError
from sync.paging import follow
from sync.posthog.errors import PostHogError, PostHogRateLimited, PostHogTransportError, error_for_response
from sync.posthog.models import (
    Account,
    AccountFilter,
    AccountProperties,
    Member,
    Page,
    UsageMetric,
    UsageMetricSpec,
)
from sync.retry import RetryPolicy, parse_retry_after, parse_throttle_detail
from sync.settings import PostHogSettings
from sync.vendor import CallStats

M = TypeVar("M", bound=BaseModel)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an update argument as "leave this field out of the PATCH"."""


ClientStats = CallStats
"""What this client sent (``sync.vendor.CallStats``): requests (per method in ``by_operation``), 429s, retries."""


class PostHogClient:
    """Typed access to one PostHog project's Customer API."""

    def __init__(
        self,
        settings: PostHogSettings,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self.project_id = settings.project_id
        self.base_url = settings.base_url  # with project_id, the system the ledger's PostHog state describes
        self._key: SecretStr = settings.personal_api_key
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=settings.base_url,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            trust_env=False,
        )
        if http is not None and not str(http.base_url).strip("/"):
            self._http.base_url = httpx.URL(settings.base_url)
        self.retry = retry or RetryPolicy(
            max_retries=settings.max_retries,
            backoff_s=settings.retry_backoff_s,
            max_backoff_s=settings.retry_max_backoff_s,
            max_total_s=settings.retry_max_total_s,
        )
        self.budget = budget
        self.calls = VendorCalls(RULES, self.retry, WindowBudget(budget) if budget is not None else None)
        self.stats = self.calls.stats
        self._organization_id: str | None = None

    def __repr__(self) -> str:
        return f"PostHogClient(base_url={str(self._http.base_url)!r}, project_id={self.project_id})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PostHogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts --------------------------------------------------------------------------------------

    @property
    def _accounts_path(self) -> str:
        return f"/api/environments/{self.project_id}/accounts/"

    def list_accounts(
        self, filter: AccountFilter | None = None, limit: int | None = None, offset: int | None = None
    ) -> Page[Account]:
        """One page of accounts matching ``filter`` (default order ``-created_at``)."""
        params = (filter or AccountFilter()).query_params()
        if limit is not None:
            params["limit"] = str(limit)
        if offset is not None:
            params["offset"] = str(offset)
        body = self._request("GET", self._accounts_path, params=params)
        return Page[Account].model_validate(body)

    def iter_accounts(self, filter: AccountFilter | None = None, page_size: int = 500) -> Iterator[Account]:
        """Every account matching ``filter``, following ``next`` until the last page."""
        for page in self.iter_account_pages(filter, page_size):
            yield from page

    def iter_account_pages(self, filter: AccountFilter | None = None, page_size: int = 500) -> Iterator[list[Account]]:
        """Pages of accounts matching ``filter``; stop iterating to stop reading (one request per page)."""
        yield from self._pages(Account, self.list_accounts(filter, limit=page_size))

    def get_account(self, account_id: str) -> Account:
        return Account.model_validate(self._request("GET", f"{self._accounts_path}{account_id}/"))

    def create_account(
        self,
        name: str,
        external_id: str | None = None,
        properties: AccountProperties | dict[str, Any] | None = None,
        tags: list[str] | None = None,
        churned_at: str | None = None,
    ) -> Account:
        """Create an account. Retried after a lost answer only when ``external_id`` makes a repeat a 409.
        ``churned_at`` (ISO 8601) exists on current servers only."""
        body: dict[str, Any] = {"name": name}
        if churned_at is not None:
            body["churned_at"] = churned_at
        if external_id is not None:
            body["external_id"] = external_id
        if properties is not None:
            body["properties"] = _properties_payload(properties)
        if tags is not None:
            body["tags"] = tags
        data = self._request("POST", self._accounts_path, json=body, idempotent=external_id is not None)
        return Account.model_validate(data)

    def update_account(
        self,
        account_id: str,
        *,
        name: str = UNSET,
        external_id: str | None = UNSET,
        properties: AccountProperties | dict[str, Any] | None = UNSET,
        tags: list[str] = UNSET,
        churned_at: str | None = UNSET,
    ) -> Account:
        """PATCH only the given fields. ``properties`` and ``tags`` REPLACE what PostHog holds: pass the whole
        merged object (see ``sync.apply``), never a partial one."""
        body: dict[str, Any] = {}
        if name is not UNSET:
            body["name"] = name
        if external_id is not UNSET:
            body["external_id"] = external_id
        if properties is not UNSET:
            body["properties"] = None if properties is None else _properties_payload(properties)
        if tags is not UNSET:
            body["tags"] = tags
        if churned_at is not UNSET:
            body["churned_at"] = churned_at
        data = self._request("PATCH", f"{self._accounts_path}{account_id}/", json=body, idempotent=True)
        return Account.model_validate(data)

    def delete_account(self, account_id: str) -> None:
        self._request("DELETE", f"{self._accounts_path}{account_id}/", idempotent=True)

    # -- group type usage metrics ----------------------------------------------------------------------

    def _metrics_path(self, group_type_index: int) -> str:
        return f"/api/projects/{self.project_id}/groups_types/{group_type_index}/metrics/"

    def list_usage_metrics(
        self, group_type_index: int, limit: int | None = None, offset: int | None = None
    ) -> Page[UsageMetric]:
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(limit)
        if offset is not None:
            params["offset"] = str(offset)
        body = self._request("GET", self._metrics_path(group_type_index), params=params)
        return Page[UsageMetric].model_validate(body)

    def iter_usage_metrics(self, group_type_index: int, page_size: int = 100) -> Iterator[UsageMetric]:
        for page in self._pages(UsageMetric, self.list_usage_metrics(group_type_index, limit=page_size)):
            yield from page

    def get_usage_metric(self, group_type_index: int, metric_id: str) -> UsageMetric:
        data = self._request("GET", f"{self._metrics_path(group_type_index)}{metric_id}/")
        return UsageMetric.model_validate(data)

    def create_usage_metric(self, group_type_index: int, spec: UsageMetricSpec) -> UsageMetric:
        data = self._request("POST", self._metrics_path(group_type_index), json=spec.payload())
        return UsageMetric.model_validate(data)

    def update_usage_metric(self, group_type_index: int, metric_id: str, changes: dict[str, Any]) -> UsageMetric:
        """PATCH the given fields of a metric (others unchanged)."""
        path = f"{self._metrics_path(group_type_index)}{metric_id}/"
        return UsageMetric.model_validate(self._request("PATCH", path, json=changes, idempotent=True))

    def replace_usage_metric(self, group_type_index: int, metric_id: str, spec: UsageMetricSpec) -> UsageMetric:
        """PUT every writable field of a metric."""
        path = f"{self._metrics_path(group_type_index)}{metric_id}/"
        return UsageMetric.model_validate(self._request("PUT", path, json=spec.payload(), idempotent=True))

    def delete_usage_metric(self, group_type_index: int, metric_id: str) -> None:
        self._request("DELETE", f"{self._metrics_path(group_type_index)}{metric_id}/", idempotent=True)

    # -- organisation members --------------------------------------------------------------------------

    def organization_id(self) -> str:
        """The id of the organisation this project belongs to (``GET /api/projects/:id/`` → ``organization``;
        PostHog's ``posthog/api/project.py``), read once per client. Not ``@current``: that is the key owner's
        UI preference and can change under a running sync."""
        if self._organization_id is None:
            body = self._request("GET", f"/api/projects/{self.project_id}/")
            org = body.get("organization") if isinstance(body, dict) else None
            if isinstance(org, dict):  # some serializers nest it
                org = org.get("id")
            if not org:
                raise PostHogError(f"PostHog project {self.project_id} answered without its organization")
            self._organization_id = str(org)
        return self._organization_id

    def iter_members(self, page_size: int = 200) -> Iterator[Member]:
        """Members of the project's own organisation (to turn an owner's email into a user id)."""
        path = f"/api/organizations/{self.organization_id()}/members/"
        first = Page[Member].model_validate(self._request("GET", path, params={"limit": str(page_size)}))
        for page in self._pages(Member, first):
            yield from page

    # -- query API, and routes the capability adapters speak (sync/posthog/custom_properties.py, ...) -----

    @property
    def projects_path(self) -> str:
        """``/api/projects/<id>``: where newer servers serve relationships, custom properties and the query API."""
        return f"/api/projects/{self.project_id}"

    def query_hogql(self, query: str, values: dict[str, Any]) -> dict[str, Any]:
        """Run one HogQL query (``POST /api/projects/:id/query/``); the answer's ``results``/``columns``/``hasMore``.
        A read: safe to repeat."""
        body = {"query": {"kind": "HogQLQuery", "query": query, "values": values}}
        answer = self._request("POST", f"{self.projects_path}/query/", json=body, idempotent=True)
        return answer if isinstance(answer, dict) else {}

    def call(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One request through the shared path (budget, retries, error translation) to a route this client has no
        typed method for: the capability adapters of newer servers use it."""
        return self._request(method, url, params=params, json=json, idempotent=idempotent)

    # -- plumbing --------------------------------------------------------------------------------------

    def _pages(self, model: type[M], page: Page[Any]) -> Iterator[list[M]]:
        """Follow ``next`` from ``page`` (``sync.paging.follow``: a repeated URL is a ``PagingLoop``); a next page
        on another host is refused, the API key is only ever sent to the configured host."""

        def fetch(url: str | None) -> tuple[Page[Any], str | None]:
            if url is None:
                return page, page.next or None
            if not self._same_host(url):
                raise PostHogError(
                    f"PostHog answered a next page on another host ({httpx.URL(url).host or '?'}, configured "
                    f"{self._http.base_url.host}): refused, the API key is only ever sent to the configured host"
                )
            found = Page[model].model_validate(self._request("GET", url))  # type: ignore[valid-type]
            return found, found.next or None

        for found in follow(fetch, "PostHog pagination"):
            yield [item if isinstance(item, model) else model.model_validate(item) for item in found.results]

    def _same_host(self, url: str) -> bool:
        """Whether ``url`` (absolute, or relative to the configured base) points at the configured PostHog host."""
        target, base = httpx.URL(url), self._http.base_url
        if not target.is_absolute_url:
            return True
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one logical request through the one call path (``sync.calls``); return the decoded JSON body.
        A POST is repeated after a 5xx or a lost connection only when ``idempotent``; a 429 always is."""
        safe_to_repeat = method in ("GET", "HEAD") if idempotent is None else idempotent
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}", "Accept": "application/json"}

        def send() -> httpx.Response:
            response = self._http.request(method, url, params=params, json=json, headers=headers)
            response.raise_for_status()
            return response

        def transient(exc: BaseException, error: CrmsyncError) -> bool:
            return isinstance(error, PostHogRateLimited) or (safe_to_repeat and isinstance(error, RetryableError))

        response = self.calls.call(method, send, transient=transient)
        return response.json() if response.content else None


def _refused(exc: httpx.HTTPStatusError, operation: str) -> PostHogError:
    """A non-2xx answer as the error of ``sync.posthog.errors`` (PostHog's 429 sends its wait in ``detail``)."""
    response = exc.response
    path = response.request.url.path
    body = _json_or_none(response)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None and response.status_code == 429 and isinstance(body, dict):
        retry_after = parse_throttle_detail(body.get("detail"))  # PostHog sends no Retry-After
    return error_for_response(response.status_code, body, response.request.method, path, retry_after)


def _unreachable(exc: httpx.TransportError, operation: str) -> PostHogTransportError:
    method, path = exc.request.method, exc.request.url.path
    return PostHogTransportError(f"PostHog {method} {path}: {type(exc).__name__}", method=method, path=path)


RULES = VendorRules(
    name="posthog",
    errors=ErrorTable((((httpx.HTTPStatusError,), _refused), ((httpx.TransportError,), _unreachable))),
)
"""PostHog in the one call path: two rows of errors; what is transient depends on the method (``_request``)."""


def _properties_payload(properties: AccountProperties | dict[str, Any]) -> dict[str, Any]:
    if isinstance(properties, AccountProperties):
        return properties.payload()
    return dict(properties)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def client_from_env(http: httpx.Client | None = None) -> PostHogClient:
    """A client configured from ``POSTHOG_*`` environment variables (fails naming a bad key)."""
    from sync.settings import load_posthog_settings

    return PostHogClient(load_posthog_settings(), http=http)
