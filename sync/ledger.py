"""The Redis idempotency ledger: what crmsync applied, wrote, linked and saw, so every step is safe to repeat.

Keys (one namespace per PostHog project, ``<ns>`` = ``crmsync:<project>``; layout 2, see ``sync.ledger_layout``):

| key | value |
|---|---|
| ``<ns>:r:<source>:<object>:<bucket>`` | hash: record id → ``RecordEntry`` and the fingerprint last pushed to it |
| ``<ns>:x:<kind>:<bucket>`` | hash: value → account id, for kind ``external_id``, ``domain`` or a CRM id property |
| ``<ns>:a:<account id>`` | the account as PostHog last showed it (``updated_at``, JSON) and its ``AccountEntry`` |
| | (provenance, tags per source, when each field last changed, each source's value where it differs) |
| ``<ns>:layout`` | ``2:<buckets>``: the layout and its bucket count; written by the one-shot migration from layout 1 |
| ``<ns>:idxmeta`` | JSON: the account index watermark (``updated_at`` of the newest account indexed) |
| ``<ns>:notags`` | JSON: PostHog dropped our tags (no tagging feature), for this mapping fingerprint, since when |
| ``<ns>:cursor:<source>:<stream>`` | committed incremental cursor |
| ``<ns>:evt:<source>:<event id>`` | a webhook event already seen (``SET NX`` with a TTL) |
| ``<ns>:system:<source or posthog>`` | JSON: the identity of the system that source's state was recorded for |
| ``<ns>:lock:<name>`` | a lock token with an expiry (per account; a run lock is a lease: ``sync/lease.py``) |
| ``<ns>:lease:...`` | task leases (``workers/leases.py``) |
| ``<ns>:runs``, ``<ns>:dlq`` | streams: run reports; parked records with their reasons |

An ``AccountEntry`` also holds the role holders where PostHog keeps them on relationships (``sync/roles.py``), and
PostHog's system record also its API generation (``sync/posthog/generation.py``).

Every batch operation is one round trip and one command per record at most (``MGET``, one script reading every
bucket field of the batch, or one pipelined ``MULTI``/``EXEC``), whatever the batch size.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from sync.errors import RetryableError
from sync.ledger_layout import (
    ACCOUNT_PARTS,
    BUCKETS,
    FAMILIES,
    LAYOUT,
    RECORD_PARTS,
    bucket,
    compact_fp,
    decode_entry,
    decode_id,
    decode_record,
    decode_seen,
    encode_entry,
    encode_id,
    encode_record,
    encode_seen,
    migrate_legacy,
    parse_layout,
    split_account,
    split_record,
)
from sync.posthog.models import Account

log = logging.getLogger(__name__)

# KEYS: the system record   ARGV: identity, JSON facts, now
_NOTE_SYSTEM = """
local raw = redis.call('GET', KEYS[1])
local record
if raw then record = cjson.decode(raw) else record = {id = ARGV[1], at = tonumber(ARGV[3])} end
if record['id'] ~= ARGV[1] then return 0 end
for k, v in pairs(cjson.decode(ARGV[2])) do record[k] = v end
redis.call('SET', KEYS[1], cjson.encode(record))
return 1
"""

_RELEASE_MANY = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""

_ACQUIRE = """
local acquired = {}
for i, key in ipairs(KEYS) do
  local token = ARGV[i + 1]
  local holder = redis.call('GET', key)
  if holder == false or holder == token then
    redis.call('SET', key, token, 'PX', ARGV[1])
    acquired[i] = 1
  else
    acquired[i] = 0
  end
end
return acquired
"""

_HGET_MANY = """
local values = {}
for i, key in ipairs(KEYS) do
  values[i] = redis.call('HGET', key, ARGV[i])
