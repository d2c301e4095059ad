"""Celery tasks: thin wrappers that call the engine with ids and small payloads, and retry what is retryable.

Every task is idempotent (the ledger absorbs repeats), which is what makes ``acks_late`` safe. Retryable errors
retry with exponential backoff and jitter, each countdown below the broker's visibility timeout; a PostHog throttle
(``sync.engine.THROTTLES``) re-queues the task without limit, after the ``Retry-After`` PostHog gave, to continue
from its cursor; fatal errors end the run as failed with the reason in its report (already stored by the engine).
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable
from typing import Any

import redis
import structlog
from celery import Task, group
from celery.exceptions import Ignore, Retry

from sync.budget import realtime_lane
from sync.engine import THROTTLES
from sync.errors import ConfigError, RetryableError
from sync.lease import Heartbeat
from sync.ledger import lock_owner
from sync.plan import PlanStore
from sync.report import RunReport
from workers import dry_runs
from workers.celery_app import MAX_COUNTDOWN_S, app
from workers.claims import RefreshClaims
from workers.leases import delivery_token
from workers.metrics import record_api_calls, record_run
from workers.replay import replay_due
from workers.runtime import Runtime, get_runtime

log = structlog.get_logger("crmsync.tasks")
MAX_RETRIES = 6
REDIS_TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Redis errors a task retries like a vendor's 5xx: the broker and ledger may be back in a moment."""
PENDING_BATCH = 500
PLAN_CHUNK_SIZE = 200  # accounts per crmsync.write_plan task
THROTTLE_RETRIES = 1_000_000  # in effect no limit (Celery's retry() reads None as "the task's default", 3)
THROTTLE_PAUSE_S = 60.0  # when a throttle names no Retry-After: PostHog's budget frees by the minute


def countdown(retries: int, retry_after: float | None) -> float:
    """Backoff with full jitter (30 s, 60 s, ... capped), or the vendor's hint; always below the visibility timeout."""
    if retry_after is not None:
        return float(min(MAX_COUNTDOWN_S, max(1.0, retry_after)))
    return float(min(MAX_COUNTDOWN_S, 30.0 * (2**retries) * random.uniform(0.5, 1.0)))


def pending_key(runtime: Runtime, source: str, obj: str) -> str:
    """Redis set of record ids waiting for a coalesced webhook refresh."""
    return runtime.ledger.keys.pending(source, obj)


def _finish(runtime: Runtime, reports: list[RunReport]) -> dict[str, Any]:
    calls = runtime.posthog.stats.take()  # requests and 429s since the last task
    for report in reports:
        record_run(runtime.redis, runtime.ledger.ns, report)
        log.info(
            "run finished",
            source=report.source,
            stream=report.stream,
            mode=report.mode,
            status=report.status,
            counts=report.counts,
            reason=report.reason,
        )
    record_api_calls(runtime.redis, runtime.ledger.ns, "posthog", *calls)
    dry_runs.remember(runtime.redis, runtime.ledger.ns, reports)  # a dry run's plan, for the status page
    for source, connector in runtime.built_connectors().items():
        record_api_calls(runtime.redis, runtime.ledger.ns, source, *connector.call_stats.take())
    return {"runs": [r.as_dict() for r in reports]}


def _guarded(task: Task, work: Callable[[Runtime], list[RunReport]], label: str) -> dict[str, Any]:
    """Run ``work`` under the task's lease (``workers/leases.py``), turning its errors into retries or reports."""
    runtime = get_runtime()
    task_id = task.request.id
    if not task_id:
        return _run(task, runtime, work, label, None)
    leases, token = runtime.task_leases, delivery_token()
    spec = {
        "task": task.name,
        "args": list(task.request.args or []),
        "kwargs": dict(task.request.kwargs or {}),
        "queue": (task.request.delivery_info or {}).get("routing_key") or "bulk",
    }
    try:
        state = leases.start(task_id, token, spec)
    except REDIS_TRANSIENT as exc:  # Redis unreachable before any work: retried like the work's own Redis errors
        if task.request.retries >= MAX_RETRIES:
            raise
        raise task.retry(exc=exc, countdown=countdown(task.request.retries, None), max_retries=MAX_RETRIES) from None
    if state == "done":  # a late redelivery of a task that ended (taken up by another worker meanwhile)
        log.info("already done, delivery ignored", task=label, task_id=task_id)
        raise Ignore()
    if state == "busy":  # another delivery holds it and renews its lease: look again once it could have lapsed
        raise task.retry(countdown=leases.ttl_ms / 1000, max_retries=THROTTLE_RETRIES) from None
    try:
        with Heartbeat(lambda: leases.renew(task_id, token), leases.ttl_ms, f"task {task_id}") as beat:

            def waiting(delay: float) -> None:
                beat.stop()  # the lease passes to the retry: no renewal after this
                leases.waiting(task_id, token, delay)

            result = _run(task, runtime, work, label, waiting)
    except Retry:
        raise
    except Exception:
        with contextlib.suppress(*REDIS_TRANSIENT):
            leases.done(task_id, token)  # it failed for good: no sweep sends it again
        raise
    with contextlib.suppress(*REDIS_TRANSIENT):  # unreachable: the lease lapses, a sweep sends it again (idempotent)
        leases.done(task_id, token)
    return result


