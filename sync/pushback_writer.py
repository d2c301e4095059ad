"""Push-back: writing to CRM records what PostHog holds for their account (the I/O; ``sync/pushback.py`` plans it).

Two occasions, one word:

- after a batch (``after_batch``): the records just applied learn their account id, the other systems' ids and
  the outbound fields. It runs under the batch's account locks, and what it pushed (each record's push fingerprint,
  and the fingerprint of its echo: what the record maps to once our push lands) goes into the batch's one ledger
  commit. A plan chunk pushes back once after all its slices (``after_chunk``), one ``push`` per stream.
- the push-back pass (``push_back_pass``, the ``crmsync.sync_outbound`` task): accounts changed in PostHog since
  the pass's watermark (``ChangedAccounts``), custom values changed (``sync/custom_pushback.py``) and, on current
  servers, role holders changed (``sync/role_pushback.py``) are pushed to their linked records.

A push is sent only when what the record should hold differs from its last push fingerprint (and, after a batch,
from what the record holds), so an unchanged account costs no CRM request.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.apply import AccountState
from sync.batch_items import Batch, Item, record_key
from sync.connector import Connector, PushUpdate
from sync.custom_pushback import push_custom_values
from sync.errors import BadRecordError
from sync.identity import ChangedAccounts
from sync.keys import watermark_stream
from sync.ledger import Ledger, RecordEntry, RecordKey
from sync.mapping import MappingConfig, ObjectMapping
from sync.posthog.changes import SharedQueries
from sync.posthog.client import PostHogClient
from sync.posthog.generation import Generations
from sync.posthog.models import Account
from sync.pushback import desired_fields, echo_fingerprint, plan_push
from sync.report import PlannedChange, RunReport
from sync.role_pushback import read_relationship_changes
from sync.roles import RoleWriter


class PushBackWriter:
    """Sends pushes to a connector and records their fingerprints."""

    def __init__(
        self,
        posthog: PostHogClient,
        ledger: Ledger,
        mapping: MappingConfig,
        generations: Generations,
        roles: RoleWriter,
        queries: SharedQueries,
        mapping_fp: str,
    ) -> None:
        self.posthog = posthog
        self.ledger = ledger
        self.mapping = mapping
        self.generations = generations
        self.roles = roles
        self.queries = queries
        self._mapping_fp = mapping_fp

    # -- after a batch ---------------------------------------------------------------------------------------

    def after_chunk(self, connectors: Mapping[str, Connector], items: list[Item], out: Batch) -> None:
        """Push back the items a plan chunk applied, per stream, and commit what was pushed in one round trip."""
        by_stream: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            by_stream.setdefault((item.record.source, item.record.object), []).append(item)
        try:
            for (source, stream), group in by_stream.items():
                if (connector := connectors.get(source)) is not None:
                    self.after_batch(connector, stream, self.mapping.object(source, stream), group, out)
        finally:
            self.ledger.commit(records=out.echoes, outbound=out.pushes)

    def after_batch(
        self, connector: Connector, stream: str, mapping: ObjectMapping, items: list[Item], out: Batch
    ) -> None:
        """Tell each record just applied what PostHog now holds (account id, other links, outbound fields); what
        was pushed goes into ``out.echoes`` and ``out.pushes``, for the batch's commit."""
        report = out.report
        linked = [i for i in items if i.account_id and i.account_id in out.states and not i.patch.deleted]
        if not linked:
            return
        last = self.ledger.get_outbound([record_key(i.record) for i in linked])
        updates: list[PushUpdate] = []
        by_id: dict[str, Item] = {}
        for item, last_fp in zip(linked, last, strict=True):
            assert item.account_id is not None
            desired = desired_fields(mapping, item.account_id, out.states[item.account_id])
            # Repairing, what the CRM holds now decides, not what was last pushed: a person may have cleared it.
            update, fp = plan_push(item.record.id, desired, None if out.repair else last_fp, item.record.fields)
            if update is None:
                if fp != last_fp:
                    out.pushes[record_key(item.record)] = fp
                continue
            if fp == last_fp:
                report.add(f"repaired_{connector.source}")  # pushed before; the CRM no longer holds it
            updates.append(update)
            by_id[item.record.id] = item
        if not updates:
            return
        sent: dict[str, PushUpdate] = {}
        for update in updates:
            sent.setdefault(update.record_id, update)
        for result in connector.push(stream, updates):
            item = by_id[result.record_id]
            if not result.ok:
                report.error(BadRecordError(item.record.source, item.record.id, None, f"push: {result.error}"))
                continue
            report.add("pushed")
            key, update = record_key(item.record), sent[result.record_id]
            out.pushes[key] = update.fingerprint
            entry = out.records.get(key) or RecordEntry(item.fp, item.account_id, item.record.version)
            entry.echo_fp = echo_fingerprint(item.record, item.patch, update, mapping, self._mapping_fp)
            out.echoes[key] = entry

    # -- the push-back pass: PostHog → CRM ----------------------------------------------------------------------

    def push_back_pass(self, connector: Connector, stream: str, report: RunReport, dry_run: bool) -> None:
        """Push what changed in PostHog since the last pass to the linked records of ``connector``'s ``stream``."""
        mapping = self.mapping.object(connector.source, stream)
        wm_key = watermark_stream(connector.source, stream)
        walk = ChangedAccounts(self.posthog, self.ledger.get_cursor("posthog", wm_key))
        for fresh in walk:
            self.ledger.remember_seen(fresh)  # free news for the next PATCH of these accounts
            self._push_accounts(connector, stream, mapping, fresh, report, dry_run)
        push_custom_values(self.queries, self.ledger, connector, stream, mapping, report, dry_run)
        self._push_role_changes(connector, stream, mapping, report, dry_run)
        if walk.newest is not None and not dry_run:
            self.ledger.set_cursor("posthog", wm_key, walk.newest)

    def _push_role_changes(
        self, connector: Connector, stream: str, mapping: ObjectMapping, report: RunReport, dry_run: bool
    ) -> None:
        """On current servers, push the accounts whose role holders changed in PostHog since the last pass: one
        change-feed query (sync/role_pushback.py), then the ledger's copies of those accounts, no read per account."""
        if not _pushes_roles(mapping) or not self.generations.relationships:
            return
        wm_key = watermark_stream(connector.source, stream, "roles")
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
        pushes: dict[RecordKey, str] = {}
        fp_by_id = {u.record_id: u.fingerprint for u in updates}
        for result in connector.push(stream, updates):
            if result.ok:
                report.add("pushed")
                pushes[RecordKey(connector.source, stream, result.record_id)] = fp_by_id[result.record_id]
            else:
                report.error(BadRecordError(connector.source, result.record_id, None, f"push: {result.error}"))
        self.ledger.commit(outbound=pushes)


def _pushes_roles(mapping: ObjectMapping) -> bool:
    return any(fm.target.startswith("roles.") for fm in mapping.outbound)
