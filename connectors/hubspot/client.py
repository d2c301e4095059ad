"""The official HubSpot SDK (``hubspot-api-client`` 12) behind one small typed surface.

``HubSpotClient`` is the only place that calls the SDK, and every call goes through the one call path
(``sync.calls.VendorCalls``, ``HubSpotClient._call``), filled in with HubSpot's parts:

1. the budget: a token of the shared budget the call draws on (``connectors.hubspot.limits``: the 10-second app
   budget, or the separate search budget, Redis token buckets), so all workers together stay inside HubSpot's
   windows; a 429 empties it for every worker;
2. an explicit ``_request_timeout`` on every call (the SDK has none by default);
3. the rate headers: ``X-HubSpot-RateLimit-*`` (``RateLimitState.read``; a window HubSpot reports spent is drained
   for every worker);
4. transient: 429 on the rolling windows, 5xx and network errors (``RetryableError``), retried up to
   ``max_retries`` times by the one policy (``sync.retry.RetryPolicy``: ``Retry-After`` when HubSpot sends it,
   else a backoff jittered between half and all of ``backoff_s * 2**n``, capped at ``max_backoff_s``; a longer
   ``Retry-After`` goes up with the error for a job retry);
5. a response action: a 429 on a search halves the search page size (down to ``search_min_page_size``) for the
   retry and the rest of the read (``reset_search_page`` starts the next read at ``search_page_size`` again);
6. the error table ``connectors.hubspot.errors.ERRORS``.

urllib3's own retries are switched off (``Retry(0)``, which hubspot-api-client hands to each API's urllib3 pool
as ``Configuration.retries``: ``hubspot/discovery/discovery_base.py``, ``hubspot/crm/*/rest.py``) so that retrying
lives in the one path only. One SDK client (and one connection pool per API) per ``HubSpotClient``; no module
globals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyBatchRead
from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearchRequest
from hubspot.crm.companies import SimplePublicObjectId as CompanyId
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties import PropertyCreate
from urllib3.util.retry import Retry

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.errors import ERRORS, SDK_EXCEPTIONS, HubSpotPagingLoop, HubSpotRateLimited, HubSpotRequestError
from connectors.hubspot.limits import Budgets, RateLimitState, shared_budgets
from sync.calls import BucketBudget, Failure, VendorCalls, VendorRules
from sync.paging import LoopGuard, follow
from sync.retry import RetryPolicy

PRIMARY_DEAL_TO_COMPANY = 5
"""HubSpot-defined association type id of a deal's primary company (v4)."""
PRIMARY_V3_TYPE = "deal_to_company"
"""The v3 ``associations`` type name of the primary link (unlabeled links are ``deal_to_company_unlabeled``)."""
ASSOCIATIONS_BATCH_MAX = 1000


@dataclass(frozen=True)
class Link:
    """One association: the id at the other end, and whether it is the primary one (deal → company)."""

    to_id: str
    primary: bool


@dataclass(frozen=True)
class HsObject:
    """One deal or company: id, properties as HubSpot sent them (strings), and, for deals read with
    ``associations=companies``, the company links (None: not asked, look them up in batch)."""

    id: str
    properties: dict[str, str | None]
    archived: bool = False
    company_links: tuple[Link, ...] | None = None


@dataclass(frozen=True)
class ObjectPage:
    results: list[HsObject]
    next_after: str | None
    total: int | None = None
    limit: int | None = None
    """The page size asked for (searches: it may be less than configured after a 429)."""


@dataclass(frozen=True)
class Owner:
    id: str
    email: str | None
    first_name: str | None
    last_name: str | None

    def as_fields(self) -> dict[str, str | None]:
        return {"id": self.id, "email": self.email, "firstName": self.first_name, "lastName": self.last_name}


@dataclass(frozen=True)
class SearchFilter:
    """One search filter (``GTE``, ``GT``, ``EQ`` ...); values go on the wire as strings."""

    property: str
    operator: str
    value: str


@dataclass
class BatchWrite:
    """What one batch update did: ids written, and per-id errors for the inputs HubSpot refused (207)."""

    ok: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _answer_headers(answer: object) -> Mapping[str, Any] | None:
    """The headers of a ``*_with_http_info`` answer ``(data, status, headers)`` or of an SDK ``ApiException``
    (``{}`` when it came without: the rate figures then read as unknown); None for a transport error."""
    if isinstance(answer, tuple):
        return answer[2] if isinstance(answer[2], Mapping) else {}
    if isinstance(answer, SDK_EXCEPTIONS):
        headers = getattr(answer, "headers", None)
        return headers if isinstance(headers, Mapping) else {}
    return None


