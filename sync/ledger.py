"""The Redis idempotency ledger: what crmsync applied, wrote, linked and saw, so every step is safe to repeat.

Keys (one namespace per PostHog project, ``<ns>`` = ``crmsync:<project>``):

| key | value |
|---|---|
| ``<ns>:rec:<source>:<object>:<id>`` | JSON ``RecordEntry``: last applied mapping's fingerprint, account id |
| ``<ns>:acct:<account id>`` | JSON ``AccountEntry``: provenance per field, tags per source, last written fingerprint, |
| | when each field last changed, each source's value where it differs from the account's |
| ``<ns>:idx:<kind>:<value>`` | account id, for kind ``external_id`` or a CRM id property (``sfdc_id``, ...) |
| ``<ns>:idxmeta`` | JSON: the account index watermark (``updated_at`` of the newest account indexed) |
| ``<ns>:seen:<account id>`` | the account as PostHog last showed it (``updated_at``, newline, JSON) |
| ``<ns>:notags`` | JSON: PostHog dropped our tags (no tagging feature), for this mapping fingerprint, since when |
| ``<ns>:out:<source>:<object>:<id>`` | fingerprint of what was last pushed to that CRM record |
| ``<ns>:cursor:<source>:<stream>`` | committed incremental cursor |
| ``<ns>:evt:<source>:<event id>`` | a webhook event already seen (``SET NX`` with a TTL) |
| ``<ns>:system:<source or posthog>`` | JSON: the identity of the system that source's state was recorded for |
| ``<ns>:lock:<name>`` | a lock token with an expiry (per account, per (source, stream) run) |
| ``<ns>:runs``, ``<ns>:dlq`` | streams: run reports; parked records with their reasons |

Every batch operation is one round trip (``MGET`` or one pipelined ``MULTI``/``EXEC``), whatever the batch size.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from sync.errors import RetryableError
from sync.posthog.models import Account, account_ts

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

_SEEN_IF_NEWER = """
local stored = 0
for i, key in ipairs(KEYS) do
  local value = ARGV[i]
  local ts = string.match(value, "^[^\\n]*")
  local current = redis.call('GET', key)
  if current == false or string.match(current, "^[^\\n]*") <= ts then
    redis.call('SET', key, value)
    stored = stored + 1
  end
end
return stored
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


def _seen_value(account: Account) -> str:
    """``updated_at`` (sortable: ISO 8601, microseconds, UTC) on the first line, the account's JSON after it."""
    return f"{account_ts(account)}\n{account.model_dump_json(exclude_unset=True)}"


KEPT_FAMILIES = frozenset({"runs", "metrics", "lock", "plan"})
"""Key families no state drop touches: run history, counters, live locks and plans being written (work in
progress: a running task holds them, and a plan is bound to its systems before it stages anything)."""
SOURCE_FAMILIES = ("rec", "out", "cursor", "cursor_at", "pending", "claim", "evt", "system")
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
        return parts[1], family
    return "posthog", family


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
    changed: dict[str, int] = field(default_factory=dict)  # target → when crmsync last changed it (epoch seconds)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # source → {target: its value}, kept only while
    # that value differs from the account's (a source whose value is the account's has no entry): for the status page


@dataclass(frozen=True)
class RecordKey:
    source: str
    object: str
    id: str


lock_owner: ContextVar[str | None] = ContextVar("crmsync_lock_owner", default=None)
"""Who takes locks in this context: the Celery task id while a task runs (set by ``workers.tasks``)."""


class LockNotAcquired(RetryableError):
    """Another worker holds the lock; try again shortly."""


