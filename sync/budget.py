"""A request budget of sliding windows shared by every worker and host through Redis (PostHog's throttles).

PostHog holds each personal API key to 480 requests per minute and 4,800 per hour (``posthog/rate_limit.py``:
DRF ``SimpleRateThrottle`` sliding logs, keyed by a hash of the key, so every project reached with one key draws
on one budget). A token bucket (``sync.ratelimit``) would let a full bucket's burst through and then refill
continuously, which a sliding log refuses; so this budget keeps the same kind of log as the server:

- one sorted set per window of the stamps of the requests sent, in Redis, shared by every process;
- ``acquire`` takes one slot in every window at once, or none, in one Lua script run with the Redis server's
  clock (never the workers' clocks), answering how long until a slot frees when one window is full;
- a 429 from the server ``block``\\ s the whole budget until its ``Retry-After`` has passed, for every worker;
- ``margin_s`` widens each window a little: a request is stamped here before it travels, and the server
  stamps it on arrival, so jitter in that delay could otherwise squeeze N+1 requests into the server's window.

Two lanes, so that a backfill cannot starve webhook refreshes (``realtime_lane()`` marks a thread's requests as
realtime; everything else is bulk):

- **Priority at the next free slot.** A realtime acquire that must wait registers as a waiter (until its retry
  plus ``WAITER_GRACE_S``); while one waits, every bulk acquire is refused, so the next slot that frees is the
  refresh's. Bulk work takes the budget one request at a time, so a refresh waits for at most the slot(s) already
  taken when it asked, never behind a chunk.
- **A reserved share** (``realtime_share`` of each window, rounded up): while realtime is active (a refresh
  waiting, or one granted within the longest window), bulk may use only ``limit - ceil(limit * share)`` of a
  window, so refreshes find slots free at once, also while a backfill has spent the rest of PostHog's hour.
  While realtime is idle (no refresh for the longest window), bulk borrows the whole window: no slot is left
  unused for lack of webhooks. The first refresh after such a lull is still first at the next free slot.

Keys (``<base>`` = ``<prefix>:budget:posthog:<host>:<key hash>``, see ``posthog_budget_key``; built by ``sync.keys``):
``<base>:w:<seconds>`` a window's log, ``<base>:blocked`` the server time (epoch seconds) a 429 blocks until,
``<base>:stats`` how many attempts were told to wait, how many 429s blocked the budget and how many realtime
requests were granted (all workers, ever), ``<base>:rt:waiting`` the realtime acquires waiting (score: when each
retries), ``<base>:rt:active`` present while realtime holds its reserved share, ``<base>:history:<hour>`` per
minute of that hour (epoch minute by the Redis server's clock; the hour by the writer's, so a reader looks one hour
either side) the requests taken, the attempts told to wait (``<minute>:w``) and the 429 blocks (``<minute>:b``):
written inside the same scripts (no extra round trip), at most 180 fields, expiring after 26 hours; what the status
page charts (``history``). A window log's members are ``<stamp>:<lane>:<acquire id>``.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from sync.keys import BudgetKeys, posthog_budget
from sync.ratelimit import BudgetExhausted

LANES = ("bulk", "realtime")
_LANE: ContextVar[str] = ContextVar("crmsync_budget_lane", default="bulk")
WAITER_GRACE_S = 2.0
"""How long past its announced retry a waiting refresh keeps its claim on the next slot (a refresh process that
died stops holding bulk work back after this)."""


@contextmanager
def realtime_lane() -> Iterator[None]:
    """Within the block, this thread's ``acquire`` calls are realtime (webhook refreshes): see the module docstring."""
    token = _LANE.set("realtime")
    try:
        yield
    finally:
        _LANE.reset(token)


def current_lane() -> str:
    """``bulk`` (the default) or ``realtime`` (inside ``realtime_lane()``)."""
    return _LANE.get()


_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")