RULES = VendorRules(name="hubspot", errors=ERRORS, headers=_answer_headers)
"""HubSpot in the one call path: its error table; transient is the default (``RetryableError``: 429s on the
rolling windows, 5xx, timeouts and dropped connections); the rate headers and the search's smaller pages are
per call (``HubSpotClient._call``)."""


def _properties(raw: Mapping[str, Any] | None) -> dict[str, str | None]:
    return {str(k): (None if v is None else str(v)) for k, v in (raw or {}).items()}


def _v3_company_links(associations: Any) -> tuple[Link, ...]:
    """Company links from a v3 ``associations`` block; a company listed under several types appears once."""
    block = (associations or {}).get("companies")
    primary: dict[str, bool] = {}
    for item in getattr(block, "results", None) or []:
        cid = str(item.id)
        primary[cid] = primary.get(cid, False) or item.type == PRIMARY_V3_TYPE
    return tuple(Link(cid, is_primary) for cid, is_primary in primary.items())


def _next_after(data: Any) -> str | None:
    """``paging.next.after`` of a page (or of one per-input result), None when there is no next page."""
    paging = getattr(getattr(data, "paging", None), "next", None)
    after = getattr(paging, "after", None)
    return None if after is None else str(after)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class HubSpotClient:
    """Typed HubSpot calls with shared budgets, retries and error translation (see the module docstring)."""

    def __init__(
        self,
        config: HubSpotConfig,
        redis_client: redis.Redis | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """``sleep`` replaces the wait between retries (tests count the waits asked for instead of waiting)."""
        self.config = config
        sdk = HubSpot(
            access_token=config.access_token.get_secret_value(),
            host=config.base_url,
            retry=Retry(total=0, redirect=0, raise_on_status=False),
        )
        crm = sdk.crm
        # Each SDK property builds a new ApiClient with its own connection pool: build each API once.
        self._deals = crm.deals.basic_api
        self._deals_batch = crm.deals.batch_api
        self._deals_search = crm.deals.search_api
        self._companies_batch = crm.companies.batch_api
        self._companies_search = crm.companies.search_api
        self._associations = crm.associations.v4.batch_api
        self._owners = crm.owners.owners_api
        self._properties = crm.properties.core_api
        self.budgets = shared_budgets(redis_client, config) if redis_client is not None else Budgets(None, None)
        self.limits = RateLimitState()
        self.search_page_limit = config.search_page_size
        policy = RetryPolicy(
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            max_backoff_s=config.max_backoff_s,
            max_total_s=math.inf,
            jitter_floor=0.5,
        )
        if sleep is not None:
            policy.sleep = sleep
        self.calls = VendorCalls(RULES, policy)
        self.stats = self.calls.stats

    def close(self) -> None:
        """Close every SDK API's thread pool and urllib3 connection pool (idle keep-alive sockets included)."""
        apis = (
            self._deals,
            self._deals_batch,
            self._deals_search,
            self._companies_batch,
            self._companies_search,
            self._associations,
            self._owners,
            self._properties,
        )
        for api in apis:
            api.api_client.close()
            api.api_client.rest_client.pool_manager.clear()

    # -- the one call path ------------------------------------------------------------------------------------

    def _call(self, operation: str, fn: Callable[..., Any], *args: Any, search: bool = False, **kwargs: Any) -> Any:
        """Run ``fn`` (an SDK ``*_with_http_info`` method) through the one call path; return its data.
        A search draws on the search budget, and a 429 on it halves the page (``_smaller_pages``)."""

        def send() -> Any:
            return fn(*args, _request_timeout=self.config.request_timeout, **kwargs)

        def rate(headers: Mapping[str, Any]) -> bool:
            return self.limits.read(headers, search)

        bucket = self.budgets.search if search else self.budgets.app
        answer = self.calls.call(
            operation,
            send,
            budget=BucketBudget(bucket, self.config.max_budget_wait_s) if bucket is not None else None,
            rate=rate,
            actions=(self._smaller_pages,) if search else (),
        )
        return answer[0]

    def _smaller_pages(self, failure: Failure) -> None:
        """After a 429 on a search: smaller pages for the rest of the read, a busy portal gets lighter searches."""
        if isinstance(failure.error, HubSpotRateLimited):
            self.search_page_limit = max(self.config.search_min_page_size, self.search_page_limit // 2)

    # -- deals ----------------------------------------------------------------------------------------------

    def list_deals(self, after: str | None, properties: list[str], *, archived: bool = False) -> ObjectPage:
        """One ``get_page`` of deals in id order (with their company links unless ``archived``)."""
        data = self._call(
            "deals.get_page",
            self._deals.get_page_with_http_info,
            limit=self.config.page_size,
            after=after,
            properties=properties,
            associations=None if archived else ["companies"],
            archived=archived,
        )
        results = [
            HsObject(
                str(d.id),
                _properties(d.properties),
                bool(d.archived),
                None if archived else _v3_company_links(d.associations),
            )
            for d in data.results or []
        ]
        return ObjectPage(results, _next_after(data))

    def read_deals(self, ids: Sequence[str], properties: list[str]) -> tuple[list[HsObject], list[str]]:
        """Active deals by id (batch reads of ``batch_size``); the second list names the ids not found."""
        found: list[HsObject] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), self.config.batch_size):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk], properties=properties, properties_with_history=[]
            )
            data = self._call("deals.batch.read", self._deals_batch.read_with_http_info, body, archived=False)
            found.extend(HsObject(str(d.id), _properties(d.properties)) for d in data.results or [])
        returned = {o.id for o in found}
        return found, [i for i in dict.fromkeys(ids) if i not in returned]

    def search(
        self,
        object_type: str,
        filters: Sequence[SearchFilter],
        sort_property: str,
        after: int,
        limit: int,
        properties: list[str],
    ) -> ObjectPage:
        """One page of ``POST /crm/v3/objects/{deals|companies}/search``, ascending on ``sort_property``."""
        request_type, api = (
            (PublicObjectSearchRequest, self._deals_search)
            if object_type == "deals"
            else (CompanySearchRequest, self._companies_search)
        )
        sent: list[int] = []

        def attempt(**kwargs: Any) -> Any:
            # Built per attempt: a retry after a 429 asks for the page size halved by ``_call``.
            sent.append(min(limit, self.search_page_limit))
            body = request_type(
                filter_groups=[
                    FilterGroup(
                        filters=[Filter(property_name=f.property, operator=f.operator, value=f.value) for f in filters]
                    )
                ],
                sorts=[{"propertyName": sort_property, "direction": "ASCENDING"}],
                properties=properties,
                limit=sent[-1],
                after=str(after),
            )
            return api.do_search_with_http_info(body, **kwargs)

        data = self._call(f"{object_type}.search", attempt, search=True)
        results = [HsObject(str(o.id), _properties(o.properties)) for o in data.results or []]
        return ObjectPage(results, _next_after(data), int(data.total or 0), limit=sent[-1])

    def reset_search_page(self) -> None:
        """Back to ``search_page_size`` (a new read starts with full pages again)."""
        self.search_page_limit = self.config.search_page_size

    def update_deals(self, inputs: Sequence[tuple[str, Mapping[str, str]]]) -> BatchWrite:
        """One ``batch/update`` of at most ``batch_size`` deals. A 207 names refused ids; a 400 (one bad value
        fails the whole batch) raises ``HubSpotRequestError`` so the caller can split the batch."""
        body = BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=rid, properties=dict(props)) for rid, props in inputs]
        )
        data = self._call("deals.batch.update", self._deals_batch.update_with_http_info, body)
        outcome = BatchWrite(ok=[str(d.id) for d in data.results or []])
        for error in getattr(data, "errors", None) or []:
            context = error.context or {}
            message = f"{error.category}: {error.message}"[:300]
            for rid in context.get("ids") or context.get("id") or []:
                outcome.errors[str(rid)] = message
        return outcome

    # -- companies, associations, owners --------------------------------------------------------------------

    def read_companies(self, ids: Sequence[str], properties: list[str]) -> dict[str, HsObject]:
        """Active companies by id (batch reads of ``batch_size``); unknown ids are left out."""
        found: dict[str, HsObject] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), self.config.batch_size):
            body = CompanyBatchRead(
                inputs=[CompanyId(id=i) for i in chunk], properties=properties, properties_with_history=[]
            )
            data = self._call("companies.batch.read", self._companies_batch.read_with_http_info, body, archived=False)
            for c in data.results or []:
                found[str(c.id)] = HsObject(str(c.id), _properties(c.properties))
        return found

    def associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[Link]]:
        """v4 batch read of links (``deals``→``companies`` or back); ids without links are left out.

        HubSpot pages each input on its own: a result with more links than one page carries ``paging.next.after``,
        and that id is asked again as ``{"id", "after"}`` (with the other unfinished ids, up to 1,000 inputs per
        request) until no result carries paging. The ``primary`` flag is meaningful for deal → company links
        (association type 5)."""
        links: dict[str, list[Link]] = {}
        guard = LoopGuard(f"HubSpot associations.{from_type}.{to_type}", HubSpotPagingLoop)
        Pending = tuple[tuple[str, str | None], ...]

        def batch(pending: Pending | None) -> tuple[None, Pending | None]:
            """One request of up to 1,000 inputs; the next token is what is still unfinished (None: nothing)."""
            waiting = pending if pending is not None else tuple((i, None) for i in dict.fromkeys(ids))
            chunk, rest = waiting[:ASSOCIATIONS_BATCH_MAX], list(waiting[ASSOCIATIONS_BATCH_MAX:])
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i, after=after) for i, after in chunk]
            )
            data = self._call(
                f"associations.{from_type}.{to_type}",
                self._associations.get_page_with_http_info,
                from_type,
                to_type,
                body,
            )
            for result in data.results or []:
                from_id = str(result._from.id)
                targets = links.setdefault(from_id, [])
                for target in result.to or []:
                    types = target.association_types or []
                    primary = any(t.type_id == PRIMARY_DEAL_TO_COMPANY for t in types)
                    targets.append(Link(str(target.to_object_id), primary))
                after = _next_after(result)
                if after is not None:
                    rest.append((from_id, guard.check((from_id, after))[1]))
            return None, tuple(rest) or None

        if ids:
            for _ in follow(batch, f"HubSpot associations.{from_type}.{to_type}", HubSpotPagingLoop):
                pass
        return links

    def owners(self) -> dict[str, Owner]:
        """Every owner, active and archived (deals may still name a deactivated user), by owner id."""
        owners: dict[str, Owner] = {}
        for archived in (False, True):

            def page(after: str | None, archived: bool = archived) -> tuple[list[Any], str | None]:
                data = self._call(
                    "owners.get_page", self._owners.get_page_with_http_info, limit=500, after=after, archived=archived
                )
                return list(data.results or []), _next_after(data)

            for results in follow(page, "HubSpot owners.get_page", HubSpotPagingLoop):
                for o in results:
                    owners.setdefault(str(o.id), Owner(str(o.id), o.email, o.first_name, o.last_name))
        return owners

    # -- account ---------------------------------------------------------------------------------------------

    def portal_id(self) -> int:
        """The portal (Hub ID) the token belongs to: ``GET /account-info/v3/details`` → ``portalId``.

        The SDK has no typed API for it, so the owners API's own ``ApiClient`` sends it: same connection pool,
        auth, timeout, budget, retries and error translation as every other call."""
        api = self._owners.api_client

        def details(_request_timeout: tuple[float, float]) -> Any:
            return api.call_api(
                "/account-info/v3/details",
                "GET",
                header_params={"Accept": "application/json"},
                response_types_map={200: "object"},
                auth_settings=["oauth2"],
                _return_http_data_only=False,
                _request_timeout=_request_timeout,
            )

        data = self._call("account_info.details", details)
        portal = data.get("portalId") if isinstance(data, Mapping) else None
        if not isinstance(portal, int):
            raise HubSpotRequestError("HubSpot account_info.details: no portalId in the answer", 200, None)
        return portal

    # -- properties ------------------------------------------------------------------------------------------

    def property_names(self, object_type: str) -> set[str]:
        """Names of every (non-archived) property of ``object_type``."""
        data = self._call("properties.get_all", self._properties.get_all_with_http_info, object_type, archived=False)
        return {str(p.name) for p in data.results or []}

    def create_property(self, object_type: str, name: str, label: str, group: str, description: str) -> bool:
        """Create a single-line text property; False if it already existed (409)."""
        body = PropertyCreate(
            name=name, label=label, type="string", field_type="text", group_name=group, description=description
        )
        try:
            self._call("properties.create", self._properties.create_with_http_info, object_type, body)
        except HubSpotRequestError as exc:
            if exc.status == 409:
                return False
            raise
        return True