def _run(
    task: Task,
    runtime: Runtime,
    work: Callable[[Runtime], list[RunReport]],
    label: str,
    waiting: Callable[[float], object] | None,
) -> dict[str, Any]:
    def retry(exc: BaseException, delay: float, max_retries: int) -> Retry:
        if waiting is not None:
            with contextlib.suppress(*REDIS_TRANSIENT):
                waiting(delay)  # the lease outlives the countdown: a worker that dies holding the retry is seen
        return task.retry(exc=exc, countdown=delay, max_retries=max_retries)

    owner = lock_owner.set(task.request.id)  # a redelivered task takes over the locks its killed run left
    try:
        reports = work(runtime)
    except THROTTLES as exc:
        # PostHog's budget is spent: not a failure. The run stopped at its cursor; continue it when budget frees,
        # however many times that takes (a first sync of 16,000 accounts spans hours at 4,800 requests an hour).
        delay = countdown(0, exc.retry_after or THROTTLE_PAUSE_S)
        log.info("budget spent, re-queued", task=label, countdown=round(delay, 1))
        raise retry(exc, delay, THROTTLE_RETRIES) from None
    except (RetryableError, *REDIS_TRANSIENT) as exc:
        if task.request.retries >= MAX_RETRIES:
            log.error("giving up after retries", task=label, reason=str(exc))
            raise
        delay = countdown(task.request.retries, exc.retry_after if isinstance(exc, RetryableError) else None)
        log.warning("retrying", task=label, reason=str(exc), countdown=round(delay, 1))
        raise retry(exc, delay, MAX_RETRIES) from None
    except ConfigError as exc:
        failed = RunReport(label, "-", "config").finish("failed", str(exc))
        runtime.ledger.append_run(failed.as_dict())
        return _finish(runtime, [failed])
    finally:
        lock_owner.reset(owner)
        if task.request.id:
            with contextlib.suppress(*REDIS_TRANSIENT):  # unreachable: the locks expire, the retry takes them over
                runtime.ledger.release_owned(task.request.id)
    return _finish(runtime, reports)


@app.task(name="crmsync.sync_source", bind=True)
def sync_source(self: Task, source: str, mode: str = "incremental", dry_run: bool = False) -> dict[str, Any]:
    """Pull ``source`` (every mapped stream) and apply it; ``mode`` is ``incremental`` or ``full``."""
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be incremental or full, not {mode!r}")

    def work(rt: Runtime) -> list[RunReport]:
        def progress(report: RunReport) -> None:
            self.update_state(state="PROGRESS", meta={"stream": report.stream, "counts": report.counts})

        connector = rt.connector(source)
        return [rt.engine.run(connector, stream, mode, dry_run, progress) for stream in rt.streams(source)]

    return _guarded(self, work, source)


@app.task(name="crmsync.sync_all", bind=True)
def sync_all(self: Task, mode: str = "incremental") -> dict[str, Any]:
    """Plan before write (``sync/plan.py``): read every enabled source and stage what changed, then fan the
    writes out as one ``crmsync.write_plan`` task per chunk, each account written once whatever the number of
    sources holding it. Returns the staging reports and ``chunks``: the write tasks' ids, to follow."""
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be incremental or full, not {mode!r}")
    chunk_ids: list[str] = []

    # The plan and its chunk tasks are named after this task: taken up again after its worker died, it finds the
    # plan it sealed (and sends the chunks not written, under the same ids) or stages again what it had begun.
    plan_id = self.request.id.replace("-", "")[:16] if self.request.id else None

    def work(rt: Runtime) -> list[RunReport]:
        connectors = {s: rt.connector(s) for s in rt.config.enabled_sources()}
        previous = PlanStore(rt.ledger, plan_id) if plan_id else None
        store: PlanStore | None
        reports: list[RunReport] = []
        if previous is not None and previous.exists() and previous.sealed:
            store, chunks = previous, previous.chunks_left()
        else:
            streams = {s: rt.streams(s) for s in connectors}
            store, reports = rt.engine.stage_plan(connectors, streams, mode, PLAN_CHUNK_SIZE, plan_id)
            chunks = list(range(store.chunks)) if store is not None else []
        if store is None:
            return reports
        if not chunks:
            finished = rt.engine.finish_plan(store, connectors)
            return reports + ([finished] if finished else [])
        writes = [write_plan.si(store.id, n).set(task_id=f"{store.id}-chunk-{n}") for n in chunks]
        chunk_ids.extend(r.id for r in group(writes).apply_async(queue="bulk").results)
        return reports

    result = _guarded(self, work, "all")
    return {**result, "chunks": chunk_ids}


