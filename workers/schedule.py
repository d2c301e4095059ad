"""The beat schedule, built from ``crmsync.yaml`` (interval or cron per source, outbound, reconciliation, and the
replay of parked records, which backs off per source: ``workers/replay.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from workers.config import AppConfig, Schedule


def _when(schedule: Schedule) -> Any:
    if schedule.every_s is not None:
        return timedelta(seconds=schedule.every_s)
    assert schedule.cron is not None
    minute, hour, day_of_month, month_of_year, day_of_week = schedule.cron.split()
    return crontab(minute, hour, day_of_week, day_of_month, month_of_year)


def beat_schedule(config: AppConfig) -> dict[str, dict[str, Any]]:
    """Celery ``beat_schedule`` entries; every entry goes to the ``bulk`` queue and expires if not started in time."""
    entries: dict[str, dict[str, Any]] = {}

    def add(
        name: str, task: str, schedule: Schedule, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> None:
        expires = schedule.every_s if schedule.every_s is not None else 3600
        entries[name] = {
            "task": task,
            "schedule": _when(schedule),
            "args": args,
            "kwargs": kwargs or {},
            "options": {"queue": "bulk", "expires": expires},
        }

    for source in config.enabled_sources():
        block = config.sources[source]
        add(f"sync:{source}", "crmsync.sync_source", block.schedule, (source,), {"mode": "incremental"})
        if block.full_schedule is not None:
            add(f"full:{source}", "crmsync.sync_source", block.full_schedule, (source,), {"mode": "full"})
        if config.reconcile.enabled:
            add(f"reconcile:{source}", "crmsync.reconcile_deletes", config.reconcile.schedule, (source,))
    if config.outbound.enabled and config.enabled_sources():
        add("outbound", "crmsync.sync_outbound", config.outbound.schedule)
    if config.reconcile.enabled and config.enabled_sources():
        add("reconcile:accounts", "crmsync.reconcile_accounts", config.reconcile.schedule)
    if config.dlq_replay.enabled and config.enabled_sources():
        # every tick; each source is replayed only when its backoff (workers/replay.py) says it is due
        add("replay:dlq", "crmsync.replay_dlq", config.dlq_replay.schedule, (), {"scheduled": True})
    return entries


def next_run_in(config: AppConfig, entry: str, since_last_s: float | None) -> float | None:
    """Seconds until ``entry`` is due again (interval schedules), or None when unknown (cron)."""
    spec = beat_schedule(config).get(entry)
    if spec is None or not isinstance(spec["schedule"], timedelta):
        return None
    period = spec["schedule"].total_seconds()
    return max(0.0, period - since_last_s) if since_last_s is not None else 0.0
