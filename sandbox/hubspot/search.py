"""The CRM search query language: ``filterGroups`` (OR of ANDed filters), one sort, ``query``, offset paging.

A request body is parsed and checked against the object's property definitions first (400 on anything
HubSpot rejects: unknown property, bad operator, bad value, more than one sort, more than 5 groups / 6
filters per group / 18 filters, ``limit`` over 200), then run over the active records. Values compare by
property type: numbers numerically, ``datetime``/``date`` as epoch ms (a filter value may be epoch ms or
ISO), strings and enumerations case-insensitively. ``after`` is an offset; HubSpot serves at most the first
10,000 results of a query, so an ``after`` of 10,000 or more answers 400 whatever the total.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.errors import HubSpotError, bad_request
from sandbox.hubspot.model import Record
from sandbox.hubspot.properties import PropertyDef
from sandbox.hubspot.timefmt import parse_timestamp

MAX_RESULTS = 10_000
MAX_LIMIT = 200
DEFAULT_LIMIT = 10
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_TOKEN_SPLIT = re.compile(r"[\s;,.@/_\-:]+")

Comparable = float | int | str
Predicate = Callable[[Record], bool]


def _typed(definition: PropertyDef, raw: str | None) -> Comparable | None:
    """A record value as search compares it; None when unset or unparsable."""
    if raw is None:
        return None
    if definition.type == "number":
        try:
            return float(raw)
        except ValueError:
            return None
    if definition.type in ("datetime", "date"):
        return parse_timestamp(raw)
    return raw.lower()


def _record_value(definition: PropertyDef, record: Record) -> Comparable | None:
    if definition.name == "hs_object_id":
        return float(record.id)
    if definition.name == "hs_lastmodifieddate":
        return record.updated_ms
    return _typed(definition, record.values.get(definition.name))


def _filter_value(definition: PropertyDef, raw: Any, operator: str) -> Comparable:
    text = "" if raw is None else str(raw)
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    value = _typed(definition, text)
    if value is None or text == "":
        raise bad_request(
            f"Invalid value '{text}' for {operator} filter on property {definition.name} of type {definition.type}."
        )
    return value


def _tokens(value: str) -> set[str]:
    return {token for token in _TOKEN_SPLIT.split(value.lower()) if token}


@dataclass(frozen=True)
class Sort:
    """The one sort HubSpot allows per request."""

    definition: PropertyDef
    descending: bool


@dataclass
class SearchRequest:
    """A parsed, validated search body."""

    groups: list[list[Predicate]] = field(default_factory=list)
    sort: Sort | None = None
    query_tokens: list[str] = field(default_factory=list)
    properties: list[str] | None = None
    limit: int = DEFAULT_LIMIT
    after: int = 0


def _compile_filter(raw: Any, schema: dict[str, PropertyDef]) -> Predicate:
    if not isinstance(raw, dict):
        raise bad_request("Each filter must be an object with propertyName and operator.")
    name = raw.get("propertyName")
    operator = raw.get("operator")
    if not isinstance(name, str) or not name:
        raise bad_request("Filter is missing propertyName.")
    if operator not in OPERATORS:
        raise bad_request(f"Invalid operator '{operator}'; one of {', '.join(sorted(OPERATORS))}.")
    definition = schema.get(name)
    if definition is None:
        raise bad_request(f"Property '{name}' does not exist and cannot be used in a filter.")

    def get(record: Record) -> Comparable | None:
        return _record_value(definition, record)

    if operator == "HAS_PROPERTY":
        return lambda r: get(r) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: get(r) is None
    if operator in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise bad_request(f"{operator} filter on {name} needs a non-empty 'values' list.")
        wanted = {_filter_value(definition, v, operator) for v in values}
        if operator == "IN":
            return lambda r: get(r) in wanted
        return lambda r: get(r) not in wanted
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(raw.get("value", "")).lower().strip()
        if not pattern:
            raise bad_request(f"{operator} filter on {name} needs a value.")
        regex = re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")

        def contains(record: Record) -> bool:
            current = record.get(name)
            return current is not None and any(regex.match(t) for t in _tokens(current))

        if operator == "CONTAINS_TOKEN":
            return contains
        return lambda r: not contains(r)
    if operator == "BETWEEN":
        low = _filter_value(definition, raw.get("value"), operator)
        high = _filter_value(definition, raw.get("highValue"), operator)

        def between(record: Record) -> bool:
            current = get(record)
            return current is not None and low <= current <= high  # type: ignore[operator]

        return between
    value = _filter_value(definition, raw.get("value"), operator)
    if operator == "EQ":
        return lambda r: get(r) == value
    if operator == "NEQ":
        return lambda r: get(r) != value
    compare: dict[str, Callable[[Comparable, Comparable], bool]] = {
        "LT": lambda a, b: a < b,  # type: ignore[operator]
        "LTE": lambda a, b: a <= b,  # type: ignore[operator]
        "GT": lambda a, b: a > b,  # type: ignore[operator]
        "GTE": lambda a, b: a >= b,  # type: ignore[operator]
    }
    check = compare[operator]

    def ordered(record: Record) -> bool:
        current = get(record)
        return current is not None and check(current, value)

    return ordered


def _parse_sort(sorts: Any, schema: dict[str, PropertyDef]) -> Sort | None:
    if sorts in (None, []):
        return None
    if not isinstance(sorts, list):
        raise bad_request("'sorts' must be a list.")
    if len(sorts) > 1:
        raise bad_request("Only one sort is allowed per search request.")
    raw = sorts[0]
    if isinstance(raw, str):
        descending = raw.startswith("-")
        name = raw.lstrip("-")
    elif isinstance(raw, dict):
        name = str(raw.get("propertyName", ""))
        direction = str(raw.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise bad_request(f"Invalid sort direction '{direction}'; ASCENDING or DESCENDING.")
        descending = direction == "DESCENDING"
    else:
        raise bad_request("Each sort must be a property name or {propertyName, direction}.")
    definition = schema.get(name)
    if definition is None:
        raise bad_request(f"Property '{name}' does not exist and cannot be used to sort.")
    return Sort(definition, descending)


def _int_field(body: dict[str, Any], key: str, default: int) -> int:
    raw = body.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise bad_request(f"'{key}' must be an integer, got '{raw}'.") from None


def parse_search(body: Any, schema: dict[str, PropertyDef]) -> SearchRequest:
    """Validate a search body against the object's properties; raises a 400 ``HubSpotError`` if invalid."""
    if not isinstance(body, dict):
        raise bad_request("Search body must be a JSON object.")
    request = SearchRequest()
    request.limit = _int_field(body, "limit", DEFAULT_LIMIT)
    if not 0 <= request.limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 0 and {MAX_LIMIT}, got {request.limit}.")
    request.after = _int_field(body, "after", 0)
    if request.after < 0:
        raise bad_request("after must not be negative.")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise bad_request("'filterGroups' must be a list.")
    if len(groups) > MAX_GROUPS:
        raise bad_request(f"At most {MAX_GROUPS} filterGroups are allowed, got {len(groups)}.")
    total = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise bad_request("Each filter group needs a 'filters' list.")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise bad_request(f"At most {MAX_FILTERS_PER_GROUP} filters per group are allowed.")
        total += len(filters)
        request.groups.append([_compile_filter(f, schema) for f in filters])
    if total > MAX_FILTERS:
        raise bad_request(f"At most {MAX_FILTERS} filters are allowed across all groups, got {total}.")
    request.sort = _parse_sort(body.get("sorts"), schema)
    query = body.get("query")
    if query:
        request.query_tokens = sorted(_tokens(str(query)))
    properties = body.get("properties")
    if properties is not None:
        if not isinstance(properties, list):
            raise bad_request("'properties' must be a list of property names.")
        request.properties = [str(p) for p in properties]
    return request