class Ledger:
    """Typed access to the ledger keys of one PostHog project."""

    def __init__(self, client: redis.Redis, project_id: int, prefix: str = "crmsync") -> None:
        self.redis = client
        self.ns = f"{prefix}:{project_id}"
        self._release_many = client.register_script(_RELEASE_MANY)
        self._acquire = client.register_script(_ACQUIRE)
        self._extend = client.register_script(_EXTEND)
        self._seen_if_newer = client.register_script(_SEEN_IF_NEWER)

    # -- keys ------------------------------------------------------------------------------------------

    def rec_key(self, key: RecordKey) -> str:
        return f"{self.ns}:rec:{key.source}:{key.object}:{key.id}"

    def acct_key(self, account_id: str) -> str:
        return f"{self.ns}:acct:{account_id}"

    def idx_key(self, kind: str, value: str) -> str:
        return f"{self.ns}:idx:{kind}:{value}"

    def seen_key(self, account_id: str) -> str:
        return f"{self.ns}:seen:{account_id}"

    def out_key(self, key: RecordKey) -> str:
        return f"{self.ns}:out:{key.source}:{key.object}:{key.id}"

    # -- batch reads: one round trip each ----------------------------------------------------------------

    def get_records(self, keys: Sequence[RecordKey]) -> list[RecordEntry | None]:
        raw = self._mget([self.rec_key(k) for k in keys])
        return [RecordEntry(**json.loads(r)) if r else None for r in raw]

    def get_accounts(self, account_ids: Sequence[str]) -> list[AccountEntry]:
        raw = self._mget([self.acct_key(a) for a in account_ids])
        return [AccountEntry(**json.loads(r)) if r else AccountEntry() for r in raw]

    def lookup(self, pairs: Sequence[tuple[str, str]]) -> list[str | None]:
        """Account ids for (kind, value) pairs of the account index, None where unknown."""
        return self._mget([self.idx_key(kind, value) for kind, value in pairs])

    def get_seen(self, account_ids: Sequence[str]) -> list[Account | None]:
        """The accounts as PostHog last showed them (on our last write or in the last walk of changed accounts),
        None where unknown: what a PATCH starts from instead of a GET."""
        raw = self._mget([self.seen_key(a) for a in account_ids])
        return [Account.model_validate_json(r.split("\n", 1)[1]) if r else None for r in raw]

    def remember_seen(self, accounts: Iterable[Account]) -> int:
        """Store accounts as just read from PostHog, each only if not older than what is stored (one round trip):
        a listing read before a worker's write never overwrites the newer state that write returned."""
        values = {self.seen_key(a.id): _seen_value(a) for a in accounts}
        if not values:
            return 0
        return int(self._seen_if_newer(keys=list(values), args=list(values.values())))

    def get_outbound(self, keys: Sequence[RecordKey]) -> list[str | None]:
        return self._mget([self.out_key(k) for k in keys])

    def _mget(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        return cast(list[str | None], self.redis.mget(keys))

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
        own writes just returned them (newest by construction: the writer holds the account's lock)."""
        pipe = self.redis.pipeline(transaction=True)
        for key, entry in (records or {}).items():
            pipe.set(self.rec_key(key), json.dumps(asdict(entry), separators=(",", ":")))
        for account_id, acct in (accounts or {}).items():
            pipe.set(self.acct_key(account_id), json.dumps(asdict(acct), separators=(",", ":")))
        for (kind, value), account_id in (index or {}).items():
            pipe.set(self.idx_key(kind, value), account_id)
        for kind, value in unindex:
            pipe.delete(self.idx_key(kind, value))
        for key in forget:
            pipe.delete(self.rec_key(key))
        for key, fp in (outbound or {}).items():
            pipe.set(self.out_key(key), fp)
        for account in seen:
            pipe.set(self.seen_key(account.id), _seen_value(account))
        if len(pipe):
            pipe.execute()

    def forget_account(self, account_id: str, index_pairs: Iterable[tuple[str, str]]) -> None:
        """Drop an account that no longer exists in PostHog from the index and provenance."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.acct_key(account_id), self.seen_key(account_id))
        for kind, value in index_pairs:
            pipe.delete(self.idx_key(kind, value))
        pipe.execute()

    def account_ids(self) -> list[str]:
        """Every account the ledger holds an entry for (a SCAN: for reconciliation, not per batch)."""
        return self._suffixes(f"{self.ns}:acct:")

    def record_ids(self, source: str, obj: str) -> list[str]:
        """Ids of every record of ``source``/``obj`` the ledger knows (a SCAN: for reconciliation, not per batch)."""
        return self._suffixes(f"{self.ns}:rec:{source}:{obj}:")

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
        raw = self._mget([f"{self.ns}:system:{name}" for name in names])
        return [str(json.loads(r)["id"]) if r else None for r in raw]

    def set_system(self, name: str, identity: str) -> None:
        self.redis.set(f"{self.ns}:system:{name}", json.dumps({"id": identity, "at": time.time()}))

    def state_of(self, name: str) -> dict[str, list[str]]:
        """Every key of ``name``'s state by family (one SCAN of the namespace): a source's keys, or for
        ``posthog`` every key but the kept families (PostHog state is what every link points into)."""
        found: dict[str, list[str]] = {}
        for key in self.redis.scan_iter(match=f"{self.ns}:*", count=1000):
            owner, family = owner_of(str(key)[len(self.ns) + 1 :])
            if owner is not None and (name == "posthog" or owner == name):
                found.setdefault(family, []).append(str(key))
        return found

    def parked_of(self, source: str, limit: int = 1_000_000) -> list[str]:
        """Ids of the dead-letter entries of ``source``."""
        return [entry_id for entry_id, entry in self.dead_letters(limit) if entry.get("source") == source]

    def drop_state(self, name: str, batch: int = 500) -> dict[str, int]:
        """Delete ``name``'s state (see ``state_of``; for a source also its dead-letter entries); counts by family."""
        found = self.state_of(name)
        keys = [key for family in found.values() for key in family]
        for start in range(0, len(keys), batch):
            self.redis.delete(*keys[start : start + batch])
        counts = {family: len(members) for family, members in sorted(found.items())}
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
