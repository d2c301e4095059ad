"""``map_record``: one CRM record → the ``AccountPatch`` of the fields its source maps inbound. Pure.

The mapping itself (``crmsync.yaml``'s ``mappings``, ``ownership`` and ``identity``) is validated in
``sync/mapping_config.py``; transforms and dotted paths are in ``sync/transforms.py``; who may write a field in
``sync/ownership.py``. Their public names are importable from here too, the one place callers know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sync.connector import CrmRecord
from sync.custom_values import ValueTypeError, coerce, type_name
from sync.errors import BadRecordError
from sync.ledger_layout import compact_fp
from sync.mapping_config import (
    CUSTOM_PREFIX,
    WRITABLE_PROPERTIES,
    Direction,
    FieldMapping,
    IdentityConfig,
    MappingConfig,
    ObjectMapping,
    digest,
    load_mapping_config,
    load_mapping_file,
)
from sync.ownership import OwnerRule, Permission, Provenance, RuleKind, may_write
from sync.transforms import Constant, Template, Transform, apply_transform, domain_of, get_path, set_path

__all__ = [
    "CUSTOM_PREFIX",
    "WRITABLE_PROPERTIES",
    "AccountPatch",
    "Constant",
    "Direction",
    "FieldMapping",
    "IdentityConfig",
    "MappingConfig",
    "ObjectMapping",
    "OwnerRule",
    "Permission",
    "Provenance",
    "RuleKind",
    "Template",
    "Transform",
    "churn_time",
    "domain_of",
    "fingerprint_of",
    "get_path",
    "load_mapping_config",
    "load_mapping_file",
    "map_record",
    "may_write",
    "normalise_tags",
    "remap_pushed",
    "set_path",
]

NAME_MAX = 400
TAG_MAX = 255
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class AccountPatch:
    """What one CRM record says about its account: only the fields this source maps inbound."""

    source: str
    object: str
    record_id: str
    link_key: str
    values: dict[str, Any]  # target → value ("name", "external_id", "properties.x", "roles.csm" (email), "tags")
    version: int | None = None
    deleted: bool = False
    errors: tuple[BadRecordError, ...] = ()
    link_rank: int = 0
    merged_ids: tuple[str, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        value = self.values.get("tags")
        return tuple(value) if isinstance(value, list | tuple) else ()

    def fingerprint(self, mapping_fingerprint: str) -> str:
        """Changes when anything the engine acts on changes: mapped values, deletion, link rank, merges."""
        payload: dict[str, Any] = {
            "m": mapping_fingerprint,
            "v": self.values,
            "d": self.deleted,
            "l": self.link_key,
            "id": self.record_id,
        }
        if self.link_rank:
            payload["r"] = self.link_rank
        if self.merged_ids:
            payload["mi"] = sorted(self.merged_ids)
        return compact_fp(digest(payload))


def normalise_tags(values: Sequence[str]) -> list[str]:
    """Tags as PostHog stores them: stripped, lowercased, de-duplicated (sorted for stable fingerprints)."""
    return sorted({v.strip().lower() for v in values if v and v.strip()})


def _check_value(target: str, value: Any) -> Any:
    """Validate a mapped value against PostHog's limits; raises ValueError with the reason."""
    if value is None:
        return None
    if target == "tags":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ValueError("tags must be text")
        tags = normalise_tags(items)
        if any(len(t) > TAG_MAX for t in tags):
            raise ValueError(f"a tag is longer than {TAG_MAX} characters")
        return tags
    if target == "churned_at":
        return churn_time(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = str(value)
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError("contains invalid characters")
    if target == "name":
        text = text.strip()
        if not text:
            return None
        if len(text) > NAME_MAX:
            raise ValueError(f"longer than {NAME_MAX} characters")
    elif target == "external_id" and len(text) > NAME_MAX:
        raise ValueError(f"longer than {NAME_MAX} characters")
    elif target.startswith("roles."):
        text = text.strip().lower()
        if not text:
            return None
        if not _EMAIL_RE.match(text):
            raise ValueError(f"not an email address: {text[:80]!r}")
    return text if text != "" else None


def churn_time(value: Any) -> str | None:
    """A ``churned_at`` value as the account field holds it: ISO 8601 in UTC with microseconds, from epoch
    seconds (Stripe's ``ended_at``) or an ISO 8601 string (a naive one is UTC); None when empty."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError("expected a time, got bool")
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value[:80]!r}") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        raise ValueError(f"expected a time, got {type(value).__name__}")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def map_record(record: CrmRecord, mapping: ObjectMapping) -> AccountPatch:
    """Apply the inbound field mappings to one record. Bad fields are reported and left out; the rest stays."""
    values, errors = _map_fields(record, record.fields, mapping.inbound)
    return AccountPatch(
        source=record.source,
        object=record.object,
        record_id=record.id,
        link_key=mapping.link,
        values=values,
        version=record.version,
        deleted=record.deleted,
        errors=tuple(errors),
        link_rank=record.link_rank,
        merged_ids=tuple(record.merged_ids),
    )


def remap_pushed(
    patch: AccountPatch, record: CrmRecord, pushed: Mapping[str, Any], mapping: ObjectMapping
) -> AccountPatch:
    """What ``record`` maps to once a push has set ``pushed`` (CRM field path → value) on it, reusing ``patch`` (its
    ``map_record`` result): only the targets of inbound fields that read a pushed path are mapped again, none when
    the push wrote only fields the mapping does not read. Its values and fingerprint are exactly ``map_record``'s of
    the pushed record (``errors`` stay those of ``record``)."""
    touched = {fm.target for fm in mapping.inbound if _reads(fm, pushed)}
    if not touched:
        return patch
    fields: Mapping[str, Any] = record.fields
    for path, value in pushed.items():
        fields = set_path(fields, path, value)
    values, _ = _map_fields(record, fields, [fm for fm in mapping.inbound if fm.target in touched])
    kept = {target: value for target, value in patch.values.items() if target not in touched}
    return replace(patch, values={**kept, **values})


def _map_fields(
    record: CrmRecord, fields: Mapping[str, Any], mappings: Sequence[FieldMapping]
) -> tuple[dict[str, Any], list[BadRecordError]]:
    """The account values ``mappings`` give ``fields`` (the first non-empty value of a target wins; tags add up)."""
    values: dict[str, Any] = {}
    errors: list[BadRecordError] = []
    for fm in mappings:
        try:
            value = _mapped_value(fields, fm)
            value = _custom_value(fm, value) if fm.custom_name is not None else _check_value(fm.target, value)
        except (TypeError, ValueError) as exc:
            errors.append(BadRecordError(record.source, record.id, fm.paths[0] if fm.paths else fm.target, str(exc)))
            continue
        if value is None:
            continue
        if fm.target == "tags":
            values["tags"] = normalise_tags([*values.get("tags", []), *value])
        else:
            values.setdefault(fm.target, value)
    return values, errors


def _reads(fm: FieldMapping, paths: Iterable[str]) -> bool:
    """Whether ``fm`` reads any of ``paths`` (or a field inside or around one): its source paths and templates."""
    read = [*fm.paths, *(name for t in fm.transforms if isinstance(t, Template) for name in t.placeholders)]
    return any(p == q or p.startswith(q + ".") or q.startswith(p + ".") for p in paths for q in read)


def _custom_value(fm: FieldMapping, value: Any) -> Any:
    """A custom target's value as PostHog would store it (None when empty), or ValueError naming the value's type
    and the definition."""
    if value in (None, ""):
        return None
    assert fm.type is not None and fm.custom_name is not None  # validated with the config
    try:
        return coerce(fm.type, value, fm.custom_name, fm.options)
    except ValueTypeError as exc:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ValueError(
            f"{type_name(value)} value {shown} does not fit custom property definition "
            f"'{fm.custom_name}' ({fm.type.value}): {exc}"
        ) from None


def _mapped_value(fields: Mapping[str, Any], fm: FieldMapping) -> Any:
    value: Any = None
    for path in fm.paths:
        candidate = get_path(fields, path)
        if candidate not in (None, "", []):
            value = candidate
            break
    for transform in fm.transforms:
        value = apply_transform(value, transform, fields)
    return value


def fingerprint_of(payload: Any) -> str:
    """A value's fingerprint as the ledger stores it (``compact_fp`` of its digest)."""
    return compact_fp(digest(payload))
