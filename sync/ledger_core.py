"""The ledger's core: its record types, the keys of its per-record and per-account state, and the layout check
every batch makes first (``Ledger.ready``). ``sync.ledger`` assembles the whole ledger from this and its parts
(``sync.ledger_locks``, ``sync.ledger_state``, ``sync.ledger_runs``)."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from sync.errors import RetryableError
from sync.keys import ProjectKeys, namespace
from sync.ledger_layout import ACCOUNT_PARTS, BUCKETS, LAYOUT, bucket, migrate_legacy, parse_layout

log = logging.getLogger("sync.ledger")

_HGET_MANY = """
local values = {}
for i, key in ipairs(KEYS) do
  values[i] = redis.call('HGET', key, ARGV[i])
end
return values
"""


def delete_keys(client: redis.Redis, pattern: str, batch: int = 500) -> int:
    """Delete every key matching ``pattern`` (SCAN, then DEL in batches); returns how many. For tearing down a
    namespace (tests, the demo), never on a sync's path."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), batch):
        client.delete(*keys[start : start + batch])
    return len(keys)


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


class LockNotAcquired(RetryableError):
    """Another worker holds the lock; try again shortly."""


class LedgerCore:
    """The ledger's client, namespace and bucket count, the keys of its records, index and accounts, and the layout
    check; the parts of ``sync.ledger.Ledger`` build on it."""

    def __init__(self, client: redis.Redis, project_id: int, prefix: str = "crmsync", buckets: int = BUCKETS) -> None:
        """``buckets``: the bucket count if this ledger is new (an existing ledger keeps its own, see ``ready``)."""
        self.redis = client
        self.ns = namespace(project_id, prefix)
        self.keys = ProjectKeys(self.ns)
        self._hget_many = client.register_script(_HGET_MANY)
        self._account_parts = client.register_script(ACCOUNT_PARTS)
        self.buckets = buckets  # a new ledger's; ``ready`` reads the ledger's own from ``<ns>:layout``

    # -- keys ------------------------------------------------------------------------------------------

    def rec_bucket(self, key: RecordKey) -> str:
        """The hash holding the record's entry and outbound fingerprint (``sync.ledger_layout``)."""
        return self.keys.rec_bucket(key.source, key.object, bucket(key.id, self.buckets))

    def idx_bucket(self, kind: str, value: str) -> str:
        return self.keys.idx_bucket(kind, bucket(value, self.buckets))

    def acct_key(self, account_id: str) -> str:
        """The account's one key: the account as PostHog last showed it, and its entry (``sync.ledger_layout``)."""
        return self.keys.acct(account_id)

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
        layout_key = self.keys.layout()
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(layout_key)
        for script in (self._hget_many, self._account_parts):
            pipe.script_load(script.script)
        buckets = parse_layout(pipe.execute()[0])
        deadline = time.monotonic() + wait_s
        while buckets is None:
            lock = self.keys.lock("layout")
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

    def _suffixes(self, prefix: str) -> list[str]:
        """What follows ``prefix`` in every key that starts with it (one SCAN)."""
        return sorted(str(k)[len(prefix) :] for k in self.redis.scan_iter(match=f"{prefix}*", count=1000))

    # -- account index watermark ----------------------------------------------------------------------
