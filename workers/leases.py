"""Task leases: a task whose worker died is taken up by any live worker within a minute, whatever the broker does.

With ``acks_late`` a killed *pool process* is redelivered at once (``task_reject_on_worker_lost``), but a killed
*worker* (its main process too: a host that dies) leaves its messages in the Redis transport's ``unacked`` set
until the visibility timeout (2 h, ``workers/celery_app.py``) puts them back. So every task (``workers.tasks``'s
``_guarded``) also holds a lease on its own id, renewed by a heartbeat (``sync.lease.Heartbeat``) while it runs:

| key | holds |
|---|---|
| ``<ns>:lease:tasks`` | sorted set: task id → when its lease lapses (ms, Redis's clock: hosts' clocks never compare) |
| ``<ns>:lease:spec`` | hash: task id → JSON ``{task, args, kwargs, queue}``, what it takes to send the task again |
| ``<ns>:lease:holder`` | hash: task id → the delivery holding it (``host:pid:random``) |
| ``<ns>:lease:resent`` | hash: task id → how many times a sweep re-sent it without a delivery starting it |
| ``<ns>:lease:done:<task id>`` | the task ended (kept past the visibility timeout: a late redelivery is ignored) |

- A delivery **starts** by taking the lease; if the task is done it is ignored (``Ignore``: no result stored);
  if another delivery holds a live lease it retries after one lease (a dead pool process on this host is seen
  dead at once, so ``task_reject_on_worker_lost``'s redelivery takes over without waiting).
- A task that **retries** (a throttle, a 5xx) keeps its lease for the countdown plus one lease, held by nobody:
  its retry message is with some worker, whose sweep keeps renewing it while it holds the message (an ETA
  message, or one waiting for a free pool process); if that worker dies too, the lease lapses and a sweep
  elsewhere sends the task again.
- Every worker's main process runs a **sweep** every ``leases.sweep_every_s``: lapsed leases are claimed in one
  Lua script (so two workers never re-send the same task) and each task is sent again *with its own id*: the
  new delivery takes over the run locks its dead delivery held (``sync.ledger.lock_owner``) and, for a refresh,
  its claimed ids (``workers/claims.py``); a plan chunk skips what was already applied (``sync/plan.py``).

A re-sent task that no delivery starts within ``RESEND_GRACE_MS`` is sent again, at most ``MAX_RESENDS`` times.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
import structlog
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from sync.keys import ProjectKeys, namespace
from sync.lease import LEASE_MS

log = structlog.get_logger("crmsync.leases")

RESEND_GRACE_MS = 10 * 60_000
"""How long a re-sent task may wait in the queue for a worker before a sweep sends it again."""
MAX_RESENDS = 3
DONE_TTL_S = 3 * 3600
"""How long a finished task is remembered: above the broker's visibility timeout (2 h), after which the transport
puts a dead worker's unacked message back on the queue."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_START = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[5]) == 1 then return {'done', ''} end
local holder = redis.call('HGET', KEYS[3], ARGV[1])
local lapses = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if holder and holder ~= ARGV[2] and lapses > now and ARGV[5] ~= '1' then return {'busy', holder} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1])
return {'held', ''}
"""
)

_RENEW = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

_WAIT = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""
)

_KEEP = (
    _NOW
    + """
local kept = 0
for i = 2, #ARGV do
  local lapses = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if lapses and redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 and tonumber(lapses) <= now + tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
    kept = kept + 1
  end
end
return kept
"""
)

_DONE = """
redis.call('SET', KEYS[5], '1', 'EX', ARGV[3])
local holder = redis.call('HGET', KEYS[3], ARGV[1])
if holder == false or holder == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return 1
"""

_CLAIM_LAPSED = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local spec = redis.call('HGET', KEYS[2], id)
  local resent = redis.call('HINCRBY', KEYS[4], id, 1)
  if spec == false or resent > tonumber(ARGV[3]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    table.insert(out, id)
    table.insert(out, '')
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    redis.call('HDEL', KEYS[3], id)
    table.insert(out, id)
    table.insert(out, spec)
  end
end
return out
"""
)


