"""SOQL result rows → ``CrmRecord``s, in the shape the mapping's field paths address.

A row keeps Salesforce's field names and nesting: ``{"Id", "Name", "Website", "Owner": {"Email"}, ...}`` with
every ``attributes`` entry removed, so ``Owner.Email`` in ``crmsync.yaml`` reads the owner's email. The same
conversion serves ``pull`` and ``fetch``, so both give identical records for one row.

- ``version`` / ``modified_at``: ``LastModifiedDate`` (a person's or an integration's last save), falling back to
  ``SystemModstamp``;
- ``deleted``: ``IsDeleted`` (rows in the recycle bin, which ``queryAll`` returns);
- ``link_rank``: older accounts rank higher, so when several Accounts resolve to one PostHog account, the
  original (first created) one holds the account's ``sfdc_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sync.connector import CrmRecord

SOURCE = "salesforce"


def parse_datetime(value: Any) -> datetime | None:
    """A REST (``2024-05-01T10:00:00.000+0000``) or SOAP (``...000Z``) datetime in UTC; None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def strip_attributes(value: Any) -> Any:
    """The row without SOQL's ``attributes`` entries, nested relationship objects included (plain dicts)."""
    if isinstance(value, Mapping):
        return {str(k): strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [strip_attributes(v) for v in value]
    return value


def modstamp_ms(row: Mapping[str, Any]) -> int:
    """A row's ``SystemModstamp`` in epoch ms (0 when missing: such a row sorts first and never settles late)."""
    stamp = parse_datetime(row.get("SystemModstamp"))
    return epoch_ms(stamp) if stamp else 0


def to_record(row: Mapping[str, Any], stream: str) -> CrmRecord:
    """One SOQL row as a ``CrmRecord`` of ``stream``."""
    fields = strip_attributes(row)
    modified = parse_datetime(fields.get("LastModifiedDate")) or parse_datetime(fields.get("SystemModstamp"))
    created = parse_datetime(fields.get("CreatedDate"))
    return CrmRecord(
        source=SOURCE,
        object=stream,
        id=str(fields.get("Id") or ""),
        fields=fields,
        version=epoch_ms(modified) if modified else None,
        modified_at=modified,
        deleted=bool(fields.get("IsDeleted")),
        link_rank=-int(created.timestamp()) if created else 0,
    )


def gone(record_id: str, stream: str) -> CrmRecord:
    """A record that no longer exists at all (purged from the recycle bin, or never existed)."""
    return CrmRecord(source=SOURCE, object=stream, id=record_id, fields={}, deleted=True)