end
return values
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def delete_keys(client: redis.Redis, pattern: str, batch: int = 500) -> int:
    """Delete every key matching ``pattern`` (SCAN, then DEL in batches); returns how many. For tearing down a
    namespace (tests, the demo), never on a sync's path."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), batch):
        client.delete(*keys[start : start + batch])
    return len(keys)


KEPT_FAMILIES = frozenset({"runs", "metrics", "lock", "plan", "layout", "lease"})
"""Key families no state drop touches: run history, counters, live locks, task leases and plans being written
(work in progress: a running task holds them, and a plan is bound to its systems before it stages anything), and
the layout version (it describes the format, not a system)."""
SOURCE_FAMILIES = ("rec", "out", "r", "cursor", "cursor_at", "pending", "claim", "evt", "system")
"""Key families whose second segment names the source the key describes (``rec:<source>:...``)."""


def owner_of(rest: str) -> tuple[str | None, str]:
    """Which system a key describes, and its family, from the key without its namespace (``rec:hubspot:deals:1``).

    Returns ``(source, family)`` for a source's state, ``("posthog", family)`` for PostHog-side state (the
    account index and entries, and anything not attributed to a source), ``(None, family)`` for keys no state
    drop touches. The outbound watermark ``cursor:posthog:outwm:<source>:<stream>`` belongs to ``<source>``.
    """
    parts = rest.split(":")
    family = parts[0]
    if family in KEPT_FAMILIES:
        return None, family
    if family in ("cursor", "cursor_at") and parts[1:3] == ["posthog", "outwm"] and len(parts) > 3:
        return parts[3], "outwm" if family == "cursor" else "outwm_at"
    if family in SOURCE_FAMILIES and len(parts) > 1:
        return parts[1], FAMILIES.get(family, family)
    return "posthog", FAMILIES.get(family, family)


@dataclass
class RecordEntry:
    """What the ledger remembers of one CRM record."""

    fp: str
    account_id: str | None
    version: int | None = None
    echo_fp: str | None = None  # fingerprint the record will show after our own push (an echo to skip)
    unlinked: bool = False  # its account was deleted in PostHog and the config says unlink: never synced again


@dataclass
class AccountEntry:
    """What crmsync last wrote to one account and who owns which of its fields."""

    written_fp: str = ""
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)  # target → Provenance.dump()
    tags: dict[str, list[str]] = field(default_factory=dict)  # source → tags that source added
    # Role holders where PostHog keeps them on relationships (current servers): role key → {"id", "email"}, as
    # crmsync last wrote them or PostHog's change feed reported them (sync/roles.py); empty elsewhere.
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)  # custom property name → fingerprint of its value
    changed: dict[str, int] = field(default_factory=dict)  # target → when crmsync last changed it (epoch seconds)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # source → {target: its value}, kept only while
    # that value differs from the account's (a source whose value is the account's has no entry): for the status page


@dataclass(frozen=True)
class RecordKey:
    source: str
    object: str
    id: str


_READY: weakref.WeakKeyDictionary[redis.ConnectionPool, dict[str, int]] = weakref.WeakKeyDictionary()
"""Connection pool → namespace → bucket count, for ledgers this process found in layout 2: checked once."""

lock_owner: ContextVar[str | None] = ContextVar("crmsync_lock_owner", default=None)
"""Who takes locks in this context: the Celery task id while a task runs (set by ``workers.tasks``)."""


class LockNotAcquired(RetryableError):
    """Another worker holds the lock; try again shortly."""


class Ledger:
    """Typed access to the ledger keys of one PostHog project."""

    def __init__(self, client: redis.Redis, project_id: int, prefix: str = "crmsync", buckets: int = BUCKETS) -> None:
        """``buckets``: the bucket count if this ledger is new (an existing ledger keeps its own, see ``ready``)."""
        self.redis = client
        self.ns = f"{prefix}:{project_id}"
        self._release_many = client.register_script(_RELEASE_MANY)
        self._acquire = client.register_script(_ACQUIRE)
        self._extend = client.register_script(_EXTEND)
        self._hget_many = client.register_script(_HGET_MANY)
        self._account_parts = client.register_script(ACCOUNT_PARTS)
        self._note_system = client.register_script(_NOTE_SYSTEM)
        self.buckets = buckets  # a new ledger's; ``ready`` reads the ledger's own from ``<ns>:layout``

    # -- keys ------------------------------------------------------------------------------------------

    def rec_bucket(self, key: RecordKey) -> str:
        """The hash holding the record's entry and outbound fingerprint (``sync.ledger_layout``)."""
        return f"{self.ns}:r:{key.source}:{key.object}:{bucket(key.id, self.buckets)}"

    def idx_bucket(self, kind: str, value: str) -> str:
        return f"{self.ns}:x:{kind}:{bucket(value, self.buckets)}"

    def acct_key(self, account_id: str) -> str:
        """The account's one key: the account as PostHog last showed it, and its entry (``sync.ledger_layout``)."""
        return f"{self.ns}:a:{account_id}"

    # -- layout: a layout 1 ledger is migrated once, at first use --------------------------------------------

    def ready(self, wait_s: float = 600.0) -> None:
        """Make sure the ledger is in layout 2, once per namespace and process, in one round trip (a ``GET`` of the
        layout and its bucket count, with the scripts loaded alongside so no batch later pays for loading them). A
        layout 1 ledger is migrated once (``sync.ledger_layout.migrate_legacy``) under a lock; other processes
        wait for it."""
        known = _READY.setdefault(self.redis.connection_pool, {})
        if self.ns in known:
            self.buckets = known[self.ns]
            return
        layout_key = f"{self.ns}:layout"
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(layout_key)
        for script in (self._hget_many, self._account_parts):
            pipe.script_load(script.script)
        buckets = parse_layout(pipe.execute()[0])
        deadline = time.monotonic() + wait_s
        while buckets is None:
            lock = f"{self.ns}:lock:layout"
            if self.redis.set(lock, "1", nx=True, px=int(wait_s * 1000)):
                try:
                    migrated = migrate_legacy(self)  # into self.buckets: a new ledger's count
                    self.redis.set(layout_key, f"{LAYOUT}:{self.buckets}")
                    if migrated:
                        log.info("ledger %s migrated to layout %s: %s", self.ns, LAYOUT, migrated)
                finally:
                    self.redis.delete(lock)
                buckets = self.buckets
                break
            if time.monotonic() > deadline:
                raise LockNotAcquired(f"the ledger {self.ns} is being migrated by another process")
            time.sleep(0.2)
            buckets = parse_layout(cast(str | None, self.redis.get(layout_key)))
        self.buckets = known[self.ns] = buckets

    # -- batch reads: one round trip each ----------------------------------------------------------------

    def get_records(self, keys: Sequence[RecordKey]) -> list[RecordEntry | None]:
        raw = self._fields([(self.rec_bucket(k), k.id) for k in keys])
        entries = [split_record(r)[0] for r in raw]
        return [decode_record(e) if e else None for e in entries]

    def get_accounts(self, account_ids: Sequence[str]) -> list[AccountEntry]:
        raw = self._accounts(account_ids)
        return [decode_entry(split_account(r)[2]) for r in raw]

    def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[str | None]:
        """Account ids for (kind, value) pairs of the account index, None where unknown (or the kind is empty)."""
        wanted = [(n, self.idx_bucket(kind, value), value) for n, (kind, value) in enumerate(pairs) if kind]
        found: list[str | None] = [None] * len(pairs)
        for (n, _, _), raw in zip(wanted, self._fields([(k, v) for _, k, v in wanted]), strict=True):
            found[n] = decode_id(raw) if raw is not None else None
        return found

    def get_seen(self, account_ids: Sequence[str]) -> list[Account | None]:
        """The accounts as PostHog last showed them (on our last write or in the last walk of changed accounts),
        None where unknown: what a PATCH starts from instead of a GET."""
        seen: list[Account | None] = []
        for account_id, raw in zip(account_ids, self._accounts(account_ids), strict=True):
            ts, body, _ = split_account(raw)
            seen.append(decode_seen(account_id, ts, body) if body else None)
        return seen

    def remember_seen(self, accounts: Iterable[Account]) -> int:
        """Store accounts as just read from PostHog, each only if not older than what is stored (one round trip):
        a listing read before a worker's write never overwrites the newer state that write returned."""
        self.ready()
        latest = {a.id: a for a in accounts}
        if not latest:
            return 0
        args = [part for a in latest.values() for part in ("n", encode_seen(a), "")]
        return int(self._account_parts(keys=[self.acct_key(a) for a in latest], args=args))

    def forget_seen(self, account_ids: Sequence[str]) -> int:
        """Forget what PostHog last showed of these accounts, keeping their entries (the next PATCH reads first)."""
        self.ready()
        if not account_ids:
            return 0
        args = [part for _ in account_ids for part in ("f", "", "")]
        return int(self._account_parts(keys=[self.acct_key(a) for a in account_ids], args=args))

    def get_outbound(self, keys: Sequence[RecordKey]) -> list[str | None]:
        raw = self._fields([(self.rec_bucket(k), k.id) for k in keys])
        return [split_record(r)[1] or None for r in raw]

    def _accounts(self, account_ids: Sequence[str]) -> list[str | None]:
        self.ready()
        if not account_ids:
            return []
        return cast(list[str | None], self.redis.mget([self.acct_key(a) for a in account_ids]))

    def _fields(self, wanted: Sequence[tuple[str, str]]) -> list[str | None]:
        """``HGET`` of every (bucket, field) in one script call: one round trip, one command."""
        self.ready()
        if not wanted:
            return []
        return cast(list[str | None], self._hget_many(keys=[k for k, _ in wanted], args=[f for _, f in wanted]))

    # -- batch commit: one round trip ---------------------------------------------------------------------

    def commit(
        self,
        records: Mapping[RecordKey, RecordEntry] | None = None,
        accounts: Mapping[str, AccountEntry] | None = None,
        index: Mapping[tuple[str, str], str] | None = None,
        unindex: Iterable[tuple[str, str]] = (),
        forget: Iterable[RecordKey] = (),
        outbound: Mapping[RecordKey, str] | None = None,
        seen: Iterable[Account] = (),
    ) -> None:
        """Write a batch's outcome atomically (``MULTI``/``EXEC``) in one round trip. ``seen``: accounts as our
        own writes just returned them (newest by construction: the writer holds the account's lock). Account
        entries and seen accounts share a key: both go in one script call for the whole batch."""
        self.ready()
        pipe = self.redis.pipeline(transaction=True)
        for (kind, value), account_id in (index or {}).items():
            pipe.hset(self.idx_bucket(kind, value), value, encode_id(account_id))
        for kind, value in unindex:
            pipe.hdel(self.idx_bucket(kind, value), value)
        parts = [(key, "r", encode_record(entry)) for key, entry in (records or {}).items()]
        parts += [(key, "r", "") for key in forget]  # the outbound fingerprint stays
        parts += [(key, "o", compact_fp(fp)) for key, fp in (outbound or {}).items()]
        if parts:  # EVAL, not EVALSHA: a script in a pipeline would cost a SCRIPT EXISTS round trip first
            keys = [self.rec_bucket(key) for key, _, _ in parts]
            pipe.eval(RECORD_PARTS, len(keys), *keys, *(x for key, part, v in parts for x in (key.id, part, v)))
        by_account: dict[str, list[str]] = {}
        for account_id, acct in (accounts or {}).items():
            by_account[account_id] = ["e", "", encode_entry(acct)]
        for account in seen:
            part = by_account.setdefault(account.id, ["s", "", ""])
            part[0], part[1] = ("b" if part[0] == "e" else "s"), encode_seen(account)
        if by_account:
            keys = [self.acct_key(a) for a in by_account]
            pipe.eval(ACCOUNT_PARTS, len(keys), *keys, *(p for part in by_account.values() for p in part))
        if len(pipe):
            pipe.execute()

    def forget_account(self, account_id: str, index_pairs: Iterable[tuple[str, str]]) -> None:
        """Drop an account that no longer exists in PostHog from the index and provenance."""
        self.ready()
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.acct_key(account_id))
        for kind, value in index_pairs:
            pipe.hdel(self.idx_bucket(kind, value), value)
        pipe.execute()

    def account_ids(self) -> list[str]:
        """Every account the ledger holds an entry for (a SCAN: for reconciliation, not per batch)."""
        self.ready()
        return self._suffixes(f"{self.ns}:a:")

    def search_index(self, pattern: str, limit: int) -> list[tuple[str, str, str]]:
        """``(kind, value, account id)`` of at most ``limit`` index entries whose value matches the glob ``pattern``
        (a SCAN of the index buckets, ``HSCAN MATCH`` in each: for the status page's search, not per batch)."""
        self.ready()
        prefix = f"{self.ns}:x:"
        found: list[tuple[str, str, str]] = []
        for key in self.redis.scan_iter(match=f"{prefix}*", count=1000, _type="hash"):
            kind = str(key)[len(prefix) :].rsplit(":", 1)[0]
            for value, raw in self.redis.hscan_iter(key, match=pattern, count=1000):
                found.append((kind, str(value), decode_id(str(raw))))
                if len(found) >= limit:
                    return found
        return found

    def iter_seen(self, batch: int = 500) -> Iterator[list[Account]]:
        """Every account as PostHog last showed it, in batches (a SCAN, one round trip per batch: for the status
        page's name search, not per sync batch)."""
        self.ready()
        prefix = f"{self.ns}:a:"
        ids: list[str] = []
        for key in self.redis.scan_iter(match=f"{prefix}*", count=1000):
            ids.append(str(key)[len(prefix) :])
            if len(ids) >= batch:
                yield [a for a in self.get_seen(ids) if a is not None]
                ids = []
        if ids:
            yield [a for a in self.get_seen(ids) if a is not None]

    def record_ids(self, source: str, obj: str) -> list[str]:
        """Ids of every record of ``source``/``obj`` the ledger holds an entry for (a SCAN, one ``HGETALL`` per
        bucket: for reconciliation, not per batch)."""
        return sorted(self._records(f"{self.ns}:r:{source}:{obj}:*"))

    def record_count(self) -> int:
        """How many records of every source the ledger holds an entry for (a SCAN of the record buckets)."""
        return len(self._records(f"{self.ns}:r:*"))

    def _records(self, pattern: str) -> list[str]:
        """Record ids with an entry (not only an outbound fingerprint) in the buckets matching ``pattern``."""
        self.ready()
        buckets = list(self.redis.scan_iter(match=pattern, count=1000, _type="hash"))
        pipe = self.redis.pipeline(transaction=False)
        for key in buckets:
            pipe.hgetall(key)
        found = cast(list[dict[str, str]], pipe.execute() if buckets else [])
        return [rid for fields in found for rid, raw in fields.items() if split_record(raw)[0]]

    def _suffixes(self, prefix: str) -> list[str]:
        """What follows ``prefix`` in every key that starts with it (one SCAN)."""
        return sorted(str(k)[len(prefix) :] for k in self.redis.scan_iter(match=f"{prefix}*", count=1000))

    # -- account index watermark ----------------------------------------------------------------------

    def index_watermark(self) -> str | None:
        raw = cast(str | None, self.redis.get(f"{self.ns}:idxmeta"))
        return str(json.loads(raw)["watermark"]) if raw else None

    def set_index_watermark(self, watermark: str) -> None:
        self.redis.set(f"{self.ns}:idxmeta", json.dumps({"watermark": watermark, "at": time.time()}))

    # -- PostHog without its tagging feature ---------------------------------------------------------------

    def tagging_unsupported(self) -> dict[str, Any] | None:
        """``{"mapping": fingerprint, "at": epoch}`` when PostHog was found dropping the tags we wrote."""
        raw = cast(str | None, self.redis.get(f"{self.ns}:notags"))
        return cast(dict[str, Any], json.loads(raw)) if raw else None

    def mark_tagging_unsupported(self, mapping_fp: str) -> None:
        self.redis.set(f"{self.ns}:notags", json.dumps({"mapping": mapping_fp, "at": time.time()}))

    # -- cursors -----------------------------------------------------------------------------------------

    def get_cursor(self, source: str, stream: str) -> str | None:
        return cast(str | None, self.redis.get(f"{self.ns}:cursor:{source}:{stream}"))

    def set_cursor(self, source: str, stream: str, raw: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(f"{self.ns}:cursor:{source}:{stream}", raw)
        pipe.set(f"{self.ns}:cursor_at:{source}:{stream}", repr(time.time()))
        pipe.execute()

    def cursor_written_at(self, source: str, stream: str) -> float | None:
        """When the cursor was last committed (epoch seconds), for ``crmsync status``."""
        raw = cast(str | None, self.redis.get(f"{self.ns}:cursor_at:{source}:{stream}"))
        return float(raw) if raw else None

    def clear_cursor(self, source: str, stream: str) -> None:
        self.redis.delete(f"{self.ns}:cursor:{source}:{stream}")

    # -- webhook events ------------------------------------------------------------------------------------

    def first_sightings(self, source: str, event_ids: Sequence[str], ttl_s: int = 7 * 24 * 3600) -> list[bool]:
        """Mark events as seen (``SET NX EX``, one round trip); True for each id not seen before."""
        if not event_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(f"{self.ns}:evt:{source}:{event_id}", "1", nx=True, ex=ttl_s)
        return [bool(r) for r in pipe.execute()]

    # -- locks -----------------------------------------------------------------------------------------------

    def try_lock(self, names: Sequence[str], ttl_ms: int) -> dict[str, str]:
        """Try to take several locks in one round trip; returns {name: token} for those acquired.

        The token is the current ``lock_owner`` (a Celery task id) when one is set: a redelivery of a task whose
        worker was killed then takes over the locks its dead first delivery still holds, instead of waiting for
        them to expire. Without an owner each lock gets a fresh random token.
        """
        if not names:
            return {}
        owner = lock_owner.get()
        tokens = {name: owner or uuid.uuid4().hex for name in names}
        keys = [f"{self.ns}:lock:{name}" for name in tokens]
        results = self._acquire(keys=keys, args=[ttl_ms, *tokens.values()])
        return {name: token for (name, token), ok in zip(tokens.items(), results, strict=True) if ok}

    def release(self, held: Mapping[str, str]) -> int:
        """Release locks still holding our tokens (one round trip); a lock that expired and was taken over by
        another worker is left alone."""
        if not held:
            return 0
        keys = [f"{self.ns}:lock:{name}" for name in held]
        return int(self._release_many(keys=keys, args=list(held.values())))

    def release_owned(self, owner: str) -> int:
        """Release every lock still holding ``owner``'s token: what a task's killed first delivery left in batches
        its redelivery did not repeat. One SCAN of the (few) lock keys, one compare-and-delete."""
        keys = [f"{self.ns}:lock:{name}" for name in self._suffixes(f"{self.ns}:lock:")]
        if not keys:
            return 0
        return int(self._release_many(keys=keys, args=[owner] * len(keys)))

    def extend(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(self._extend(keys=[f"{self.ns}:lock:{name}"], args=[token, ttl_ms]))

    def extend_many(self, names: Sequence[str], token: str, ttl_ms: int) -> int:
        """Extend every named lock still holding ``token`` (one round trip); returns how many."""
        if not names:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            self._extend(keys=[f"{self.ns}:lock:{name}"], args=[token, ttl_ms], client=pipe)
        return sum(int(r) for r in pipe.execute())

    @contextmanager
    def locks(self, names: Sequence[str], ttl_ms: int = 60_000, wait_s: float = 30.0) -> Iterator[None]:
        """Hold every named lock for the block, waiting (bounded) for ones held elsewhere.

        All or nothing: a partial set is released before waiting again, so two workers wanting overlapping sets
        can never hold one part each and wait for each other forever.
        """
        wanted = list(dict.fromkeys(names))
        held: dict[str, str] = {}
        deadline = time.monotonic() + wait_s
        delay = 0.005
        try:
            while True:
                held = self.try_lock(wanted, ttl_ms)
                if len(held) == len(wanted):
                    break
                missing = [n for n in wanted if n not in held]
                self.release(held)
                held = {}
                if time.monotonic() > deadline:
                    raise LockNotAcquired(f"locks busy: {', '.join(missing[:5])}")
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.2)
            yield
        finally:
            self.release(held)

    # -- which system the state describes ---------------------------------------------------------------

    def systems(self, names: Sequence[str]) -> list[str | None]:
        """The identity each of ``names`` (a source, or ``posthog``) has its state recorded for; one round trip."""
        raw = cast(list[str | None], self.redis.mget([f"{self.ns}:system:{name}" for name in names]))
        return [str(json.loads(r)["id"]) if r else None for r in raw]

    def set_system(self, name: str, identity: str) -> None:
        self.redis.set(f"{self.ns}:system:{name}", json.dumps({"id": identity, "at": time.time()}))

    def system_record(self, name: str) -> dict[str, Any] | None:
        """The whole ``system:<name>`` record (identity, when recorded, and what was learnt about that system)."""
        raw = cast(str | None, self.redis.get(f"{self.ns}:system:{name}"))
        return cast(dict[str, Any], json.loads(raw)) if raw else None

    def note_system(self, name: str, identity: str, **facts: Any) -> bool:
        """Add ``facts`` to the record of ``name`` if it still describes ``identity`` (checked and set in one
        script, so a rebind to another system in between is never overwritten); False when it does not."""
        args = [identity, json.dumps(facts), str(time.time())]
        return bool(self._note_system(keys=[f"{self.ns}:system:{name}"], args=args))

    def state_of(self, name: str) -> dict[str, list[str]]:
        """Every key of ``name``'s state by family (one SCAN of the namespace): a source's keys, or for
        ``posthog`` every key but the kept families (PostHog state is what every link points into)."""
        self.ready()
        found: dict[str, list[str]] = {}
        for key in self.redis.scan_iter(match=f"{self.ns}:*", count=1000):
            owner, family = owner_of(str(key)[len(self.ns) + 1 :])
            if owner is not None and (name == "posthog" or owner == name):
                found.setdefault(family, []).append(str(key))
        return found

    def count_state(self, found: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """Entries by family of ``state_of``'s keys: a bucket counts its fields (one pipelined ``HLEN`` each), any
        other key counts one."""
        buckets = [key for family in ("rec", "idx") for key in found.get(family, ())]
        pipe = self.redis.pipeline(transaction=False)
        for key in buckets:
            pipe.hlen(key)
        sizes = dict(zip(buckets, pipe.execute() if buckets else [], strict=True))
        return {family: sum(int(sizes.get(k, 1)) for k in keys) for family, keys in sorted(found.items())}

    def parked_of(self, source: str, limit: int = 1_000_000) -> list[str]:
        """Ids of the dead-letter entries of ``source``."""
        return [entry_id for entry_id, entry in self.dead_letters(limit) if entry.get("source") == source]

    def drop_state(self, name: str, batch: int = 500) -> dict[str, int]:
        """Delete ``name``'s state (see ``state_of``; for a source also its dead-letter entries); counts by family."""
        found = self.state_of(name)
        counts = self.count_state(found)
        keys = [key for family in found.values() for key in family]
        for start in range(0, len(keys), batch):
            self.redis.delete(*keys[start : start + batch])
        if name != "posthog":
            parked = self.parked_of(name)
            if parked:
                counts["dlq"] = self.drop_dead_letters(parked)
        return counts

    # -- streams: run reports and the dead-letter queue ----------------------------------------------------

    def append_run(self, report: Mapping[str, Any], maxlen: int = 1000) -> str:
        return str(self.redis.xadd(f"{self.ns}:runs", {"report": json.dumps(report)}, maxlen=maxlen))

    def recent_runs(self, count: int = 20) -> list[dict[str, Any]]:
        return [report for _, report in self.run_entries(count)]

    def run_entries(self, count: int = 20) -> list[tuple[str, dict[str, Any]]]:
        """The newest run reports with their stream ids (newest first): the id addresses one run (``run``)."""
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrevrange(f"{self.ns}:runs", count=count))
        return [(entry_id, json.loads(fields["report"])) for entry_id, fields in entries]

    def run(self, entry_id: str) -> dict[str, Any] | None:
        """One run report by its stream id (``XRANGE id id``), None when it is not (or no longer) in the stream."""
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrange(f"{self.ns}:runs", entry_id, entry_id))
        return json.loads(entries[0][1]["report"]) if entries else None

    def park(self, entries: Sequence[Mapping[str, Any]], maxlen: int = 100_000) -> list[str]:
        """Add records that could not be applied to the dead-letter stream (one round trip)."""
        if not entries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(f"{self.ns}:dlq", {"entry": json.dumps(entry)}, maxlen=maxlen)
        return [str(i) for i in pipe.execute()]

    def dead_letters(self, count: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrange(f"{self.ns}:dlq", count=count))
        return [(entry_id, json.loads(fields["entry"])) for entry_id, fields in entries]

    def dlq_size(self) -> int:
        return cast(int, self.redis.xlen(f"{self.ns}:dlq"))

    def drop_dead_letters(self, entry_ids: Sequence[str]) -> int:
        return cast(int, self.redis.xdel(f"{self.ns}:dlq", *entry_ids)) if entry_ids else 0
