"""The three phases of a plan (``sync/plan.py``): stage every stream, write each account once chunk by chunk,
finish by committing the cursors. The phases run in one process (``run_planned``) or as Celery tasks
(``crmsync.sync_all`` stages, ``crmsync.write_plan`` writes a chunk and the last one finishes).

The plan holds its streams' run locks as leases (token: the plan id), renewed by a heartbeat while it stages and
while each chunk is written, so a plan whose workers died frees its streams within a lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sync.batch import BatchWriter
from sync.batch_items import Batch, Item, applied, changed, group_key, record_key, resolve, unchanged_link
from sync.connector import Connector
from sync.identity import AccountIndex
from sync.lease import Heartbeat
from sync.ledger import Ledger, lock_owner
from sync.mapping import MappingConfig, map_record
from sync.plan import PlanStore, StagedItem
from sync.pushback_writer import PushBackWriter
from sync.report import RunReport
from sync.runs import THROTTLES, advance_cursor, committed_cursor, record, reported
from sync.slices import account_slices
from sync.state import SystemBinding


class PlanPhases:
    """Stages, writes and finishes plans for one PostHog project (``SyncEngine`` hands its parts in)."""

    def __init__(
        self,
        ledger: Ledger,
        mapping: MappingConfig,
        systems: SystemBinding,
        index: AccountIndex,
        writer: BatchWriter,
        pushes: PushBackWriter,
        lease_ms: int,
        mapping_fp: str,
    ) -> None:
        self.ledger = ledger
        self.mapping = mapping
        self.systems = systems
        self.index = index
        self.writer = writer
        self.pushes = pushes
        self.lease_ms = lease_ms
        self._mapping_fp = mapping_fp

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

    # -- phase 1: stage ------------------------------------------------------------------------------------

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
        held = self._leases(store, names)
        if len(held) < len(names):
            self.ledger.release(held)
            store.drop()
            busy = [
                RunReport(s, st, mode).finish("skipped", "run lock held by another worker")
                for s in streams
                for st in streams[s]
            ]
            return None, [record(self.ledger, r) for r in busy]
        store.remember_locks(names)
        reports: list[RunReport] = []
        dropped: list[str] = []

        def drop() -> None:  # staging failed: free the streams, forget what was staged
            self.ledger.release(held)
            store.drop()
            dropped.append(store.id)

        with reported(self.ledger, reports, retryable=True, on_error=drop):
            with self._heartbeat(store, names):
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
            store.seal()
        return (None if dropped else store), reports

    def _stage_stream(self, store: PlanStore, connector: Connector, stream: str, report: RunReport) -> None:
        mapping = self.mapping.object(connector.source, stream)
        cursor = None if store.mode == "full" else committed_cursor(self.ledger, connector, stream)
        for page in connector.pull(stream, cursor):
            report.notes.extend(n for n in page.notes if n not in report.notes)
            report.add("seen", len(page.records))
            groups: dict[str, list[StagedItem]] = {}
            items = changed(self.ledger, page.records, mapping, self._mapping_fp, report, store.mode == "full")
            for item in resolve(self.ledger, self.mapping.identity, items, report):
                staged = StagedItem(item.record, item.account_id, item.domain_owner)
                groups.setdefault(group_key(item), []).append(staged)
                report.add("staged")
            store.stage(groups, (connector.source, stream, page.cursor.dump()) if page.cursor else None)

    # -- phase 2: write, a chunk at a time -----------------------------------------------------------------

    def write_plan_chunk(self, store: PlanStore, number: int, connectors: Mapping[str, Connector]) -> bool:
        """Phase 2, one chunk: write its accounts once each and push back; True when it was the plan's last.

        Safe to repeat: items the ledger shows applied (by an earlier run of this chunk, or a webhook refresh
        with a newer version of the record) are skipped. A throttle stops the chunk and propagates, its partial
        counts added to the plan's report."""
        if not store.exists():
            return False  # finished (a redelivered chunk) or expired
        names = store.locks()
        self._leases(store, names)  # lapsed while the chunk waited in the queue: taken back if still free
        with self._heartbeat(store, names):
            return self._write_chunk(store, number, connectors)

    def _write_chunk(self, store: PlanStore, number: int, connectors: Mapping[str, Connector]) -> bool:
        items: list[Item] = []
        for staged in store.chunk(number):
            patch = map_record(staged.record, self.mapping.object(staged.record.source, staged.record.object))
            fp = patch.fingerprint(self._mapping_fp)
            items.append(Item(staged.record, patch, fp, None, staged.account_id, staged.domain_owner))
        entries = self.ledger.get_records([record_key(i.record) for i in items])
        repair = store.mode == "full"
        kept: list[Item] = []
        for item, entry in zip(items, entries, strict=True):
            if not applied(item, entry):
                kept.append(item)
            elif repair and entry is not None and unchanged_link(item.fp, entry):
                item.repair = True  # a full plan merges it again: drift on either side is put back
                kept.append(item)
        items = kept
        report = RunReport("all", "plan", store.mode)
        out = Batch(report, repair=repair)
        try:
            for n, part in enumerate(account_slices(items, group_key)):  # locks held per slice (sync/slices.py)
                sliced = Batch(report, repair=repair, index_fresh=n > 0)
                try:
                    self.writer.write(part, sliced)  # each slice commits on its own, under its locks
                finally:
                    out.states.update(sliced.states)
                    out.records.update(sliced.records)
        except THROTTLES:
            self.pushes.after_chunk(connectors, items, out)
            report.add("throttled")  # this attempt stopped on PostHog's budget; the chunk continues when re-queued
            store.chunk_done(-1, report.counts, report.errors, report.review)
            raise
        self.pushes.after_chunk(connectors, items, out)  # one push per stream for the chunk, one commit
        return store.chunk_done(number, report.counts, report.errors, report.review) >= store.chunks

    # -- phase 3: finish -----------------------------------------------------------------------------------

    def finish_plan(self, store: PlanStore, connectors: Mapping[str, Connector]) -> RunReport | None:
        """Phase 3: commit every stream's cursor, store the write phase's report, release the run locks. Once:
        a second caller (a redelivered last chunk) gets None."""
        if not store.exists() or not store.claim_finish():
            return None
        for (source, stream), raw in store.cursors().items():
            if (connector := connectors.get(source)) is not None:
                advance_cursor(self.ledger, connector, stream, connector.cursor_type.load(raw))
        counts, errors, review = store.report_parts()
        report = RunReport("all", "plan", store.mode)
        report.counts.update(counts)
        report.errors.extend(errors)
        report.review.extend(review)
        report.notes.append(f"plan {store.id}: {store.chunks} chunks, each account written once")
        self.ledger.release(dict.fromkeys(store.locks(), store.id))
        store.drop()
        return record(self.ledger, report.finish("succeeded"))

    # -- the plan's leases ---------------------------------------------------------------------------------

    def _leases(self, store: PlanStore, names: Sequence[str]) -> dict[str, str]:
        """Take (or take back) the plan's run locks, token the plan id: free ones, and ones it still holds."""
        owner = lock_owner.set(store.id)  # the plan, not the task, holds the run locks until its finish
        try:
            return self.ledger.try_lock(names, self.lease_ms)
        finally:
            lock_owner.reset(owner)

    def _heartbeat(self, store: PlanStore, names: Sequence[str]) -> Heartbeat:
        renew = lambda: self.ledger.extend_many(names, store.id, self.lease_ms)  # noqa: E731
        return Heartbeat(renew, self.lease_ms, f"plan {store.id}")
