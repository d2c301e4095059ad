"""The one Celery app: broker and results on Redis, settings per docs/architecture.md.

- ``acks_late`` + ``task_reject_on_worker_lost``: a task whose worker dies is redelivered, which is safe because
  every task is idempotent (the ledger absorbs repeats).
- prefetch 1: a long sync never holds a second task hostage.
- JSON only; tasks take ids and small payloads.
- Two queues: ``bulk`` (scheduled and manual syncs, plan chunks) and ``realtime`` (webhook refreshes). A queue
  alone does not keep a webhook from waiting behind a full sync (a pool takes from every queue it consumes, and two
  processes busy with plan chunks left a refresh waiting 52 s): ``crmsync worker`` runs a realtime node of its own
  beside its bulk pool (``workers/lanes.py``), a refresh's PostHog requests go first at the budget's next free slot
  and keep a reserved share (``sync/budget.py``), and chunks hold their account locks a slice at a time
  (``sync/slices.py``). So a webhook waits for a few budget slots, never behind a full sync.
- The Redis visibility timeout (2 h) is above every retry countdown (at most ``MAX_COUNTDOWN_S``), so a task
  waiting to retry is never redelivered as well (lesson from Codecov's experience).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

from workers.config import REDIS_TIMEOUT_S, AppConfig
from workers.redis_conn import transport_options

VISIBILITY_TIMEOUT_S = 2 * 3600
MAX_COUNTDOWN_S = 900

app = Celery("crmsync", include=["workers.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue="bulk",
    task_queues=(Queue("bulk"), Queue("realtime")),  # type: ignore[no-untyped-call]
    task_routes={"crmsync.refresh": {"queue": "realtime"}},
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    result_expires=24 * 3600,
    task_track_started=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)


def configure(
    redis_url: str,
    beat_schedule: dict[str, dict[str, object]] | None = None,
    sentinel_master: str | None = None,
    timeout_s: float = REDIS_TIMEOUT_S,
) -> Celery:
    """Point the app at a Redis and (for beat) install a schedule. A ``sentinel://`` URL (``workers/redis_conn.py``)
    needs the master's name: ``sentinel_master``, else ``REDIS_SENTINEL_MASTER``. ``timeout_s``: the connect and
    read timeout of the broker's connections and the result backend's connect timeout (its read timeout is
    Celery's 120 s), so a Redis that accepts and never answers is an error, not a hang.

    Pointing it elsewhere later in the same process (tests, benchmarks with several Redis servers) also drops the
    connection pools and result backend Celery cached for the previous one, as it does itself after a fork.
    """
    if app.conf.broker_url not in (None, redis_url):
        app._after_fork()
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)
    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    sentinel = transport_options(redis_url, sentinel_master or os.environ.get("REDIS_SENTINEL_MASTER"))
    timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S, **sentinel, **timeouts}
    app.conf.result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S, **sentinel}
    app.conf.redis_socket_connect_timeout = timeout_s
    if beat_schedule is not None:
        app.conf.beat_schedule = beat_schedule
    return app


def configure_for(config: AppConfig, beat_schedule: dict[str, dict[str, object]] | None = None) -> Celery:
    """``configure`` with everything ``config`` says of its Redis: the URL, a Sentinel master, the timeouts."""
    return configure(config.redis_url, beat_schedule, config.redis_sentinel_master, config.redis_timeout_s)


def _configure_from_environment() -> None:
    """Worker processes started by ``celery -A workers.celery_app`` read ``CRMSYNC_CONFIG`` / ``REDIS_URL``.

    A bad config is not raised here, at import (where it was a traceback, even for ``crmsync --help``): every
    ``crmsync`` command loads the config itself and stops with the key named (``runtime_from_env``), and a worker
    or beat started by the ``celery`` program stops at its start-up signal with the same one line."""
    from sync.errors import CrmsyncError

    config_path = os.environ.get("CRMSYNC_CONFIG")
    if config_path and Path(config_path).exists():
        from workers.config import load_config
        from workers.schedule import beat_schedule

        try:
            config = load_config(config_path)
        except CrmsyncError as exc:
            _refuse_to_start(f"config error: {exc}")
        else:
            configure_for(config, beat_schedule(config))
            return
    configure(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def _refuse_to_start(message: str) -> None:
    """Stop a worker or beat of this app at start-up with ``message`` (status 2), not a traceback."""

    def stop(**_: object) -> None:
        print(message, file=sys.stderr)
        raise SystemExit(2)

    signals.worker_init.connect(stop, weak=False)
    signals.beat_init.connect(stop, weak=False)


_configure_from_environment()
