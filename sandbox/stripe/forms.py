"""Stripe's form encoding: bracketed keys decoded into nested values, and typed readers for them.

The SDK sends ``metadata[k]=v``, ``created[gte]=1700000000``, ``expand[0]=data.subscriptions`` and
``types[0]=customer.updated``; curl users send ``expand[]=...``. ``decode_form`` turns both into
``{"metadata": {"k": "v"}, "created": {"gte": "..."}, "expand": {"0": "..."}}`` (indexed arrays stay dicts of
digit keys until a reader asks for a list, since a metadata key may be a digit too). Readers raise Stripe's
own 400s (``parameter_unknown``, ``Invalid integer``) naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.stripe.errors import invalid_param, unknown_param

Params = dict[str, Any]
"""Decoded form parameters: strings, nested dicts and lists."""

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def _split_key(raw: str) -> list[str]:
    match = _KEY.match(raw)
    if match is None:
        return [raw]
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _insert(root: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = root
    for position, segment in enumerate(path):
        last = position == len(path) - 1
        wants_list = not last and path[position + 1] == ""
        if isinstance(node, list):
            if segment != "":
                raise invalid_param(f"Invalid array: {path[0]}", path[0])
            if last:
                node.append(value)
                return
            child: Any = [] if wants_list else {}
            node.append(child)
            node = child
            continue
        if last:
            node[segment] = value
            return
        child = node.get(segment)
        if child is None or isinstance(child, str):
            child = [] if wants_list else {}
            node[segment] = child
        elif wants_list != isinstance(child, list):
            raise invalid_param(f"Invalid {path[0]}: mixes array and hash forms", path[0])
        node = child


def decode_form(pairs: Iterable[tuple[str, str]]) -> Params:
    """Nest ``a[b][c]=v`` pairs into dicts; ``a[]=v`` appends to a list."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _insert(root, _split_key(key), value)
    return root


def check_known(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Reject any top-level parameter the endpoint does not take, as Stripe does."""
    known = set(allowed)
    for name in params:
        if name not in known:
            raise unknown_param(name)


def as_str(params: Mapping[str, Any], name: str) -> str | None:
    """A string parameter, ``None`` if absent; a hash or array in its place is a 400."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_param(f"Invalid string: {name} must be a string", name)
    return value


def _int(value: Any, name: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value.strip()):
        raise invalid_param(f"Invalid integer: {value}", name, "parameter_invalid_integer")
    return int(value)


def as_int(params: Mapping[str, Any], name: str) -> int | None:
    """An integer parameter, ``None`` if absent; anything else is Stripe's ``Invalid integer``."""
    value = params.get(name)
    return None if value is None else _int(value, name)


def as_list(params: Mapping[str, Any], name: str) -> list[str]:
    """An array parameter sent as ``name[]=a&name[]=b`` or ``name[0]=a&name[1]=b``."""
    value = params.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict) and all(key.isdigit() for key in value):
        items = [value[key] for key in sorted(value, key=int)]
    else:
        raise invalid_param(f"Invalid array: {name}", name)
    if not all(isinstance(item, str) for item in items):
        raise invalid_param(f"Invalid array: {name}", name)
    return list(items)


def as_hash(params: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """A hash parameter; an empty string (Stripe's "unset") comes back as ``{}``."""
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_param(f"Invalid hash: {name}", name)
    return value


@dataclass(frozen=True)
class ListArgs:
    """The paging arguments every Stripe list endpoint takes."""

    limit: int
    starting_after: str | None
    ending_before: str | None
    created_lo: int | None
    """Smallest ``created`` (inclusive) allowed by ``created[gt|gte]`` or ``created=<t>``."""
    created_hi: int | None
    """Largest ``created`` (inclusive) allowed by ``created[lt|lte]`` or ``created=<t>``."""
    expand: tuple[str, ...]


LIST_PARAMS = ("limit", "starting_after", "ending_before", "created", "expand")


def read_limit(params: Mapping[str, Any], default: int = 10, maximum: int = 100) -> int:
    """``limit`` between 1 and 100, default 10, with Stripe's messages when out of range."""
    limit = as_int(params, "limit")
    if limit is None:
        return default
    if limit < 1:
        raise invalid_param(f"This value must be greater than or equal to 1 (it currently is '{limit}').", "limit")
    if limit > maximum:
        raise invalid_param(f"This value must be less than or equal to {maximum} (it currently is '{limit}').", "limit")
    return limit


def read_list_args(params: Mapping[str, Any]) -> ListArgs:
    """Parse ``limit``, the two cursors, ``created[...]`` and ``expand[]``."""
    starting_after = as_str(params, "starting_after") or None
    ending_before = as_str(params, "ending_before") or None
    if starting_after and ending_before:
        raise invalid_param(
            "You may only specify one of these parameters: ending_before, starting_after.", "ending_before"
        )
    created_lo: int | None = None
    created_hi: int | None = None
    created = params.get("created")
    if isinstance(created, str):
        created_lo = created_hi = _int(created, "created")
    elif isinstance(created, dict):
        for op, raw in created.items():
            value = _int(raw, f"created[{op}]")
            if op in ("gt", "gte"):
                low = value + 1 if op == "gt" else value
                created_lo = low if created_lo is None else max(created_lo, low)
            elif op in ("lt", "lte"):
                high = value - 1 if op == "lt" else value
                created_hi = high if created_hi is None else min(created_hi, high)
            else:
                raise unknown_param(f"created[{op}]")
    elif created is not None:
        raise invalid_param("Invalid created: must be an integer or a hash", "created")
    return ListArgs(
        limit=read_limit(params),
        starting_after=starting_after,
        ending_before=ending_before,
        created_lo=created_lo,
        created_hi=created_hi,
        expand=tuple(as_list(params, "expand")),
    )


def check_expand(expand: Iterable[str], allowed: Iterable[str]) -> None:
    """Stripe answers 400 for a path it cannot expand."""
    known = set(allowed)
    for path in expand:
        if path not in known:
            raise invalid_param(f"This property cannot be expanded ({path}).", "expand")
