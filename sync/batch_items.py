"""A batch's records on their way to accounts: mapped, the unchanged dropped, resolved to the account they update.

``changed`` maps every record and keeps those whose mapping changed since they were last applied; ``resolve``
finds each one's account (its ledger link, then the account index). Both cost one Redis round trip per batch.
``Item`` and ``Batch`` are what the batch writer (``sync/batch.py``) and the push-back (``sync/pushback_writer.py``)
pass along; ``Batch`` gathers everything for the batch's one ledger commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.apply import AccountState
from sync.connector import CrmRecord
from sync.errors import BadRecordError
from sync.ledger import AccountEntry, Ledger, RecordEntry, RecordKey
from sync.mapping import AccountPatch, IdentityConfig, ObjectMapping, map_record
from sync.posthog.models import Account, Role
from sync.report import RunReport

AMBIGUOUS = "*ambiguous*"
"""Account index value for a domain shared by several accounts: such a domain never links a record."""


@dataclass
class Item:
    """One changed record on its way through a batch."""

    record: CrmRecord
    patch: AccountPatch
    fp: str
    entry: RecordEntry | None
    account_id: str | None = None
    domain_owner: str | None = None
    repair: bool = False  # unchanged since last applied: kept only so a full run can repair drift


@dataclass
class Batch:
    """One batch in flight: its report, whether it is a dry run, the roles its emails resolved to, and what it
    wrote and pushed, gathered for the single ledger commit at its end."""

    report: RunReport
    dry_run: bool = False
    repair: bool = False  # a full run: put back what a person or another tool changed on either side
    roles: dict[str, Role] = field(default_factory=dict)
    records: dict[RecordKey, RecordEntry] = field(default_factory=dict)
    accounts: dict[str, AccountEntry] = field(default_factory=dict)
    index: dict[tuple[str, str], str] = field(default_factory=dict)
    unindex: list[tuple[str, str]] = field(default_factory=list)
    forget: list[RecordKey] = field(default_factory=list)
    states: dict[str, AccountState] = field(default_factory=dict)  # account id → state after the write
    seen: list[Account] = field(default_factory=list)  # accounts as our writes returned them
    parked: list[dict[str, Any]] = field(default_factory=list)
    echoes: dict[RecordKey, RecordEntry] = field(default_factory=dict)  # pushed records, with their echo's fp
    pushes: dict[RecordKey, str] = field(default_factory=dict)  # push fingerprints: what each record was sent
    index_fresh: bool = False  # a later slice of one plan chunk: the account index was refreshed for the chunk


def changed(
    ledger: Ledger,
    records: Sequence[CrmRecord],
    mapping: ObjectMapping,
    mapping_fp: str,
    report: RunReport,
    repair: bool = False,
) -> list[Item]:
    """Map every record and keep those whose mapping changed since it was last applied (one round trip); with
    ``repair``, also the unchanged ones linked to an account (flagged ``repair``)."""
    valid: list[tuple[CrmRecord, AccountPatch]] = []
    for record in records:
        if not record.id or not isinstance(record.id, str):
            report.error(BadRecordError(record.source, None, "id", "record has no id"))
            continue
        patch = map_record(record, mapping)
        for error in patch.errors:
            report.error(error, failed=False)
        valid.append((record, patch))
    entries = ledger.get_records([record_key(r) for r, _ in valid])
    items: list[Item] = []
    for (record, patch), entry in zip(valid, entries, strict=True):
        fp = patch.fingerprint(mapping_fp)
        if entry is not None and (entry.unlinked or fp in (entry.fp, entry.echo_fp)):
            if repair and unchanged_link(fp, entry):
                items.append(Item(record, patch, fp, entry, repair=True))
                continue
            report.add("unchanged")
            continue
        items.append(Item(record, patch, fp, entry))
    return items


def resolve(ledger: Ledger, identity: IdentityConfig, items: list[Item], report: RunReport) -> list[Item]:
    """Ledger link first, then the account index by CRM id, by external_id, and (when enabled) by exact
    domain, all in one round trip. Returns the items to apply; an ambiguous domain goes to review instead."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        ext = item.patch.values.get("external_id")
        domain = item.patch.values.get("domain") if identity.match_domain else None
        pairs.append((item.patch.link_key, item.record.id))
        pairs.append(("external_id", str(ext)) if ext else ("", ""))
        pairs.append(("domain", str(domain)) if domain else ("", ""))
    found = [hit if kind else None for (kind, _), hit in zip(pairs, ledger.lookup(pairs), strict=True)]
    kept: list[Item] = []
    for n, item in enumerate(items):
        by_link, by_external, domain_owner = found[3 * n : 3 * n + 3]
        item.domain_owner = domain_owner
        item.account_id = (item.entry.account_id if item.entry else None) or by_link or by_external
        if item.account_id is None and domain_owner == AMBIGUOUS:
            report.review.append(
                {
                    "source": item.record.source,
                    "id": item.record.id,
                    "domain": item.patch.values.get("domain"),
                    "reason": "several accounts share this domain; link it by external_id or by hand",
                }
            )
            continue
        item.account_id = item.account_id or domain_owner
        kept.append(item)
    return kept


def group_key(item: Item) -> str:
    """The account a batch or plan writes ``item`` to: its id, or the account to create for its external id (or,
    with none, for the record alone). Records of every source with one key are written together, once."""
    if item.account_id:
        return item.account_id
    ext = item.patch.values.get("external_id")
    return f"ext:{ext}" if ext else f"rec:{item.record.source}:{item.record.id}"


def applied(item: Item, entry: RecordEntry | None) -> bool:
    """Whether the ledger shows ``item`` (or a newer version of its record) as applied already."""
    if entry is None:
        return False
    if item.fp in (entry.fp, entry.echo_fp):
        return True
    return entry.version is not None and item.record.version is not None and entry.version > item.record.version


def unchanged_link(fp: str, entry: RecordEntry) -> bool:
    """Whether a record mapping to ``fp`` is exactly what was applied to its linked account (a candidate for drift
    repair only)."""
    return bool(entry.account_id) and not entry.unlinked and fp in (entry.fp, entry.echo_fp)


def record_key(record: CrmRecord) -> RecordKey:
    return RecordKey(record.source, record.object, record.id)
