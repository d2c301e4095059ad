"""Transforms a field mapping applies to a CRM value, and dotted paths into a record's fields. Pure."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator


class Constant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    constant: str


class Template(BaseModel):
    """``{Name} ({Id})``: placeholders are dotted paths into the record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str

    @field_validator("template")
    @classmethod
    def _parses(cls, value: str) -> str:
        list(string.Formatter().parse(value))  # raises ValueError on a malformed template
        return value

    @property
    def placeholders(self) -> list[str]:
        """The dotted paths the template reads."""
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name]


Transform = Literal["strip", "lower", "upper", "domain"] | Constant | Template


def domain_of(value: str) -> str | None:
    """``ana@Acme.com`` → ``acme.com``; ``https://www.acme.com/x`` → ``acme.com``; junk → None."""
    value = value.strip().lower()
    if not value:
        return None
    if "@" in value and "://" not in value:
        host = value.rsplit("@", 1)[1]
    else:
        try:
            host = urlsplit(value if "://" in value else f"//{value}").hostname or ""
        except ValueError:  # e.g. an unbalanced "[" (IPv6 literal syntax)
            return None
    host = host.removeprefix("www.").strip(".")
    return host if "." in host and " " not in host else None


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through nested mappings; None where any step is missing."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def set_path(record: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``record`` with the dotted ``path`` set to ``value`` (nested mappings created as needed)."""
    head, _, rest = path.partition(".")
    copy = dict(record)
    if not rest:
        copy[head] = value
    else:
        inner = copy.get(head)
        copy[head] = set_path(inner if isinstance(inner, Mapping) else {}, rest, value)
    return copy


def apply_transform(value: Any, transform: Transform, record: Mapping[str, Any]) -> Any:
    """``value`` after ``transform`` (a list: each item, empty results dropped); TypeError on a value not text."""
    if isinstance(transform, Constant):
        return transform.constant
    if isinstance(transform, Template):
        values = {name: get_path(record, name) for name in transform.placeholders}
        if any(v is None for v in values.values()):
            return None
        for v in values.values():
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise TypeError(f"expected text, got {type(v).__name__}")
        return transform.template.format_map({k: str(v) for k, v in values.items()})
    if value is None:
        return None
    if isinstance(value, list):
        return [v for v in (apply_transform(item, transform, record) for item in value) if v is not None]
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    match transform:
        case "strip":
            return value.strip()
        case "lower":
            return value.lower()
        case "upper":
            return value.upper()
        case "domain":
            return domain_of(value)
    raise AssertionError(transform)