@dataclass(frozen=True)
class SearchPage:
    """One page of results: the full match count, the records, and the next offset if any."""

    total: int
    results: list[Record]
    next_after: int | None


def run_search(request: SearchRequest, records: list[Record], searchable: tuple[str, ...]) -> SearchPage:
    """Filter, sort and page ``records`` (given in id order)."""
    if request.after >= MAX_RESULTS:
        raise HubSpotError(
            400,
            "VALIDATION_ERROR",
            f"Search results are limited to the first {MAX_RESULTS} results; 'after' was {request.after}. "
            "Narrow the query instead of paging further.",
        )
    matches = records
    if request.groups:
        matches = [r for r in matches if any(all(f(r) for f in group) for group in request.groups)]
    if request.query_tokens:
        matches = [r for r in matches if _matches_query(r, request.query_tokens, searchable)]
    if request.sort is not None:
        matches = _sorted(matches, request.sort)
    end = min(request.after + request.limit, MAX_RESULTS)
    page = matches[request.after : end]
    next_after = end if end < len(matches) and request.limit else None
    return SearchPage(total=len(matches), results=page, next_after=next_after)


def _matches_query(record: Record, tokens: list[str], searchable: tuple[str, ...]) -> bool:
    words: set[str] = set()
    for name in searchable:
        value = record.values.get(name)
        if value:
            words |= _tokens(value)
    return all(any(word.startswith(token) for word in words) for token in tokens)


def _sorted(records: list[Record], sort: Sort) -> list[Record]:
    """Stable sort on the property (ties stay in id order); unset values last in either direction."""
    present: list[tuple[Comparable, Record]] = []
    absent: list[Record] = []
    for record in records:
        value = _record_value(sort.definition, record)
        if value is None:
            absent.append(record)
        else:
            present.append((value, record))
    present.sort(key=lambda pair: pair[0], reverse=sort.descending)
    return [record for _, record in present] + absent
