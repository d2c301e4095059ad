"""List queries: PostHog's account filters and DRF's limit/offset pagination, parsed exactly as they are.

Nothing here rejects a value PostHog accepts: unknown orderings, non-numeric role ids, a bad ``limit`` or
``offset`` are silently ignored. The one loud failure is a malformed ``tags`` filter (400).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib import parse

from sandbox.posthog.errors import validation_error
from sandbox.posthog.validation import ROLE_KEYS

DEFAULT_LIMIT = 100
ORDERINGS = ("created_at", "-created_at", "name", "-name", "updated_at", "-updated_at")
DEFAULT_ORDERING = "-created_at"

RoleFilter = Literal["unassigned"] | int


@dataclass(frozen=True)
class AccountQuery:
    """Parsed account-list filters; all of them combine with AND."""

    search: str = ""
    tags: tuple[str, ...] = ()
    roles: dict[str, RoleFilter] = field(default_factory=dict)
    all_roles_unassigned: bool = False
    ordering: str = DEFAULT_ORDERING
    roles_in_relationships: bool = False  # current: "no user actively holds any relationship"
    hide_churned: bool = False  # current: churned accounts hidden unless include_churned=true


def parse_account_query(params: Mapping[str, str], *, current: bool = False) -> AccountQuery:
    """Read ``search``, ``tags``, the role filters, ``all_roles_unassigned`` and ``ordering``.

    ``current``: PostHog's current ``AccountViewSet.list`` reads no role filters (unknown query parameters are
    ignored, so ``?csm=7`` returns everything), takes ``all_roles_unassigned`` from the relationship rows and
    hides churned accounts unless ``include_churned`` is the text ``true`` (any case).
    """
    roles: dict[str, RoleFilter] = {}
    for role in () if current else ROLE_KEYS:
        value = params.get(role)
        if value == "unassigned":
            roles[role] = "unassigned"
        elif value:
            with contextlib.suppress(ValueError):
                roles[role] = int(value)
    ordering = params.get("ordering")
    return AccountQuery(
        search=params.get("search", "").strip(),
        tags=_parse_tags(params.get("tags")),
        roles=roles,
        all_roles_unassigned=params.get("all_roles_unassigned", "").lower() == "true",
        ordering=ordering if ordering in ORDERINGS else DEFAULT_ORDERING,
        roles_in_relationships=current,
        hide_churned=current and params.get("include_churned", "").lower() != "true",
    )


def _parse_tags(raw: str | None) -> tuple[str, ...]:
    """``tags`` is a JSON-encoded list of strings; blank means no filter, ``[]`` too."""
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise validation_error("tags", "invalid", "Must be a JSON-encoded list of strings.")
    return tuple(value)


@dataclass(frozen=True)
class Page:
    """DRF ``LimitOffsetPagination`` window."""

    limit: int
    offset: int


def _non_negative(raw: str, *, strict: bool) -> int:
    number = int(raw)
    if number < 0 or (strict and number == 0):
        raise ValueError(raw)
    return number


def parse_page(params: Mapping[str, str]) -> Page:
    """``limit``: a positive integer, else 100 (no maximum); ``offset``: a non-negative integer, else 0."""
    try:
        limit = _non_negative(params["limit"], strict=True)
    except (KeyError, ValueError):
        limit = DEFAULT_LIMIT
    try:
        offset = _non_negative(params["offset"], strict=False)
    except (KeyError, ValueError):
        offset = 0
    return Page(limit=limit, offset=offset)


def _with_query(url: str, updates: Mapping[str, str], remove: str | None = None) -> str:
    """DRF's ``replace_query_param`` / ``remove_query_param``: keys re-sorted, blank values kept."""
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    query_dict = parse.parse_qs(query, keep_blank_values=True)
    for key, value in updates.items():
        query_dict[key] = [value]
    if remove is not None:
        query_dict.pop(remove, None)
    return parse.urlunsplit((scheme, netloc, path, parse.urlencode(sorted(query_dict.items()), doseq=True), fragment))


def page_links(url: str, page: Page, count: int) -> tuple[str | None, str | None]:
    """Absolute ``next`` and ``previous`` URLs built from the request URL, as DRF builds them."""
    next_url = None
    if page.offset + page.limit < count:
        next_url = _with_query(url, {"limit": str(page.limit), "offset": str(page.offset + page.limit)})
    previous_url = None
    if page.offset > 0:
        if page.offset - page.limit <= 0:
            previous_url = _with_query(url, {"limit": str(page.limit)}, remove="offset")
        else:
            previous_url = _with_query(url, {"limit": str(page.limit), "offset": str(page.offset - page.limit)})
    return next_url, previous_url
