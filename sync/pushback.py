"""Push-back planning: what a CRM record should hold that PostHog knows (pure).

For a record linked to an account, the desired CRM fields are: the PostHog account id (``account_id_field``),
the other systems' ids (``link_fields``) and the mapping's outbound fields, each with PostHog's value. A push is
planned only when that differs from what was last pushed (the ledger's ``out`` fingerprint) and from what the
record already holds (when the record's fields are known): no write without a change. The I/O is in
``sync/pushback_writer.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.apply import AccountState
from sync.connector import CrmRecord, PushUpdate
from sync.mapping import AccountPatch, ObjectMapping, fingerprint_of, get_path, remap_pushed


def desired_fields(mapping: ObjectMapping, account_id: str, state: AccountState) -> dict[str, str | None]:
    """The CRM fields this record should carry, by CRM field name."""
    fields: dict[str, str | None] = {}
    if mapping.account_id_field:
        fields[mapping.account_id_field] = account_id
    for prop, crm_field in mapping.link_fields.items():
        value = state.properties.get(prop)
        if isinstance(value, str) and value:
            fields[crm_field] = value
    for fm in mapping.outbound:
        assert isinstance(fm.source, str)  # validated: outbound fields have one source path
        if fm.custom_name is not None:
            continue  # read from PostHog's change feed instead (sync/custom_pushback.py)
        value = state.get(fm.target)
        if fm.target == "tags":
            value = ",".join(sorted(value)) if value else None
        fields[fm.source] = None if value in (None, "") else str(value)
    return fields


def plan_push(
    record_id: str,
    desired: Mapping[str, str | None],
    last_pushed_fp: str | None,
    record_fields: Mapping[str, Any] | None = None,
) -> tuple[PushUpdate | None, str]:
    """The update to send (or None when nothing would change) and the fingerprint of ``desired``."""
    fp = fingerprint_of(dict(desired))
    if not desired or fp == last_pushed_fp:
        return None, fp
    if record_fields is not None and all(_same(get_path(record_fields, k), v) for k, v in desired.items()):
        return None, fp  # the CRM already holds exactly this
    return PushUpdate(record_id=record_id, fields=dict(desired), fingerprint=fp), fp


def echo_fingerprint(
    record: CrmRecord, patch: AccountPatch, update: PushUpdate, mapping: ObjectMapping, mapping_fp: str
) -> str:
    """The fingerprint the record will map to after our push, so the next pull recognises it as our echo. Reuses
    ``patch`` (the record's own mapping): only fields the mapping reads from a pushed CRM field are mapped again."""
    return remap_pushed(patch, record, update.fields, mapping).fingerprint(mapping_fp)


def _same(have: Any, want: str | None) -> bool:
    if want is None:
        return have in (None, "")
    return have is not None and str(have) == want
