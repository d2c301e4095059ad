"""Batch apply: resolved items → PostHog accounts, each account written once under its lock, one ledger commit.

A batch (one page from ``pull``, the records of a webhook refresh, or one slice of a plan chunk) costs a fixed
number of Redis round trips (take locks, read account entries, commit, release) and, per changed account, at most
one PATCH (or one POST for a new account). The PATCH starts from the account as PostHog last showed it
(``Ledger.get_seen``: our own last write's answer, or the last walk of accounts changed since the index
watermark, one list request per batch), so no GET precedes it; an account never seen costs one GET first.

What the batch wrote, what it pushed back to the CRM records (when the caller hands ``write`` a push-back) and what
it parked are committed to the ledger once, at its end, also when a throttle stops it half way (``THROTTLES``:
never a record's fault; the error then propagates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sync.apply import AccountState, MergeResult, merge
from sync.batch_items import AMBIGUOUS, Batch, Item, group_key, record_key
from sync.errors import BadRecordError, RetryableError
from sync.identity import AccountIndex, index_pairs
from sync.ledger import AccountEntry, Ledger, RecordEntry
from sync.mapping import MappingConfig
from sync.members import MemberDirectory
from sync.posthog.client import UNSET, PostHogClient
from sync.posthog.custom_properties import CustomWriter
from sync.posthog.errors import (
    PostHogConflict,
    PostHogError,
    PostHogNotFound,
    PostHogValidationError,
)
from sync.posthog.generation import Generation, Generations, refuses_role_keys
from sync.posthog.models import Account
from sync.report import PlannedChange, RunReport
from sync.roles import RoleWriter
from sync.runs import THROTTLES

TAGS_DROPPED = (
    "PostHog dropped the tags crmsync wrote (this organisation lacks PostHog's tagging feature): tags are no "
    "longer sent until the mapping changes"
)


class BatchWriter:
    """Writes a batch's items to their accounts: merged under the account's lock, PATCHed or POSTed, committed."""

    def __init__(
        self,
        posthog: PostHogClient,
        ledger: Ledger,
        mapping: MappingConfig,
        members: MemberDirectory,
        index: AccountIndex,
        generations: Generations,
        roles: RoleWriter,
        custom: CustomWriter,
        lock_ttl_ms: int,
        mapping_fp: str,
    ) -> None:
        self.posthog = posthog
        self.ledger = ledger
        self.mapping = mapping
        self.members = members
        self.index = index
        self.generations = generations
        self.roles = roles
        self.custom = custom
        self.lock_ttl_ms = lock_ttl_ms
        self._mapping_fp = mapping_fp  # mapping.fingerprint(), computed once by the engine
        self._no_tagging: bool | None = None  # PostHog drops our tags (read from the ledger once per process)

    def write(self, items: list[Item], out: Batch, push_back: Callable[[Batch], None] | None = None) -> None:
        """Write resolved items, each account once, under its lock; then, still under the locks, ``push_back`` what
        PostHog now holds to the records just applied, and commit what was written and pushed in one round trip,
        also when a throttle (or the push-back) stops the batch half way (the error then propagates)."""
        report, dry_run = out.report, out.dry_run
        by_account: dict[str, list[Item]] = {}
        new: dict[str, list[Item]] = {}
        for item in items:
            if item.account_id:
                by_account.setdefault(item.account_id, []).append(item)
            elif item.patch.deleted:
                out.forget.append(record_key(item.record))  # deleted before we ever linked it: nothing to unlink
                report.add("unchanged")
            else:
                new.setdefault(group_key(item), []).append(item)

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
                    self._push_back_and_commit(out, push_back)

    def _push_back_and_commit(self, out: Batch, push_back: Callable[[Batch], None] | None) -> None:
        """The batch's one ledger commit: its records (with the echo fingerprints of those pushed back), accounts,
        index changes and push fingerprints; then what it parked (a round trip only when it parked any)."""
        try:
            if push_back is not None:
                push_back(out)
        finally:
            records = {**out.records, **out.echoes}
            self.ledger.commit(records, out.accounts, out.index, out.unindex, out.forget, out.pushes, out.seen)
            self.ledger.park(out.parked)

    def _apply_existing(
        self, out: Batch, account_id: str, group: list[Item], entry: AccountEntry, seen: Account | None
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

    def _account_gone(self, out: Batch, account_id: str, group: list[Item]) -> None:
        """A person deleted the account in PostHog: per ``identity.on_account_deleted``, re-create it from these
        records, or unlink them for good. Either way it is settled once, never an error on every run."""
        self.ledger.forget_account(account_id, [])
        policy = self.mapping.identity.on_account_deleted
        out.report.notes.append(f"account {account_id} was deleted in PostHog: {policy}")
        alive = [i for i in group if not i.patch.deleted]
        for item in group:
            item.account_id = None
            if item.patch.deleted:
                out.forget.append(record_key(item.record))
        if policy == "unlink":
            for item in alive:
                out.records[record_key(item.record)] = RecordEntry(item.fp, None, item.record.version, unlinked=True)
            out.report.add("unlinked", len(alive))
        elif alive:
            self._apply_new(out, alive)

    def _write(
        self, out: Batch, account: Account, group: list[Item], entry: AccountEntry, retried: bool = False
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

    def _apply_new(self, out: Batch, group: list[Item], retried: bool = False) -> None:
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

    def _adopt(self, out: Batch, account_id: str, group: list[Item]) -> None:
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

    def _check_tags_kept(self, out: Batch, sent: AccountState, written: Account) -> None:
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
        self, out: Batch, account_id: str, before: AccountState, result: MergeResult, group: list[Item]
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
                out.forget.append(record_key(item.record))
            else:
                out.records[record_key(item.record)] = RecordEntry(item.fp, account_id, item.record.version)

    def _park(self, out: Batch, group: list[Item], attr: str | None, cause: str | Exception) -> None:
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


def _ranks(group: list[Item]) -> dict[tuple[str, str], int]:
    return {(i.record.source, i.record.id): i.patch.link_rank for i in group}
