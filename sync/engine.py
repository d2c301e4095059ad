"""The one path every CRM record takes: map → skip if unchanged → resolve → merge under a lock → write → commit
→ push back. Vendor-free: it talks to CRMs only through ``sync.connector.Connector``.

A batch (one page from ``pull``, or the records of a webhook refresh) costs a fixed number of Redis round trips
(read record entries, look up the index, take locks, read account entries, commit, release) and, per changed
account, at most one PATCH (or one POST for a new account). The PATCH starts from the account as PostHog last
showed it (``Ledger.get_seen``: our own last write's answer, or the last walk of accounts changed since the index
watermark, one list request per batch), so no GET precedes it; an account never seen costs one GET first.
Unchanged records cost nothing.

PostHog's request budget is the physical limit of every sync. A throttle (PostHog's 429 after the client's
retries, or the shared budget not freeing in time: ``THROTTLES``) is never a record's fault: the batch stops,
what it wrote is committed, nothing is parked, the cursor stays before the unapplied records, and the error
propagates so the task is re-queued to continue from its cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync import reconcile
from sync.apply import AccountState, MergeResult, merge
from sync.connector import Connector, CrmRecord, Cursor, PushUpdate
from sync.custom_pushback import push_custom_values
from sync.errors import BadRecordError, FatalError, RetryableError
from sync.identity import AccountIndex, ChangedAccounts, index_pairs
from sync.lease import LEASE_MS, Heartbeat
from sync.ledger import AccountEntry, Ledger, RecordEntry, RecordKey, lock_owner
from sync.mapping import AccountPatch, MappingConfig, ObjectMapping, map_record
from sync.members import MemberDirectory
from sync.plan import PlanStore, StagedItem
from sync.posthog.changes import SharedQueries
from sync.posthog.client import UNSET, PostHogClient
from sync.posthog.custom_properties import CustomWriter
from sync.posthog.errors import (
    PostHogConflict,
    PostHogError,
    PostHogNotFound,
    PostHogRateLimited,
    PostHogValidationError,
)
from sync.posthog.generation import Generation, Generations, refuses_role_keys
from sync.posthog.models import Account, Role
from sync.posthog.relationships import RelationshipApi
from sync.pushback import desired_fields, echo_fingerprint, plan_push
from sync.ratelimit import BudgetExhausted
from sync.report import PlannedChange, RunReport
from sync.role_pushback import read_relationship_changes
from sync.roles import RoleWriter
from sync.slices import account_slices
from sync.state import SystemBinding, posthog_system

log = logging.getLogger(__name__)

THROTTLES = (PostHogRateLimited, BudgetExhausted)
"""Errors that mean "PostHog's budget is spent for now": they stop a run (re-queued later), never park a record."""

TAGS_DROPPED = (
    "PostHog dropped the tags crmsync wrote (this organisation lacks PostHog's tagging feature): tags are no "
    "longer sent until the mapping changes"
)

AMBIGUOUS = "*ambiguous*"
"""Account index value for a domain shared by several accounts: such a domain never links a record."""


@dataclass
class _Item:
    """One changed record on its way through a batch."""

    record: CrmRecord
    patch: AccountPatch
    fp: str
    entry: RecordEntry | None
    account_id: str | None = None
    domain_owner: str | None = None
    repair: bool = False  # unchanged since last applied: kept only so a full run can repair drift


@dataclass
class _Batch:
    """One batch in flight: its report, whether it is a dry run, the roles its emails resolved to, and what it
    wrote, gathered for the single ledger commit at its end."""

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
    index_fresh: bool = False  # a later slice of one plan chunk: the account index was refreshed for the chunk


class SyncEngine:
    """Applies CRM records to PostHog accounts and plans what to push back. One instance per PostHog project."""

    def __init__(
        self,
        posthog: PostHogClient,
        ledger: Ledger,
        mapping: MappingConfig,
        members: MemberDirectory | None = None,
        lock_ttl_ms: int = 120_000,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.posthog = posthog
        self.ledger = ledger
        self.mapping = mapping
        self.members = members or MemberDirectory(posthog)
        self.index = AccountIndex(posthog, ledger)
        self.lock_ttl_ms = lock_ttl_ms
        self.lease_ms = lease_ms  # run and plan locks: leases renewed by a heartbeat (sync/lease.py)
        self._mapping_fp = mapping.fingerprint()
        self._no_tagging: bool | None = None  # PostHog drops our tags (read from the ledger once per process)
        self.systems = SystemBinding(ledger, posthog_system(posthog.base_url, posthog.project_id))
        ledger.ready()  # at start-up, once per process: a ledger of an older layout is migrated here
        # Where roles live on this PostHog (properties, or relationships on current servers): sync/roles.py
        self.generations = Generations(posthog, ledger, self.systems.posthog_id)
        self.roles = RoleWriter(self.generations, RelationshipApi(posthog))
        self.custom = CustomWriter(posthog, mapping)  # custom.* values, written after their account
        self.queries = SharedQueries(posthog)  # change-feed reads, shared by the outbound passes of one run

    # -- runs ----------------------------------------------------------------------------------------------

    def run(
        self,
        connector: Connector,
        stream: str,
        mode: str = "incremental",
        dry_run: bool = False,
        progress: Callable[[RunReport], None] | None = None,
    ) -> RunReport:
        """Pull ``stream`` (everything when ``mode == "full"``, else since the committed cursor) and apply it.

        The cursor advances after each committed page, never past uncommitted work; a dry run writes nothing.
        Overlapping runs of one (source, stream) do not happen: the second one ends as ``skipped``.
        """
        report = RunReport(connector.source, stream, mode, dry_run=dry_run)
        lock_name = f"run:{connector.source}:{stream}"
        held = self.ledger.try_lock([lock_name], self.lease_ms)
        if not held:
            report.notes.append("another run of this source and stream is in progress")
            return self._store(report.finish("skipped", "run lock held by another worker"), dry_run)
        token = held[lock_name]
        try:
            with Heartbeat(lambda: self.ledger.extend(lock_name, token, self.lease_ms), self.lease_ms, lock_name):
                self.systems.bind(connector, report)  # state recorded for another system is dropped first
                repair = mode == "full"
                cursor = None if repair else self._cursor(connector, stream)
                self.index.refresh(full=repair)  # a full run reads every account once: drift in PostHog shows
                for page in connector.pull(stream, cursor):
                    report.notes.extend(n for n in page.notes if n not in report.notes)
                    self.apply_records(connector, stream, page.records, report, dry_run, repair=repair)
                    if page.cursor is not None and not dry_run:
                        self._advance(connector, stream, page.cursor)
                    if progress is not None:
                        progress(report)
                report.finish("succeeded")
        except FatalError as exc:
            report.finish("failed", str(exc))
        except THROTTLES as exc:
            report.finish("throttled", f"PostHog budget spent ({exc}); continues from its cursor when re-queued")
            self._store(report, dry_run)
            raise
        except RetryableError as exc:
            report.finish("failed", f"retryable: {exc}")
            self._store(report, dry_run)
            raise
        finally:
            self.ledger.release(held)
        return self._store(report, dry_run)

    def refresh(self, connector: Connector, stream: str, ids: Sequence[str], dry_run: bool = False) -> RunReport:
        """Fetch the current state of ``ids`` and apply it (webhooks: fetch current state, never a delta)."""
        report = RunReport(connector.source, stream, "refresh", dry_run=dry_run)
        try:
            self.systems.bind(connector, report)
            records = connector.fetch(stream, list(dict.fromkeys(ids)))
            self.apply_records(connector, stream, records, report, dry_run)
            report.finish("succeeded")
        except FatalError as exc:
            report.finish("failed", str(exc))
        return self._store(report, dry_run)

    def replay_dead_letters(self, connector: Connector, stream: str, limit: int = 1000) -> RunReport:
        """Re-fetch parked records of this source and stream and apply them. The parked entries are dropped;
        records that still fail are parked again, with their newest reason."""
        report = RunReport(connector.source, stream, "replay")
        self.systems.bind(connector, report)
        parked = [
            (entry_id, entry)
            for entry_id, entry in self.ledger.dead_letters(limit)
            if entry.get("source") == connector.source and entry.get("object") == stream and entry.get("id")
        ]
        if parked:
            ids = list(dict.fromkeys(str(e["id"]) for _, e in parked))
            try:
                records = connector.fetch(stream, ids)
            except FatalError as exc:
                return self._store(report.finish("failed", str(exc)), False)
            self.apply_records(connector, stream, records, report)  # parks what still fails, anew
            self.ledger.drop_dead_letters([entry_id for entry_id, _ in parked])  # then drops the old entries
        return self._store(report.finish("succeeded"), False)

    def reconcile_deletes(self, connector: Connector, stream: str, batch_size: int = 100) -> RunReport:
        """Fetch every record the ledger links and unlink those the CRM no longer has (deleted, purged, merged
        away): the safety net for deletes no pull or webhook reported."""
        report = RunReport(connector.source, stream, "reconcile")
        self.systems.bind(connector, report)
        ids = self.ledger.record_ids(connector.source, stream)
        try:
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                records = list(connector.fetch(stream, chunk))
                found = {r.id for r in records}
                records += [
                    CrmRecord(connector.source, stream, rid, {}, deleted=True) for rid in chunk if rid not in found
                ]
                self.apply_records(connector, stream, records, report)
            report.finish("succeeded")
        except FatalError as exc:
            report.finish("failed", str(exc))
        return self._store(report, False)

    def _store(self, report: RunReport, dry_run: bool) -> RunReport:
        if not dry_run:
            self.ledger.append_run(report.as_dict())
        return report

    def _cursor(self, connector: Connector, stream: str) -> Cursor | None:
        raw = self.ledger.get_cursor(connector.source, stream)
        return connector.cursor_type.load(raw) if raw else None

    def _advance(self, connector: Connector, stream: str, cursor: Cursor) -> None:
        """Store ``cursor`` unless it would move the committed one backwards."""
        current = self._cursor(connector, stream)
        if current is None or cursor.sort_key() >= current.sort_key():
            self.ledger.set_cursor(connector.source, stream, cursor.dump())

    # -- one batch -------------------------------------------------------------------------------------------

    def apply_records(
        self,
        connector: Connector,
        stream: str,
        records: Sequence[CrmRecord],
        report: RunReport,
        dry_run: bool = False,
        repair: bool = False,
    ) -> None:
        """Apply one batch of records: the heart of the engine. With ``repair`` (full runs), records unchanged
        since they were applied are merged again against PostHog's current account and their pushed fields
        compared with what the CRM holds now, so what a person cleared or changed on either side is written again
        (see ``docs/engine.md``, "Drift repair")."""
        mapping = self.mapping.object(connector.source, stream)
        report.add("seen", len(records))
        items = self._changed(records, mapping, report, repair)
        if not items:
            return
        items = self._resolve(items, report)
        out = _Batch(report, dry_run, repair)
        try:
            self._apply_items(items, out)
        finally:  # also when a throttle stopped the batch: what was written learns its account id now
            if not dry_run:
                self._push_back(connector, stream, mapping, items, out)

    def _apply_items(self, items: list[_Item], out: _Batch) -> None:
        """Write resolved items, each account once, under its lock; commit what was written in one round trip,
        also when a throttle stops the batch half way (the error then propagates: see ``THROTTLES``)."""
        report, dry_run = out.report, out.dry_run
        by_account: dict[str, list[_Item]] = {}
        new: dict[str, list[_Item]] = {}
        for item in items:
            if item.account_id:
                by_account.setdefault(item.account_id, []).append(item)
            elif item.patch.deleted:
                out.forget.append(_key(item.record))  # deleted before we ever linked it: nothing to unlink
                report.add("unchanged")
            else:
                new.setdefault(_group_key(item), []).append(item)

        lock_names = [f"acct:{a}" for a in by_account] + [f"new:{k}" for k in new]
        with self.ledger.locks(lock_names, ttl_ms=self.lock_ttl_ms):
            try:
                if by_account and not out.index_fresh:
                    self.index.refresh()  # people's edits since the last batch: one list request, no GET each
                entries = dict(zip(by_account, self.ledger.get_accounts(list(by_account)), strict=True))
                seen = dict(zip(by_account, self.ledger.get_seen(list(by_account)), strict=True))
                emails = {str(v) for i in items for t, v in i.patch.values.items() if t.startswith("roles.")}
                out.roles = self.members.roles_for(emails) if emails else {}
                for account_id, group in by_account.items():
                    self._apply_existing(out, account_id, group, entries[account_id], seen[account_id])
                # Another worker may have created one of our "new" accounts since we resolved: look again, now that
                # we hold the new:<external id> locks (one round trip), and merge into it instead of creating.
                keys = [k for k in new if k.startswith("ext:")]
                found = dict(zip(keys, self.ledger.lookup([("external_id", k[4:]) for k in keys]), strict=True))
                for key, group in new.items():
                    if existing := found.get(key):
                        self._adopt(out, existing, group)
                    else:
                        self._apply_new(out, group)
            finally:
                if not dry_run:
                    self.ledger.commit(out.records, out.accounts, out.index, out.unindex, out.forget, seen=out.seen)
                    self.ledger.park(out.parked)

    def _changed(
        self, records: Sequence[CrmRecord], mapping: ObjectMapping, report: RunReport, repair: bool = False
    ) -> list[_Item]:
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
        entries = self.ledger.get_records([_key(r) for r, _ in valid])
        items: list[_Item] = []
        for (record, patch), entry in zip(valid, entries, strict=True):
            fp = patch.fingerprint(self._mapping_fp)
            if entry is not None and (entry.unlinked or fp in (entry.fp, entry.echo_fp)):
                if repair and _unchanged_link(fp, entry):
                    items.append(_Item(record, patch, fp, entry, repair=True))
                    continue
                report.add("unchanged")
                continue
            items.append(_Item(record, patch, fp, entry))
        return items

    def _resolve(self, items: list[_Item], report: RunReport) -> list[_Item]:
        """Ledger link first, then the account index by CRM id, by external_id, and (when enabled) by exact
        domain, all in one round trip. Returns the items to apply; an ambiguous domain goes to review instead."""
        by_domain = self.mapping.identity.match_domain
        pairs: list[tuple[str, str]] = []
        for item in items:
            ext = item.patch.values.get("external_id")
            domain = item.patch.values.get("domain") if by_domain else None
            pairs.append((item.patch.link_key, item.record.id))
            pairs.append(("external_id", str(ext)) if ext else ("", ""))
            pairs.append(("domain", str(domain)) if domain else ("", ""))
        found = [hit if kind else None for (kind, _), hit in zip(pairs, self.ledger.lookup(pairs), strict=True)]
        kept: list[_Item] = []
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

    def _apply_existing(
        self, out: _Batch, account_id: str, group: list[_Item], entry: AccountEntry, seen: Account | None
    ) -> None:
        if seen is None:  # never seen (an account made by a person, linked for the first time): read it once
            try:
                seen = self.posthog.get_account(account_id)
            except PostHogNotFound:
                self._account_gone(out, account_id, group)
                return
            except (PostHogError, RetryableError) as exc:
                self._park(out, group, None, exc)
                return
        self._write(out, seen, group, entry)

    def _account_gone(self, out: _Batch, account_id: str, group: list[_Item]) -> None:
        """A person deleted the account in PostHog: per ``identity.on_account_deleted``, re-create it from these
        records, or unlink them for good. Either way it is settled once, never an error on every run."""
        self.ledger.forget_account(account_id, [])
        policy = self.mapping.identity.on_account_deleted
        out.report.notes.append(f"account {account_id} was deleted in PostHog: {policy}")
        alive = [i for i in group if not i.patch.deleted]
        for item in group:
            item.account_id = None
            if item.patch.deleted:
                out.forget.append(_key(item.record))
        if policy == "unlink":
            for item in alive:
                out.records[_key(item.record)] = RecordEntry(item.fp, None, item.record.version, unlinked=True)
            out.report.add("unlinked", len(alive))
        elif alive:
            self._apply_new(out, alive)

    def reconcile_accounts(self, connectors: Mapping[str, Connector]) -> RunReport:
        """Find accounts the ledger knows that PostHog no longer has (deleted by a person) and settle their linked
        records per ``identity.on_account_deleted``: fetch and re-create, or unlink. One listing of every account,
        a GET of each account not listed (``sync.reconcile``: a deletion during the walk skips a row), then one
        fetch per source for the records concerned."""
        report = RunReport("posthog", "accounts", "reconcile")
        self.systems.bind_all(connectors.values(), report)
        try:
            listed = reconcile.listed_account_ids(self.posthog)  # not listed: a candidate, confirmed by a GET
            gone = reconcile.confirmed_deleted(self.posthog, [a for a in self.ledger.account_ids() if a not in listed])
            entries = self.ledger.get_accounts(gone)
            wanted: dict[tuple[str, str], list[str]] = {}
            for account_id, entry in zip(gone, entries, strict=True):
                links: list[tuple[str, str]] = []
                for target, prov in entry.provenance.items():
                    key = target.removeprefix("properties.")
                    for stream, om in self.mapping.mappings.get(str(prov.get("s")), {}).items():
                        if om.link == key and prov.get("f"):
                            wanted.setdefault((str(prov["s"]), stream), []).append(str(prov["f"]))
                            links.append((key, str(prov["f"])))
                self.ledger.forget_account(account_id, links)
            if gone:
                report.notes.append(f"{len(gone)} accounts were deleted in PostHog")
            for (source, stream), ids in wanted.items():
                connector = connectors.get(source)
                if connector is None:
                    continue
                records = list(connector.fetch(stream, ids))
                if self.mapping.identity.on_account_deleted == "unlink":
                    keys = [RecordKey(source, stream, r.id) for r in records]
                    old = self.ledger.get_records(keys)
                    tombstones = {
                        k: RecordEntry(e.fp if e else "", None, e.version if e else None, unlinked=True)
                        for k, e in zip(keys, old, strict=True)
                    }
                    self.ledger.commit(records=tombstones)
                    report.add("unlinked", len(tombstones))
                else:
                    self.ledger.commit(forget=[RecordKey(source, stream, i) for i in ids])
                    self.apply_records(connector, stream, records, report)
            report.finish("succeeded")
        except FatalError as exc:
            report.finish("failed", str(exc))
        return self._store(report, False)

    def _write(
        self, out: _Batch, account: Account, group: list[_Item], entry: AccountEntry, retried: bool = False
    ) -> None:
        before = AccountState.of(account)
        self.roles.overlay(before.properties, entry)  # holders the server keeps on relationships
        result = merge(before, entry, [i.patch for i in group], self.mapping, out.roles, _ranks(group))
        self._without_tags_if_dropped(before, result)
        report = out.report
        result.errors = self.roles.triage(result.errors, report, account.id)
        self._tally(report, result)
        if out.dry_run:
            report.plan.extend(PlannedChange(account.id, c.field, c.before, c.after, c.source) for c in result.changes)
            report.plan.extend(self.custom.planned(report, account.id, [i.patch for i in group], result.entry))
            report.add("updated" if result.changed else "unchanged", len(group))  # counts say what would change
            return
        if result.changed:
            try:
                written = self._patch(account, before, result.state)
                if written is not account:
                    out.seen.append(written)
                    self._check_tags_kept(out, result.state, written)
                self.roles.write(account.id, before.properties, result.state.properties, result.entry, report)
            except PostHogNotFound:  # deleted by a person since we last saw it
                self._account_gone(out, account.id, group)
                return
            except PostHogValidationError as exc:
                if not retried and refuses_role_keys(exc) and self.generations.refused_roles():
                    report.notes.extend(n for n in self.generations.notes if n not in report.notes)
                    self._write(out, account, group, entry, retried=True)  # once, with roles on relationships
                    return
                self._park(out, group, exc.attr, exc)
                return
            except (PostHogError, RetryableError) as exc:
                self._park(out, group, None, exc)
                return
            if all(i.repair for i in group):
                report.add("repaired_posthog")  # nothing changed in the CRM: a person or tool changed PostHog
                report.add("unchanged", len(group))
            else:
                report.add("updated", len([i for i in group if not i.patch.deleted]) - len(result.superseded))
        else:
            report.add("unchanged", len(group))
        report.add("unlinked", len(result.unlinked))
        self._remember(out, account.id, before, result, group)

    def _apply_new(self, out: _Batch, group: list[_Item], retried: bool = False) -> None:
        empty = AccountState.empty()
        result = merge(empty, AccountEntry(), [i.patch for i in group], self.mapping, out.roles, _ranks(group))
        self._without_tags_if_dropped(empty, result)
        report = out.report
        result.errors = self.roles.triage(result.errors, report, None)
        self._tally(report, result)
        state = result.state
        if not state.name:
            self._park(out, group, "name", "required to create an account")
            return
        if out.dry_run:
            label = f"new:{state.name}"
            report.plan.extend(PlannedChange(label, c.field, c.before, c.after, c.source) for c in result.changes)
            report.plan.extend(self.custom.planned(report, label, [i.patch for i in group], result.entry))
            report.add("created")
            return
        try:
            properties = self.roles.outgoing(state.properties)
            churned = state.churned_at if state.churned_at and self.generations.relationships else None
            account = self.posthog.create_account(
                state.name, state.external_id, properties, state.tags or None, churned_at=churned
            )
        except PostHogConflict:
            # Someone created it first (a person, or a worker the index has not seen): find it and merge into it.
            existing = self.index.find_by_external_id(state.external_id or "")
            if existing is None:
                self._park(out, group, "external_id", "conflict on create, and no account found")
                return
            report.add("conflicts")
            self._adopt(out, existing.id, group)
            return
        except PostHogValidationError as exc:
            if not retried and refuses_role_keys(exc) and self.generations.refused_roles():
                report.notes.extend(n for n in self.generations.notes if n not in report.notes)
                self._apply_new(out, group, retried=True)  # once, with roles on relationships
                return
            self._park(out, group, exc.attr, exc)
            return
        except (PostHogError, RetryableError) as exc:
            self._park(out, group, None, exc)
            return
        out.seen.append(account)
        self._check_tags_kept(out, state, account)
        try:
            self.roles.write(account.id, empty.properties, state.properties, result.entry, report)
        except (PostHogError, RetryableError) as exc:  # the account exists: remember it, the roles follow next time
            if isinstance(exc, THROTTLES):
                self._remember(out, account.id, empty, result, group)
                raise
            report.error(BadRecordError("posthog", account.id, "roles", str(exc)), failed=False)
        report.add("created")
        report.add("updated", max(0, len(group) - 1 - len(result.superseded)))
        self._remember(out, account.id, empty, result, group)

    def _adopt(self, out: _Batch, account_id: str, group: list[_Item]) -> None:
        """Apply records that were headed for a new account to an account that exists after all, under its lock."""
        with self.ledger.locks([f"acct:{account_id}"], ttl_ms=self.lock_ttl_ms):
            (entry,) = self.ledger.get_accounts([account_id])
            (seen,) = self.ledger.get_seen([account_id])
            self._apply_existing(out, account_id, group, entry, seen)

    def _patch(self, account: Account, before: AccountState, after: AccountState) -> Account:
        """PATCH only what differs; ``properties`` and ``tags`` go whole (PostHog replaces them). Where roles live
        on relationships they are not sent, and a change of roles alone sends no PATCH (``account`` is returned)."""
        props_before, props_after = self.roles.outgoing(before.properties), self.roles.outgoing(after.properties)
        fields: dict[str, Any] = {
            "name": after.name if after.name and after.name != before.name else UNSET,
            "external_id": after.external_id if after.external_id != before.external_id else UNSET,
            "properties": props_after if props_after != props_before else UNSET,
            "tags": after.tags if sorted(after.tags) != sorted(before.tags) else UNSET,
        }
        if after.churned_at != before.churned_at and self.generations.get() is Generation.CURRENT:
            fields["churned_at"] = after.churned_at  # an account field of current servers only
        if all(value is UNSET for value in fields.values()):
            return account
        return self.posthog.update_account(account.id, **fields)

    # -- PostHog organisations without the tagging feature ------------------------------------------------

    def _tags_dropped(self) -> bool:
        """Whether PostHog was seen dropping our tags under this mapping (so none are sent until it changes)."""
        if self._no_tagging is None:
            seen = self.ledger.tagging_unsupported()
            self._no_tagging = seen is not None and seen.get("mapping") == self._mapping_fp
        return self._no_tagging

    def _without_tags_if_dropped(self, before: AccountState, result: MergeResult) -> None:
        """Where PostHog drops tags, a tag change is no change: it would be PATCHed, dropped, and PATCHed again."""
        if self._tags_dropped():
            result.state.tags = list(before.tags)
            result.changes = [c for c in result.changes if c.field != "tags"]

    def _check_tags_kept(self, out: _Batch, sent: AccountState, written: Account) -> None:
        """PostHog silently drops tags for organisations without its tagging feature and answers ``[]``: seen
        once, remembered in the ledger for this mapping, reported once, and tags are no longer sent."""
        if sent.tags and not written.tags and not self._tags_dropped():
            self._no_tagging = True
            self.ledger.mark_tagging_unsupported(self._mapping_fp)
            out.report.notes.append(TAGS_DROPPED)

    def _tally(self, report: RunReport, result: MergeResult) -> None:
        for error in result.errors:
            report.error(error, failed=False)
        report.add("conflicts", len(result.conflicts))
        report.add("superseded", len(result.superseded))

    def _remember(
        self, out: _Batch, account_id: str, before: AccountState, result: MergeResult, group: list[_Item]
    ) -> None:
        result.entry.written_fp = result.state.fingerprint()
        self.custom.apply(out.report, account_id, [i.patch for i in group], result.entry)
        out.accounts[account_id] = result.entry
        out.states[account_id] = result.state
        old = set(index_pairs(before.external_id, before.properties))
        now = set(index_pairs(result.state.external_id, result.state.properties))
        for pair in now:
            out.index[pair] = account_id
        out.unindex.extend(old - now)
        for item in group:
            item.account_id = account_id
            domain = item.patch.values.get("domain")
            if self.mapping.identity.match_domain and domain and not item.patch.deleted:
                owner = out.index.get(("domain", str(domain)), item.domain_owner)
                out.index[("domain", str(domain))] = account_id if owner in (None, account_id) else AMBIGUOUS
            if item.patch.deleted:
                out.forget.append(_key(item.record))
            else:
                out.records[_key(item.record)] = RecordEntry(item.fp, account_id, item.record.version)

    def _park(self, out: _Batch, group: list[_Item], attr: str | None, cause: str | Exception) -> None:
        """Records that could not be applied: reported, and parked in the dead-letter stream for replay. A throttle
        is not the records' fault: it is raised instead, to stop the batch (see ``THROTTLES``)."""
        if isinstance(cause, THROTTLES):
            raise cause
        reason = (cause.detail or str(cause)) if isinstance(cause, PostHogValidationError) else str(cause)
        for item in group:
            error = BadRecordError(item.record.source, item.record.id, attr, reason)
            out.report.error(error)
            item.account_id = None
            out.parked.append({**error.as_report(), "object": item.record.object})

    # -- plan before write (sync/plan.py) --------------------------------------------------------------------

    def run_planned(
        self,
        connectors: Mapping[str, Connector],
        streams: Mapping[str, Sequence[str]],
        mode: str = "full",
        chunk_size: int = 200,
    ) -> list[RunReport]:
        """Stage every stream of every connector, write each account once, then commit the cursors: the three
        phases of ``sync/plan.py`` in this process. A throttle propagates with the plan staged; the workers'
        ``crmsync.write_plan`` tasks (or another call of ``write_plan_chunk``) continue it."""
        store, reports = self.stage_plan(connectors, streams, mode, chunk_size)
        if store is None:
            return reports
        for number in range(store.chunks):
            self.write_plan_chunk(store, number, connectors)
        finished = self.finish_plan(store, connectors)
        return reports + ([finished] if finished else [])

    def stage_plan(
        self,
        connectors: Mapping[str, Connector],
        streams: Mapping[str, Sequence[str]],
        mode: str = "full",
        chunk_size: int = 200,
        plan_id: str | None = None,
    ) -> tuple[PlanStore | None, list[RunReport]]:
        """Phase 1: read every stream (everything when ``mode == "full"``, else since its cursor), stage what
        changed, and hold the streams' run locks (leases of the plan, renewed while it stages and while each
        chunk is written). Returns the sealed plan (None when the run locks are held elsewhere or reading failed)
        and one report per stream. ``plan_id`` (a task's): staging it again drops what an earlier attempt left."""
        store = PlanStore.create(self.ledger, mode, chunk_size, plan_id)
        names = [f"run:{source}:{stream}" for source in connectors for stream in streams[source]]
        held = self._plan_leases(store, names)
        if len(held) < len(names):
            self.ledger.release(held)
            store.drop()
            busy = [
                RunReport(s, st, mode).finish("skipped", "run lock held by another worker")
                for s in streams
                for st in streams[s]
            ]
            return None, [self._store(r, False) for r in busy]
        store.remember_locks(names)
        reports: list[RunReport] = []
        try:
            with self._plan_heartbeat(store, names):
                bound = RunReport("all", "state", f"{mode}-plan")  # before the index: dropped state is never read
                if self.systems.bind_all(connectors.values(), bound):
                    reports.append(bound.finish("succeeded"))
                self.index.refresh(full=mode == "full")  # a full plan reads every account once: drift shows
                for source, connector in connectors.items():
                    for stream in streams[source]:
                        reports.append(report := RunReport(source, stream, f"{mode}-plan"))
                        self._stage_stream(store, connector, stream, report)
                        report.notes.append(f"staged in plan {store.id}; written once per account by its chunks")
                        report.finish("succeeded")
        except (FatalError, RetryableError) as exc:
            self.ledger.release(held)
            store.drop()
            for report in reports:
                if report.status == "running":
                    report.finish("failed", str(exc))
            for report in reports:
                self._store(report, False)
            if isinstance(exc, RetryableError):
                raise
            return None, reports
        store.seal()
        return store, [self._store(r, False) for r in reports]

    def _plan_leases(self, store: PlanStore, names: Sequence[str]) -> dict[str, str]:
        """Take (or take back) the plan's run locks, token the plan id: free ones, and ones it still holds."""
        owner = lock_owner.set(store.id)  # the plan, not the task, holds the run locks until its finish
        try:
            return self.ledger.try_lock(names, self.lease_ms)
        finally:
            lock_owner.reset(owner)

    def _plan_heartbeat(self, store: PlanStore, names: Sequence[str]) -> Heartbeat:
        renew = lambda: self.ledger.extend_many(names, store.id, self.lease_ms)  # noqa: E731
        return Heartbeat(renew, self.lease_ms, f"plan {store.id}")

    def _stage_stream(self, store: PlanStore, connector: Connector, stream: str, report: RunReport) -> None:
        mapping = self.mapping.object(connector.source, stream)
        cursor = None if store.mode == "full" else self._cursor(connector, stream)
        for page in connector.pull(stream, cursor):
            report.notes.extend(n for n in page.notes if n not in report.notes)
            report.add("seen", len(page.records))
            groups: dict[str, list[StagedItem]] = {}
            changed = self._changed(page.records, mapping, report, repair=store.mode == "full")
            for item in self._resolve(changed, report):
                staged = StagedItem(item.record, item.account_id, item.domain_owner)
                groups.setdefault(_group_key(item), []).append(staged)
                report.add("staged")
            store.stage(groups, (connector.source, stream, page.cursor.dump()) if page.cursor else None)

    def write_plan_chunk(self, store: PlanStore, number: int, connectors: Mapping[str, Connector]) -> bool:
        """Phase 2, one chunk: write its accounts once each and push back; True when it was the plan's last.

        Safe to repeat: items the ledger shows applied (by an earlier run of this chunk, or a webhook refresh
        with a newer version of the record) are skipped. A throttle stops the chunk and propagates, its partial
        counts added to the plan's report."""
        if not store.exists():
            return False  # finished (a redelivered chunk) or expired
        names = store.locks()
        self._plan_leases(store, names)  # lapsed while the chunk waited in the queue: taken back if still free
        with self._plan_heartbeat(store, names):
            return self._write_chunk(store, number, connectors)

    def _write_chunk(self, store: PlanStore, number: int, connectors: Mapping[str, Connector]) -> bool:
        items: list[_Item] = []
        for staged in store.chunk(number):
            patch = map_record(staged.record, self.mapping.object(staged.record.source, staged.record.object))
            fp = patch.fingerprint(self._mapping_fp)
            items.append(_Item(staged.record, patch, fp, None, staged.account_id, staged.domain_owner))
        entries = self.ledger.get_records([_key(i.record) for i in items])
        repair = store.mode == "full"
        kept: list[_Item] = []
        for item, entry in zip(items, entries, strict=True):
            if not _applied(item, entry):
                kept.append(item)
            elif repair and entry is not None and _unchanged_link(item.fp, entry):
                item.repair = True  # a full plan merges it again: drift on either side is put back
                kept.append(item)
        items = kept
        report = RunReport("all", "plan", store.mode)
        out = _Batch(report, repair=repair)
        try:
            for n, part in enumerate(account_slices(items, _group_key)):  # locks held per slice (sync/slices.py)
                sliced = _Batch(report, repair=repair, index_fresh=n > 0)
                try:
                    self._apply_items(part, sliced)
                finally:
                    out.states.update(sliced.states)
                    out.records.update(sliced.records)
        except THROTTLES:
            self._push_back_all(connectors, items, out)
            report.add("throttled")  # this attempt stopped on PostHog's budget; the chunk continues when re-queued
            store.chunk_done(-1, report.counts, report.errors, report.review)
            raise
        self._push_back_all(connectors, items, out)
        return store.chunk_done(number, report.counts, report.errors, report.review) >= store.chunks

    def finish_plan(self, store: PlanStore, connectors: Mapping[str, Connector]) -> RunReport | None:
        """Phase 3: commit every stream's cursor, store the write phase's report, release the run locks. Once:
        a second caller (a redelivered last chunk) gets None."""
        if not store.exists() or not store.claim_finish():
            return None
        for (source, stream), raw in store.cursors().items():
            if (connector := connectors.get(source)) is not None:
                self._advance(connector, stream, connector.cursor_type.load(raw))
        counts, errors, review = store.report_parts()
        report = RunReport("all", "plan", store.mode)
        report.counts.update(counts)
        report.errors.extend(errors)
        report.review.extend(review)
        report.notes.append(f"plan {store.id}: {store.chunks} chunks, each account written once")
        self.ledger.release(dict.fromkeys(store.locks(), store.id))
        store.drop()
        return self._store(report.finish("succeeded"), False)

    def _push_back_all(self, connectors: Mapping[str, Connector], items: list[_Item], out: _Batch) -> None:
        by_stream: dict[tuple[str, str], list[_Item]] = {}
        for item in items:
            by_stream.setdefault((item.record.source, item.record.object), []).append(item)
        for (source, stream), group in by_stream.items():
            if (connector := connectors.get(source)) is not None:
                self._push_back(connector, stream, self.mapping.object(source, stream), group, out)

    # -- push-back -------------------------------------------------------------------------------------------

    def _push_back(
        self,
        connector: Connector,
        stream: str,
        mapping: ObjectMapping,
        items: list[_Item],
        out: _Batch,
    ) -> None:
        """Tell each record just applied what PostHog now holds (account id, other links, outbound fields)."""
        report = out.report
        linked = [i for i in items if i.account_id and i.account_id in out.states and not i.patch.deleted]
        if not linked:
            return
        last = self.ledger.get_outbound([_key(i.record) for i in linked])
        updates: list[PushUpdate] = []
        by_id: dict[str, _Item] = {}
        fps: dict[RecordKey, str] = {}
        for item, last_fp in zip(linked, last, strict=True):
            assert item.account_id is not None
            desired = desired_fields(mapping, item.account_id, out.states[item.account_id])
            # Repairing, what the CRM holds now decides, not what was last pushed: a person may have cleared it.
            update, fp = plan_push(item.record.id, desired, None if out.repair else last_fp, item.record.fields)
            if update is None:
                if fp != last_fp:
                    fps[_key(item.record)] = fp
                continue
            if fp == last_fp:
                report.add(f"repaired_{connector.source}")  # pushed before; the CRM no longer holds it
            updates.append(update)
            by_id[item.record.id] = item
        echoes: dict[RecordKey, RecordEntry] = {}
        if updates:
            for result in connector.push(stream, updates):
                item = by_id[result.record_id]
                update = next(u for u in updates if u.record_id == result.record_id)
                if not result.ok:
                    report.error(BadRecordError(item.record.source, item.record.id, None, f"push: {result.error}"))
                    continue
                report.add("pushed")
                key = _key(item.record)
                fps[key] = update.fingerprint
                entry = out.records.get(key) or RecordEntry(item.fp, item.account_id, item.record.version)
                entry.echo_fp = echo_fingerprint(item.record, update, mapping, self._mapping_fp)
                echoes[key] = entry
        self.ledger.commit(records=echoes, outbound=fps)

    # -- PostHog → CRM ------------------------------------------------------------------------------------

    def sync_outbound(self, connector: Connector, stream: str, dry_run: bool = False) -> RunReport:
        """Push what changed in PostHog since the last pass to the linked records of ``connector``'s ``stream``."""
        mapping = self.mapping.object(connector.source, stream)
        report = RunReport(connector.source, stream, "outbound", dry_run=dry_run)
        wm_key = f"outwm:{connector.source}:{stream}"
        self.systems.bind(connector, report)
        walk = ChangedAccounts(self.posthog, self.ledger.get_cursor("posthog", wm_key))
        try:
            for fresh in walk:
                self.ledger.remember_seen(fresh)  # free news for the next PATCH of these accounts
                self._push_accounts(connector, stream, mapping, fresh, report, dry_run)
            push_custom_values(self.queries, self.ledger, connector, stream, mapping, report, dry_run)
            self._push_role_changes(connector, stream, mapping, report, dry_run)
            if walk.newest is not None and not dry_run:
                self.ledger.set_cursor("posthog", wm_key, walk.newest)
            report.finish("succeeded")
        except FatalError as exc:
            report.finish("failed", str(exc))
        return self._store(report, dry_run)

    def _push_role_changes(
        self, connector: Connector, stream: str, mapping: ObjectMapping, report: RunReport, dry_run: bool
    ) -> None:
        """On current servers, push the accounts whose role holders changed in PostHog since the last pass: one
        change-feed query (sync/role_pushback.py), then the ledger's copies of those accounts, no read per account."""
        if not _pushes_roles(mapping) or not self.generations.relationships:
            return
        wm_key = f"outwm:{connector.source}:{stream}:roles"
        changed, watermark, requests = read_relationship_changes(self.queries, self.ledger, wm_key, dry_run)
        report.add("change_feed_pages", requests)
        accounts = [a for a in self.ledger.get_seen(changed) if a is not None]
        if accounts:
            self._push_accounts(connector, stream, mapping, accounts, report, dry_run)
        if watermark and not dry_run:
            self.ledger.set_cursor("posthog", wm_key, watermark)

    def _push_accounts(
        self,
        connector: Connector,
        stream: str,
        mapping: ObjectMapping,
        accounts: list[Account],
        report: RunReport,
        dry_run: bool,
    ) -> None:
        linked = [(a, str(link)) for a in accounts if (link := a.properties.payload().get(mapping.link))]
        report.add("seen", len(linked))
        keys = [RecordKey(connector.source, stream, rid) for _, rid in linked]
        last = self.ledger.get_outbound(keys)
        states = {a.id: AccountState.of(a) for a, _ in linked}
        if linked and _pushes_roles(mapping) and self.generations.relationships:  # holders are not in the bodies
            for (account, _), entry in zip(linked, self.ledger.get_accounts([a.id for a, _ in linked]), strict=True):
                self.roles.overlay(states[account.id].properties, entry)
        updates: list[PushUpdate] = []
        for (account, rid), last_fp in zip(linked, last, strict=True):
            update, _ = plan_push(rid, desired_fields(mapping, account.id, states[account.id]), last_fp)
            if update is None:
                report.add("unchanged")
            else:
                updates.append(update)
        if dry_run or not updates:
            if dry_run:
                report.plan.extend(
                    PlannedChange(u.record_id, k, None, v, "posthog") for u in updates for k, v in u.fields.items()
                )
            return
        fps: dict[RecordKey, str] = {}
        fp_by_id = {u.record_id: u.fingerprint for u in updates}
        for result in connector.push(stream, updates):
            if result.ok:
                report.add("pushed")
                fps[RecordKey(connector.source, stream, result.record_id)] = fp_by_id[result.record_id]
            else:
                report.error(BadRecordError(connector.source, result.record_id, None, f"push: {result.error}"))
        self.ledger.commit(outbound=fps)


