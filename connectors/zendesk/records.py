"""Zendesk organizations as ``CrmRecord``s, and the organization fields push-back writes.

An organization is the record as Zendesk answers it (``id``, ``name``, ``external_id``, ``domain_names``, ``tags``,
``organization_fields``, ``updated_at``, ...), plus ``domain``: its first ``domain_names`` entry, so the mapping can
match it to an account's domain (``identity.match_domain``) with one path. ``version`` is ``updated_at`` in epoch
milliseconds. Push-back writes only custom organization fields (``organization_fields.<key>``, such as
``organization_fields.posthog_account_id``, which ``crmsync setup zendesk`` creates).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sync.connector import CrmRecord

SOURCE = "zendesk"
STREAM = "organizations"
FIELDS_PREFIX = "organization_fields."

JSON = dict[str, Any]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def organization_record(org: Mapping[str, Any]) -> CrmRecord:
    """One organization as Zendesk answered it (a list, ``show_many`` or the incremental export)."""
    domains = [d for d in org.get("domain_names") or () if isinstance(d, str) and d]
    fields = {**org, "domain": domains[0] if domains else None}
    modified = _when(org.get("updated_at"))
    return CrmRecord(
        source=SOURCE,
        object=STREAM,
        id=str(org["id"]),
        fields=fields,
        version=int(modified.timestamp() * 1000) if modified else None,
        modified_at=modified,
        deleted=bool(org.get("deleted_at")),
    )


def deleted_record(record_id: str) -> CrmRecord:
    """An organization Zendesk no longer has."""
    return CrmRecord(source=SOURCE, object=STREAM, id=record_id, fields={}, deleted=True)


def field_key(path: str) -> str | None:
    """``organization_fields.posthog_account_id`` → ``posthog_account_id``; None for any other path."""
    if not path.startswith(FIELDS_PREFIX):
        return None
    key = path[len(FIELDS_PREFIX) :]
    return key if key and "." not in key else None


def organization_fields(values: Mapping[str, str | None]) -> JSON:
    """The ``organization_fields`` object of an update from push-back's ``{path: value}``."""
    out: JSON = {}
    for path, value in values.items():
        key = field_key(path)
        if key is None:
            raise ValueError(f"{path}: push-back writes organization_fields.<key> only")
        out[key] = value
    return out
