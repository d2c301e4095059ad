"""Merge-safe application of mapped CRM records onto one account. Pure: no I/O (the engine does that).

PostHog replaces ``properties`` and ``tags`` whole on PATCH, so a write must carry everything the account
already has. ``merge`` starts from the account as read, changes only the fields the records' sources may write
(per ``OwnerRule`` and the provenance kept in the ledger), keeps every other property key and tag, and says
exactly what changed. It is idempotent: merging the same patches into its own result changes nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.errors import BadRecordError
from sync.ledger import AccountEntry
from sync.mapping import AccountPatch, MappingConfig, fingerprint_of, normalise_tags
from sync.ownership import Provenance, may_write
from sync.posthog.models import Account, Role

IDENTITY_ONLY = ("domain",)  # targets used to match accounts, never written


@dataclass
class AccountState:
    """The writable part of an account: what a PATCH or POST would send."""

    name: str | None
    external_id: str | None
    properties: dict[str, Any]
    tags: list[str]
    churned_at: str | None = None  # current servers' account field (ISO 8601, UTC, microseconds)

    @classmethod
    def of(cls, account: Account) -> AccountState:
        churned = account.churned_at.isoformat(timespec="microseconds") if account.churned_at else None
        props = account.properties.payload()
        return cls(account.name, account.external_id, props, normalise_tags(account.tags), churned)

    @classmethod
    def empty(cls) -> AccountState:
        return cls(None, None, {}, [])

    def get(self, target: str) -> Any:
        if target == "name":
            return self.name
        if target == "external_id":
            return self.external_id
        if target == "tags":
            return self.tags
        if target == "churned_at":
            return self.churned_at
        if target.startswith("properties."):
            return self.properties.get(target.removeprefix("properties."))
        if target.startswith("roles."):
            role = self.properties.get(target.removeprefix("roles."))
            return role.get("email") if isinstance(role, dict) else None
        raise KeyError(target)

    def fingerprint(self) -> str:
        churned = [self.churned_at] if self.churned_at else []  # absent: the same fingerprint as before it existed
        return fingerprint_of([self.name, self.external_id, self.properties, sorted(self.tags), *churned])


@dataclass
class FieldChange:
    field: str
    before: Any
    after: Any
    source: str


@dataclass
class MergeResult:
    state: AccountState
    entry: AccountEntry
    changes: list[FieldChange] = field(default_factory=list)
    conflicts: list[FieldChange] = field(default_factory=list)
    errors: list[BadRecordError] = field(default_factory=list)
    superseded: list[AccountPatch] = field(default_factory=list)
    unlinked: list[AccountPatch] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def merge(
    current: AccountState,
    entry: AccountEntry,
    patches: Sequence[AccountPatch],
    config: MappingConfig,
    roles: Mapping[str, Role],
    link_ranks: Mapping[tuple[str, str], int] | None = None,
    now: float | None = None,
) -> MergeResult:
    """Apply ``patches`` (in order) onto ``current``; never touches a key or tag no patch's source owns.

    ``roles`` maps lower-cased emails to PostHog users; an email not in it is reported, never invented.
    ``link_ranks`` ranks records competing for one link property (higher takes the link; default 0, and on a
    tie the record already linked keeps it). The holder's rank is remembered in the provenance.

    For the status page the entry also records, in the same write, when each field last changed (``now``, epoch
    seconds) and each source's value wherever it differs from the account's (``AccountEntry.sent``).
    """
    state = copy.deepcopy(current)
    new_entry = copy.deepcopy(entry)
    result = MergeResult(state=state, entry=new_entry)
    stamp = int(time.time() if now is None else now)
    ranks = link_ranks or {}
    latest = {(p.source, p.record_id): p for p in patches}  # a record seen twice counts once, as last seen
    for patch in latest.values():
        if patch.deleted:
            _unlink(state, new_entry, patch, config, result)
            continue
        if not _link(state, new_entry, patch, ranks, result):
            continue
        for target, value in sorted(patch.values.items()):
            if target in IDENTITY_ONLY or target.startswith("custom."):
                continue  # custom values are written one by one after the account (sync/posthog/custom_properties.py)
            if target == "tags":
                _merge_tags(state, new_entry, patch, result)
                continue
            if target.startswith("roles."):
                role = roles.get(str(value))
                if role is None:
                    result.errors.append(
                        BadRecordError(patch.source, patch.record_id, target, f"no PostHog member with email {value}")
                    )
                    continue
                _set(state, new_entry, target, role.model_dump(), value, patch, config, result)
                continue
            _set(state, new_entry, target, value, value, patch, config, result)
    for change in result.changes:
        new_entry.changed[change.field] = stamp
    return result


def _set(
    state: AccountState,
    entry: AccountEntry,
    target: str,
    value: Any,
    compare: Any,
    patch: AccountPatch,
    config: MappingConfig,
    result: MergeResult,
) -> None:
    """Set one field if the source may; ``compare`` is the value as the mapping produced it (email for roles)."""
    before = state.get(target)
    prov_raw = entry.provenance.get(target)
    provenance = Provenance.load(prov_raw) if prov_raw else None
    permission = may_write(config.rule_for(target), patch.source, patch.version, before, provenance)
    if not permission.allowed:
        if before != compare:
            result.conflicts.append(FieldChange(target, before, compare, patch.source))
        _note_sent(entry, patch.source, target, compare, before)
        return
    entry.provenance[target] = Provenance(patch.source, patch.version, fingerprint_of(compare)).dump()
    if before == compare:
        _note_sent(entry, patch.source, target, compare, before)
        return
    if provenance and provenance.source != patch.source and provenance.value_fp == fingerprint_of(before):
        _note_sent(entry, provenance.source, target, before, compare)  # the value it sent is overwritten
    for source in [s for s, values in entry.sent.items() if target in values]:
        _note_sent(entry, source, target, entry.sent[source][target], compare)
    _note_sent(entry, patch.source, target, compare, compare)
    if target == "name":
        state.name = value
    elif target == "external_id":
        state.external_id = value
    elif target == "churned_at":
        state.churned_at = value
    else:
        state.properties[target.split(".", 1)[1]] = value
    result.changes.append(FieldChange(target, before, compare, patch.source))


def _note_sent(entry: AccountEntry, source: str, target: str, value: Any, account_value: Any) -> None:
    """Keep ``source``'s value of ``target`` in the entry while it differs from the account's, else drop it (an
    agreeing source costs no bytes)."""
    values = entry.sent.get(source, {})
    if value != account_value:
        entry.sent[source] = {**values, target: value}
    elif target in values:
        values = {k: v for k, v in values.items() if k != target}
        if values:
            entry.sent[source] = values
        else:
            del entry.sent[source]


def _link(
    state: AccountState,
    entry: AccountEntry,
    patch: AccountPatch,
    ranks: Mapping[tuple[str, str], int],
    result: MergeResult,
) -> bool:
    """Point the account's link property at this record, unless a higher-ranked record holds it."""
    key = patch.link_key
    holder = state.properties.get(key)
    mine = ranks.get((patch.source, patch.record_id), 0)
    stored = entry.provenance.get(f"properties.{key}")
    if holder == patch.record_id:
        if stored is None or stored.get("v") != mine:
            entry.provenance[f"properties.{key}"] = Provenance(patch.source, mine, patch.record_id).dump()
        return True
    if holder and str(holder) not in patch.merged_ids:  # a merge survivor always takes its merged record's link
        held_rank = stored.get("v") if stored and stored.get("f") == holder else None
        theirs = ranks.get((patch.source, str(holder)), held_rank or 0)
        if mine <= theirs:
            result.superseded.append(patch)
            return False
    state.properties[key] = patch.record_id
    entry.provenance[f"properties.{key}"] = Provenance(patch.source, mine, patch.record_id).dump()
    result.changes.append(FieldChange(f"properties.{key}", holder, patch.record_id, patch.source))
    return True