# KEYS: blocked, stats, realtime waiters, realtime active, this hour's history, window logs...
# ARGV: acquire id, margin, lane, realtime share, waiter grace, history expiry (seconds), then (limit, seconds) per
# window
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[1]))
local history = KEYS[5]
local minute = tostring(math.floor(now / 60))
if blocked ~= nil and blocked > now then
  redis.call('HINCRBY', KEYS[2], 'waits', 1)
  redis.call('HINCRBY', history, minute .. ':w', 1)
  redis.call('EXPIRE', history, ARGV[6])
  return tostring(blocked - now)
end
local margin = tonumber(ARGV[2])
local realtime = ARGV[3] == 'realtime'
local share = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - grace)
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local active = realtime or first[1] ~= nil or redis.call('EXISTS', KEYS[4]) == 1
local wait = 0
local longest = 0
for i = 6, #KEYS do
  local limit = tonumber(ARGV[2 * i - 5])
  local span = tonumber(ARGV[2 * i - 4]) + margin
  if span > longest then longest = span end
  local cap = limit
  if active and not realtime then cap = limit - math.ceil(limit * share) end
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - span)
  local used = redis.call('ZCARD', KEYS[i])
  if used >= cap then
    local frees = span
    if cap > 0 then
      local oldest = redis.call('ZRANGE', KEYS[i], used - cap, used - cap, 'WITHSCORES')
      frees = tonumber(oldest[2]) + span - now
    end
    if frees > wait then wait = frees end
  end
end
if not realtime and first[1] ~= nil then
  -- a refresh is waiting: the next free slot is its own; come back once it has had the chance to take it
  local after = tonumber(first[2]) - now + 0.01
  if after < 0.01 then after = 0.01 end
  if after > wait then wait = after end
end
if wait > 0 then
  redis.call('HINCRBY', KEYS[2], 'waits', 1)
  redis.call('HINCRBY', history, minute .. ':w', 1)
  redis.call('EXPIRE', history, ARGV[6])
  if realtime then
    redis.call('ZADD', KEYS[3], now + wait, ARGV[1])
    redis.call('PEXPIRE', KEYS[3], math.ceil((wait + grace) * 1000) + 1000)
  end
  return tostring(wait)
end
local member = string.format('%.6f', now) .. ':' .. ARGV[3] .. ':' .. ARGV[1]
for i = 6, #KEYS do
  local span = tonumber(ARGV[2 * i - 4]) + margin
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], math.ceil(span * 1000) + 1000)
end
if realtime then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SET', KEYS[4], '1', 'PX', math.ceil(longest * 1000))
  redis.call('HINCRBY', KEYS[2], 'realtime', 1)
end
redis.call('HINCRBY', history, minute, 1)
redis.call('EXPIRE', history, ARGV[6])
return '0'
"""

# KEYS: blocked, stats, this hour's history   ARGV: seconds, history expiry (seconds)
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seconds = tonumber(ARGV[1])
local blocked_until = now + seconds
local current = tonumber(redis.call('GET', KEYS[1]))
redis.call('HINCRBY', KEYS[2], 'blocks', 1)
redis.call('HINCRBY', KEYS[3], tostring(math.floor(now / 60)) .. ':b', 1)
redis.call('EXPIRE', KEYS[3], ARGV[2])
if current == nil or blocked_until > current then
  redis.call('SET', KEYS[1], string.format('%.6f', blocked_until), 'PX', math.ceil(seconds * 1000) + 1000)
  return string.format('%.6f', blocked_until)
end
return string.format('%.6f', current)
"""

# KEYS: blocked, stats, window logs...   ARGV: margin, then seconds per window.  Read only.
_USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stats = redis.call('HMGET', KEYS[2], 'waits', 'blocks')
local out = {string.format('%.6f', now), redis.call('GET', KEYS[1]) or '', stats[1] or '0', stats[2] or '0'}
local margin = tonumber(ARGV[1])
for i = 3, #KEYS do
  local span = tonumber(ARGV[i - 1]) + margin
  out[#out + 1] = tostring(redis.call('ZCOUNT', KEYS[i], '(' .. string.format('%.6f', now - span), '+inf'))
end
return out
"""


HISTORY_TTL_S = 26 * 3600
"""How long an hour of the per-minute history is kept after its last write: a day's chart, plus slack."""

_HISTORY_KINDS = {"": "requests", "w": "waits", "b": "blocks"}


@dataclass
class MinuteUse:
    """One minute of the budget's history, all workers: requests sent, attempts told to wait, 429 blocks."""

    requests: int = 0
    waits: int = 0
    blocks: int = 0


@dataclass(frozen=True)
class Window:
    """At most ``limit`` requests in any ``seconds``: PostHog's burst window is ``Window(480, 60)``."""

    limit: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}"


