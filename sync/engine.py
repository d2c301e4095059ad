"""The one path every CRM record takes: map → skip if unchanged → resolve → merge under a lock → write → push back
→ commit. Vendor-free: it talks to CRMs only through ``sync.connector.Connector``.

``SyncEngine`` is the facade the workers call; each job is a module of its own:

| module | job |
|---|---|
| ``sync/runs.py`` | the scope every run ends in (its report finished and recorded), cursors |
| ``sync/batch_items.py`` | a batch's records → items: mapped, the unchanged dropped, resolved to accounts |
| ``sync/batch.py`` | items → accounts: merged under locks, written, parked; the batch's one ledger commit |
| ``sync/pushback_writer.py`` | push-back: after a batch, and the push-back pass (PostHog → CRM) |
| ``sync/plan_phases.py`` | plan before write: stage, write chunks, finish; the plan's leases |

PostHog's request budget is the physical limit of every sync. A throttle (PostHog's 429 after the client's
retries, or the shared budget not freeing in time: ``THROTTLES``) is never a record's fault: the batch stops,
what it wrote is committed, nothing is parked, the cursor stays before the unapplied records, and the error
propagates so the task is re-queued to continue from its cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from sync import reconcile
from sync.batch import TAGS_DROPPED, BatchWriter
from sync.batch_items import AMBIGUOUS, Batch, changed, resolve
from sync.connector import Connector, CrmRecord, Cursor
from sync.identity import AccountIndex
from sync.lease import LEASE_MS, Heartbeat
from sync.ledger import Ledger, RecordEntry, RecordKey
from sync.mapping import MappingConfig
from sync.members import MemberDirectory
from sync.plan import PlanStore
from sync.plan_phases import PlanPhases
from sync.posthog.changes import SharedQueries
from sync.posthog.client import PostHogClient
from sync.posthog.custom_properties import CustomWriter
from sync.posthog.generation import Generations
from sync.posthog.relationships import RelationshipApi
from sync.pushback_writer import PushBackWriter
from sync.report import RunReport
from sync.roles import RoleWriter
from sync.runs import THROTTLES, advance_cursor, committed_cursor, record, reported
from sync.state import SystemBinding, posthog_system

__all__ = ["AMBIGUOUS", "TAGS_DROPPED", "THROTTLES", "SyncEngine"]

log = logging.getLogger(__name__)


class SyncEngine:
    """Applies CRM records to PostHog accounts and pushes back to the CRMs. One instance per PostHog project."""

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
        self.systems = SystemBinding(ledger, posthog_system(posthog.base_url, posthog.project_id))
        ledger.ready()  # at start-up, once per process: a ledger of an older layout is migrated here
        # Where roles live on this PostHog (properties, or relationships on current servers): sync/roles.py
        self.generations = Generations(posthog, ledger, self.systems.posthog_id)
        self.roles = RoleWriter(self.generations, RelationshipApi(posthog))
        self.custom = CustomWriter(posthog, mapping)  # custom.* values, written after their account
        self.queries = SharedQueries(posthog)  # change-feed reads, shared by the push-back passes of one run
        fp = self._mapping_fp
        parts = (self.members, self.index, self.generations, self.roles, self.custom)
        self.writer = BatchWriter(posthog, ledger, mapping, *parts, lock_ttl_ms, fp)
        self.pushes = PushBackWriter(posthog, ledger, mapping, self.generations, self.roles, self.queries, fp)
        self.plans = PlanPhases(ledger, mapping, self.systems, self.index, self.writer, self.pushes, lease_ms, fp)

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
            return record(self.ledger, report.finish("skipped", "run lock held by another worker"))
        renew = lambda: self.ledger.extend(lock_name, held[lock_name], self.lease_ms)  # noqa: E731
        try:
            with reported(self.ledger, report, retryable=True), Heartbeat(renew, self.lease_ms, lock_name):
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
        finally:
            self.ledger.release(held)
        return report

    def refresh(self, connector: Connector, stream: str, ids: Sequence[str], dry_run: bool = False) -> RunReport:
        """Fetch the current state of ``ids`` and apply it (webhooks: fetch current state, never a delta)."""
        report = RunReport(connector.source, stream, "refresh", dry_run=dry_run)
        with reported(self.ledger, report):
            self.systems.bind(connector, report)
            records = connector.fetch(stream, list(dict.fromkeys(ids)))
            self.apply_records(connector, stream, records, report, dry_run)
        return report

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
        with reported(self.ledger, report):
            if parked:
                records = connector.fetch(stream, list(dict.fromkeys(str(e["id"]) for _, e in parked)))
                self.apply_records(connector, stream, records, report)  # parks what still fails, anew
                self.ledger.drop_dead_letters([entry_id for entry_id, _ in parked])  # then drops the old entries
        return report

    def reconcile_deletes(self, connector: Connector, stream: str, batch_size: int = 100) -> RunReport:
        """Fetch every record the ledger links and unlink those the CRM no longer has (deleted, purged, merged
        away): the safety net for deletes no pull or webhook reported."""
        report = RunReport(connector.source, stream, "reconcile")
        self.systems.bind(connector, report)
        ids = self.ledger.record_ids(connector.source, stream)
        with reported(self.ledger, report):
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                records = list(connector.fetch(stream, chunk))
                found = {r.id for r in records}
                records += [
                    CrmRecord(connector.source, stream, rid, {}, deleted=True) for rid in chunk if rid not in found
                ]
                self.apply_records(connector, stream, records, report)
        return report

    def reconcile_accounts(self, connectors: Mapping[str, Connector]) -> RunReport:
        """Find accounts the ledger knows that PostHog no longer has (deleted by a person) and settle their linked
        records per ``identity.on_account_deleted``: fetch and re-create, or unlink. One listing of every account,
        a GET of each account not listed (``sync.reconcile``: a deletion during the walk skips a row), then one
        fetch per source for the records concerned."""
        report = RunReport("posthog", "accounts", "reconcile")
        self.systems.bind_all(connectors.values(), report)
        with reported(self.ledger, report):
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
        return report

    def push_back_pass(self, connector: Connector, stream: str, dry_run: bool = False) -> RunReport:
        """The push-back pass: push what changed in PostHog since the last pass to the linked records of
        ``connector``'s ``stream`` (``PushBackWriter.push_back_pass``). Its reports' mode is ``outbound``."""
        report = RunReport(connector.source, stream, "outbound", dry_run=dry_run)
        self.systems.bind(connector, report)
        with reported(self.ledger, report):
            self.pushes.push_back_pass(connector, stream, report, dry_run)
        return report

    def _cursor(self, connector: Connector, stream: str) -> Cursor | None:
        return committed_cursor(self.ledger, connector, stream)

    def _advance(self, connector: Connector, stream: str, cursor: Cursor) -> None:
        advance_cursor(self.ledger, connector, stream, cursor)

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
        items = changed(self.ledger, records, mapping, self._mapping_fp, report, repair)
        if not items:
            return
        items = resolve(self.ledger, self.mapping.identity, items, report)
        out = Batch(report, dry_run, repair)
        # Under the batch's locks, once written (also when a throttle stopped it), into the batch's one commit.
        self.writer.write(items, out, lambda b: self.pushes.after_batch(connector, stream, mapping, items, b))

    # -- plan before write (sync/plan.py, sync/plan_phases.py) ---------------------------------------------

    def run_planned(
        self,
        connectors: Mapping[str, Connector],
        streams: Mapping[str, Sequence[str]],
        mode: str = "full",
        chunk_size: int = 200,
    ) -> list[RunReport]:
        """All three phases in this process (``PlanPhases.run_planned``)."""
        return self.plans.run_planned(connectors, streams, mode, chunk_size)

    def stage_plan(
        self,
        connectors: Mapping[str, Connector],
        streams: Mapping[str, Sequence[str]],
        mode: str = "full",
        chunk_size: int = 200,
        plan_id: str | None = None,
    ) -> tuple[PlanStore | None, list[RunReport]]:
        """Phase 1: stage what changed and hold the streams' run locks (``PlanPhases.stage_plan``)."""
        return self.plans.stage_plan(connectors, streams, mode, chunk_size, plan_id)

    def write_plan_chunk(self, store: PlanStore, number: int, connectors: Mapping[str, Connector]) -> bool:
        """Phase 2, one chunk; True when it was the plan's last (``PlanPhases.write_plan_chunk``)."""
        return self.plans.write_plan_chunk(store, number, connectors)

    def finish_plan(self, store: PlanStore, connectors: Mapping[str, Connector]) -> RunReport | None:
        """Phase 3: commit the cursors, record the report, release the run locks (``PlanPhases.finish_plan``)."""
        return self.plans.finish_plan(store, connectors)