def _merge_tags(state: AccountState, entry: AccountEntry, patch: AccountPatch, result: MergeResult) -> None:
    """The source's tags replace the tags that same source added before; every other tag stays."""
    previous = set(entry.tags.get(patch.source, []))
    wanted = set(patch.tags)
    before = list(state.tags)
    merged = normalise_tags([t for t in state.tags if t not in previous - wanted] + sorted(wanted))
    entry.tags[patch.source] = sorted(wanted)
    if merged != before:
        state.tags = merged
        result.changes.append(FieldChange("tags", before, merged, patch.source))


def _unlink(
    state: AccountState, entry: AccountEntry, patch: AccountPatch, config: MappingConfig, result: MergeResult
) -> None:
    """A record deleted in its CRM: drop its link (if it is still the linked one) and the tags its source added."""
    key = patch.link_key
    if str(state.properties.get(key) or "") != patch.record_id:
        return
    before_props = state.properties.get(key)
    del state.properties[key]
    entry.provenance.pop(f"properties.{key}", None)
    result.changes.append(FieldChange(f"properties.{key}", before_props, None, patch.source))
    added = set(entry.tags.pop(patch.source, []))
    tag = config.object(patch.source, patch.object).unlink_tag
    tags_before = list(state.tags)
    tags = [t for t in state.tags if t not in added]
    if tag:
        tags.append(tag)
    tags = normalise_tags(tags)
    if tags != tags_before:
        state.tags = tags
        result.changes.append(FieldChange("tags", tags_before, tags, patch.source))
    result.unlinked.append(patch)