POSTHOG_WINDOWS = (Window(480, 60), Window(4800, 3600))
"""PostHog Cloud's ``burst`` (480/minute) and ``sustained`` (4800/hour) throttles for personal API keys."""


def parse_window(spec: str) -> Window:
    """``"480/60"`` → ``Window(480, 60.0)`` (N requests per SECONDS); ``ValueError`` saying what is wrong."""
    match = _SPEC.match(str(spec))
    if not match:
        raise ValueError(f"{spec!r} is not N/SECONDS, e.g. 480/60")
    window = Window(int(match.group(1)), float(match.group(2)))
    if window.limit < 1 or window.seconds <= 0:
        raise ValueError(f"{spec!r}: N and SECONDS must be positive")
    return window


def posthog_budget_key(prefix: str, base_url: str, api_key: str) -> str:
    """The Redis key base of one PostHog host and personal API key: the host plus a short hash of the key
    (never the key), so every project reached with that key shares the budget, as PostHog counts it."""
    host = urlsplit(base_url).netloc or base_url
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return posthog_budget(prefix, host, digest)


@dataclass(frozen=True)
class WindowUsage:
    window: Window
    used: int

    @property
    def left(self) -> int:
        return max(0, self.window.limit - self.used)


@dataclass(frozen=True)
class BudgetUsage:
    """What ``RequestBudget.usage`` reads in one round trip: per window used/left, and a 429's block."""

    windows: tuple[WindowUsage, ...]
    blocked_for_s: float  # 0 when not blocked
    blocked_until: float | None  # epoch seconds (Redis server time) while blocked
    waits: int  # attempts told to wait for a slot, ever (all workers)
    blocks: int  # 429s that blocked the budget, ever (all workers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": [
                {
                    "window": str(u.window),
                    "limit": u.window.limit,
                    "seconds": u.window.seconds,
                    "used": u.used,
                    "left": u.left,
                }
                for u in self.windows
            ],
            "blocked": self.blocked_for_s > 0,
            "blocked_for_s": round(self.blocked_for_s, 3),
            "blocked_until": self.blocked_until,
            "waits": self.waits,
            "blocks": self.blocks,
        }