def _pushes_roles(mapping: ObjectMapping) -> bool:
    return any(fm.target.startswith("roles.") for fm in mapping.outbound)


def _group_key(item: _Item) -> str:
    """The account a batch or plan writes ``item`` to: its id, or the account to create for its external id (or,
    with none, for the record alone). Records of every source with one key are written together, once."""
    if item.account_id:
        return item.account_id
    ext = item.patch.values.get("external_id")
    return f"ext:{ext}" if ext else f"rec:{item.record.source}:{item.record.id}"


def _applied(item: _Item, entry: RecordEntry | None) -> bool:
    """Whether the ledger shows ``item`` (or a newer version of its record) as applied already."""
    if entry is None:
        return False
    if item.fp in (entry.fp, entry.echo_fp):
        return True
    return entry.version is not None and item.record.version is not None and entry.version > item.record.version


def _unchanged_link(fp: str, entry: RecordEntry) -> bool:
    """Whether a record mapping to ``fp`` is exactly what was applied to its linked account (a candidate for drift
    repair only)."""
    return bool(entry.account_id) and not entry.unlinked and fp in (entry.fp, entry.echo_fp)


def _key(record: CrmRecord) -> RecordKey:
    return RecordKey(record.source, record.object, record.id)


def _ranks(group: list[_Item]) -> dict[tuple[str, str], int]:
    return {(i.record.source, i.record.id): i.patch.link_rank for i in group}