def delivery_token() -> str:
    """Who holds a lease: this host and process, and a random part (one per delivery)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _dead_here(holder: str) -> bool:
    """Whether ``holder`` was a process of this host that no longer exists (a pool process SIGKILLed)."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class TaskLeases:
    """The task leases of one ledger namespace (``<ns>:lease:...``)."""

    def __init__(self, client: redis.Redis, ns: str, ttl_ms: int = LEASE_MS) -> None:
        self.redis = client
        self.ns = ns
        self.keys = ProjectKeys(ns)
        self.ttl_ms = ttl_ms
        self._start = client.register_script(_START)
        self._renew = client.register_script(_RENEW)
        self._wait = client.register_script(_WAIT)
        self._done = client.register_script(_DONE)
        self._keep = client.register_script(_KEEP)
        self._claim = client.register_script(_CLAIM_LAPSED)

    def _keys(self, task_id: str = "") -> list[str]:
        k = self.keys
        return [k.lease("tasks"), k.lease("spec"), k.lease("holder"), k.lease("resent"), k.lease(f"done:{task_id}")]

    def start(self, task_id: str, token: str, spec: Mapping[str, Any]) -> str:
        """Take the lease of ``task_id`` for this delivery: ``held``, ``done`` (the task ended: ignore this
        delivery) or ``busy`` (another live delivery holds it)."""
        args: list[str | int] = [task_id, token, self.ttl_ms, json.dumps(spec, separators=(",", ":"))]
        state, holder = (str(v) for v in cast(list[str], self._start(keys=self._keys(task_id), args=[*args, "0"])))
        if state == "busy" and _dead_here(holder):
            state = str(cast(list[str], self._start(keys=self._keys(task_id), args=[*args, "1"]))[0])
        return state

    def renew(self, task_id: str, token: str) -> bool:
        return bool(self._renew(keys=self._keys(task_id), args=[task_id, token, self.ttl_ms]))

    def waiting(self, task_id: str, token: str, countdown_s: float) -> bool:
        """The task retries in ``countdown_s``: its lease lasts until then plus one lease, held by nobody."""
        wait_ms = int(countdown_s * 1000) + self.ttl_ms
        return bool(self._wait(keys=self._keys(task_id), args=[task_id, token, wait_ms]))

    def keep_waiting(self, task_ids: Sequence[str]) -> int:
        """Renew the leases of tasks waiting for their retry in a live worker (its ETA messages, or messages
        waiting for a free pool process): a busy worker's retries are never taken for a dead worker's."""
        if not task_ids:
            return 0
        keys = [self._keys()[0], self._keys()[2]]
        return int(cast(int, self._keep(keys=keys, args=[self.ttl_ms, *task_ids])))

    def done(self, task_id: str, token: str) -> None:
        self._done(keys=self._keys(task_id), args=[task_id, token, DONE_TTL_S])

    def held(self) -> dict[str, float]:
        """Every task lease, by task id: when it lapses (ms since the epoch, Redis's clock)."""
        pairs = cast(list[tuple[str, float]], self.redis.zrange(self._keys()[0], 0, -1, withscores=True))
        return {str(k): float(v) for k, v in pairs}

    def claim_lapsed(self, limit: int = 100) -> list[tuple[str, dict[str, Any] | None]]:
        """Claim every lapsed lease for one re-send (atomic: two sweeps never claim one task); the spec to send,
        or None for a task given up (no spec, or re-sent ``MAX_RESENDS`` times without a delivery starting it)."""
        raw = cast(list[str], self._claim(keys=self._keys(), args=[RESEND_GRACE_MS, limit, MAX_RESENDS]))
        pairs = zip(raw[::2], raw[1::2], strict=True)
        return [(str(task_id), json.loads(spec) if spec else None) for task_id, spec in pairs]


def recover(app: Celery, leases: TaskLeases) -> list[str]:
    """One sweep: renew the leases of the retries this worker holds, then send again, with its own id, every task
    whose lease lapsed; returns their ids."""
    from celery.worker import state

    held = [*list(state.scheduled_requests), *list(state.reserved_requests)]  # ETA messages, and the rest
    leases.keep_waiting(list(dict.fromkeys(str(r.id) for r in held if r.id)))
    sent: list[str] = []
    for task_id, spec in leases.claim_lapsed():
        if spec is None:
            log.error("task lease given up: re-sent without a worker starting it", task_id=task_id)
            continue
        app.send_task(spec["task"], args=spec["args"], kwargs=spec["kwargs"], task_id=task_id, queue=spec["queue"])
        log.warning("task taken up again: its worker stopped renewing its lease", task=spec["task"], task_id=task_id)
        sent.append(task_id)
    return sent


class Sweeper:
    """A daemon thread in a worker's main process: ``recover`` every ``every_s`` seconds until stopped."""

    def __init__(self, app: Celery, leases: TaskLeases, every_s: float) -> None:
        self.app = app
        self.leases = leases
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-sweeper", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                recover(self.app, self.leases)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("lease sweep failed; trying again", error=type(exc).__name__)
            except Exception:  # a sweep must never stop the worker; the next one tries again
                log.exception("lease sweep failed")

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


_sweeper: Sweeper | None = None


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """Start the sweep in the worker's main process (never in pool processes), with clients of its own."""
    global _sweeper
    from workers.config import load_config
    from workers.redis_conn import connect

    config = load_config()
    client = connect(config.redis_url, config.redis_sentinel_master)
    ns = namespace(config.posthog_settings().project_id, config.ledger_prefix)
    leases = TaskLeases(client, ns, config.leases.ttl_ms)
    _sweeper = Sweeper(sender.app if sender is not None else _default_app(), leases, config.leases.sweep_every_s)
    _sweeper.start()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_sweeper(**_: Any) -> None:
    global _sweeper
    if _sweeper is not None:
        _sweeper.stop()
        _sweeper = None


def _default_app() -> Celery:
    from workers.celery_app import app

    return app