@dataclass
class RequestBudget:
    """Sliding-window request budget shared through Redis; see the module docstring.

    ``acquire`` before every request (waiting up to ``max_wait_s``), ``block`` after a 429, ``usage`` to report.
    ``sleep`` is injectable so tests count waits instead of timing them.
    """

    client: redis.Redis
    key: str
    windows: Sequence[Window]
    margin_s: float = 0.5
    realtime_share: float = 0.0
    max_wait_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    taken: int = field(default=0, init=False)
    waits: int = field(default=0, init=False)
    waited_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("a budget needs at least one window (no windows: use no budget)")
        if not 0 <= self.realtime_share < 1:
            raise ValueError("realtime_share is a fraction of each window, from 0 up to (not including) 1")
        self.windows = tuple(self.windows)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._block = self.client.register_script(_BLOCK)
        self._usage = self.client.register_script(_USAGE)
        names = BudgetKeys(self.key)
        self._keys = [names.blocked(), names.stats(), *(names.window(w.seconds) for w in self.windows)]
        self._acquire_keys = [*self._keys[:2], names.rt_waiting(), names.rt_active(), *self._keys[2:]]

    def __repr__(self) -> str:
        return f"RequestBudget(key={self.key!r}, windows={[str(w) for w in self.windows]})"

    def _history_key(self, hour: int) -> str:
        return BudgetKeys(self.key).history(hour)

    def try_acquire(self, lane: str | None = None, attempt: str | None = None) -> float:
        """Take one slot in every window (returns 0.0), or none: the seconds until one could be taken.

        ``lane``: ``bulk`` or ``realtime`` (default: the thread's, see ``realtime_lane``). ``attempt`` names one
        acquisition across its tries: a realtime one that must wait holds the next free slot under that name."""
        lane = lane or current_lane()
        if lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}, not {lane!r}")
        args: list[Any] = [
            attempt or uuid.uuid4().hex,
            self.margin_s,
            lane,
            self.realtime_share,
            WAITER_GRACE_S,
            HISTORY_TTL_S,
        ]
        for window in self.windows:
            args += [window.limit, window.seconds]
        history = self._history_key(int(time.time() // 3600))
        keys = [*self._acquire_keys[:4], history, *self._acquire_keys[4:]]
        return float(_text(self._acquire(keys=keys, args=args)))

    def history(self, span_s: float = 86_400, now: float | None = None) -> dict[int, MinuteUse]:
        """Per epoch minute of the last ``span_s`` seconds (at most a day): requests taken, attempts told to wait,
        429 blocks, of every worker. Minutes without any are absent. One round trip (one ``HGETALL`` per hour)."""
        now = time.time() if now is None else now
        hours = range(int((now - span_s) // 3600) - 1, int(now // 3600) + 2)
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self._history_key(hour))
        first = int((now - span_s) // 60)
        found: dict[int, MinuteUse] = {}
        for raw in pipe.execute():
            for name, count in cast(dict[Any, Any], raw).items():
                minute_text, _, kind = _text(name).partition(":")
                minute = int(minute_text)
                if minute < first:
                    continue
                use = found.setdefault(minute, MinuteUse())
                setattr(use, _HISTORY_KINDS[kind], getattr(use, _HISTORY_KINDS[kind]) + int(_text(count)))
        return dict(sorted(found.items()))

    def acquire(self) -> None:
        """Take a slot, sleeping while the budget is spent; ``BudgetExhausted`` (``retry_after`` = when it frees)
        rather than wait more than ``max_wait_s`` in all."""
        waited = 0.0
        lane, attempt = current_lane(), uuid.uuid4().hex
        while True:
            wait = self.try_acquire(lane, attempt)
            if wait <= 0:
                self.taken += 1
                return
            if waited + wait > self.max_wait_s:
                raise BudgetExhausted(
                    f"PostHog request budget spent ({', '.join(map(str, self.windows))}): a slot frees in {wait:.1f} s",
                    retry_after=wait,
                )
            self.waits += 1
            self.waited_s += wait
            self.sleep(wait + 0.001)  # a hair past the edge: the freeing stamp is then out of the window
            waited += wait

    def block(self, seconds: float) -> float:
        """Spend the budget for everyone for ``seconds`` (the server said 429 with this ``Retry-After``);
        never shortens a longer block already set. Returns the server time it blocks until."""
        keys = [*self._keys[:2], self._history_key(int(time.time() // 3600))]
        return float(_text(self._block(keys=keys, args=[max(0.0, seconds), HISTORY_TTL_S])))

    def usage(self) -> BudgetUsage:
        """Used and left in each window now, and any 429 block (one round trip)."""
        raw = self._usage(keys=self._keys, args=[self.margin_s, *(w.seconds for w in self.windows)])
        now, blocked, waits, blocks, *counts = (_text(v) for v in raw)
        until = float(blocked) if blocked else None
        blocked_for = max(0.0, until - float(now)) if until is not None else 0.0
        return BudgetUsage(
            windows=tuple(WindowUsage(w, int(c)) for w, c in zip(self.windows, counts, strict=True)),
            blocked_for_s=blocked_for,
            blocked_until=until if blocked_for > 0 else None,
            waits=int(waits),
            blocks=int(blocks),
        )


def _text(value: Any) -> str:
    """A script's answer as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