@app.task(name="crmsync.write_plan", bind=True)
def write_plan(self: Task, plan_id: str, number: int) -> dict[str, Any]:
    """Write one chunk of a staged plan; the chunk that completes the plan commits its cursors and report."""

    def work(rt: Runtime) -> list[RunReport]:
        store = PlanStore(rt.ledger, plan_id)
        connectors = {s: rt.connector(s) for s in rt.config.enabled_sources()}
        if not rt.engine.write_plan_chunk(store, number, connectors):
            return []
        finished = rt.engine.finish_plan(store, connectors)
        return [finished] if finished else []

    return _guarded(self, work, "plan")


@app.task(name="crmsync.refresh", bind=True)
def refresh(self: Task, source: str, object: str, ids: list[str] | None = None) -> dict[str, Any]:
    """Fetch the current state of ``ids`` (or of every id waiting in the coalescing set) and apply it.

    Ids taken from the coalescing set stay claimed by this task until the engine has committed them
    (``workers.claims``): a retry or a redelivery of this task applies them, a task that gives up puts them back.
    Its PostHog requests are realtime (``sync.budget.realtime_lane``): first at the next free slot of the budget.
    """

    def work(rt: Runtime) -> list[RunReport]:
        connector = rt.connector(source)
        if ids is not None:
            return [rt.engine.refresh(connector, object, chunk) for chunk in _chunks(list(ids))]
        claims = RefreshClaims(
            rt.redis,
            pending_key(rt, source, object),
            rt.ledger.keys.claims(source, object),
            self.request.id or uuid.uuid4().hex,
        )
        claims.rescue_orphans()
        wanted = list(dict.fromkeys([*claims.held(), *claims.take_all(PENDING_BATCH)]))
        reports = []
        try:
            for chunk in _chunks(wanted):
                report = rt.engine.refresh(connector, object, chunk)
                reports.append(report)
                if report.status in ("succeeded", "partial"):  # partial: what failed is parked, not lost
                    claims.applied(chunk)
        except (RetryableError, *REDIS_TRANSIENT) as exc:
            if not isinstance(exc, THROTTLES) and self.request.retries >= MAX_RETRIES:
                claims.give_back()  # _guarded gives up: back to the pending set (a throttle re-queues forever)
            raise  # retried with the same task id: the claim is applied then
        except BaseException:
            claims.give_back()
            raise
        claims.give_back()  # ends the claim; ids a fatal error left unapplied wait for the next refresh
        return reports

    with realtime_lane():
        return _guarded(self, work, source)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start : start + PENDING_BATCH] for start in range(0, len(ids), PENDING_BATCH)]


@app.task(name="crmsync.sync_outbound", bind=True)
def sync_outbound(self: Task, source: str | None = None) -> dict[str, Any]:
    """Push PostHog-side changes to every enabled CRM (or one)."""

    def work(rt: Runtime) -> list[RunReport]:
        sources = [source] if source else rt.config.enabled_sources()
        with rt.engine.queries.sharing():  # the passes share their change-feed reads (sync/posthog/changes.py)
            return [rt.engine.push_back_pass(rt.connector(s), stream) for s in sources for stream in rt.streams(s)]

    return _guarded(self, work, source or "outbound")


@app.task(name="crmsync.reconcile_deletes", bind=True)
def reconcile_deletes(self: Task, source: str) -> dict[str, Any]:
    """Unlink accounts whose CRM record is gone without a delete event."""

    def work(rt: Runtime) -> list[RunReport]:
        return [rt.engine.reconcile_deletes(rt.connector(source), stream) for stream in rt.streams(source)]

    return _guarded(self, work, source)


@app.task(name="crmsync.reconcile_accounts", bind=True)
def reconcile_accounts(self: Task) -> dict[str, Any]:
    """Settle accounts people deleted in PostHog (re-create from, or unlink, their CRM records, per config)."""

    def work(rt: Runtime) -> list[RunReport]:
        connectors = {s: rt.connector(s) for s in rt.config.enabled_sources()}
        return [rt.engine.reconcile_accounts(connectors)]

    return _guarded(self, work, "posthog")


@app.task(name="crmsync.replay_dlq", bind=True)
def replay_dlq(self: Task, source: str | None = None, scheduled: bool = False) -> dict[str, Any]:
    """Retry the parked records of every enabled source (or one); ``scheduled`` (beat's tick) replays only the
    sources whose backoff is due (``workers/replay.py``)."""

    def work(rt: Runtime) -> list[RunReport]:
        sources = [source] if source else rt.config.enabled_sources()
        if scheduled:
            return replay_due(rt, sources)
        return [rt.engine.replay_dead_letters(rt.connector(s), stream) for s in sources for stream in rt.streams(s)]

    return _guarded(self, work, source or "dlq")
