"""The Redis idempotency ledger: what crmsync applied, wrote, linked and saw, so every step is safe to repeat.

One namespace per PostHog project (``crmsync:<project>``); layout 2 (``sync.ledger_layout``). ``Ledger`` is built
from parts, one module per job: its core (record types, the record, index and account keys, the layout check:
``sync.ledger_core``), the batch reads and the batch commit of records, index and accounts (here), locks
(``sync.ledger_locks``), cursors, seen webhook events, system records and state drop (``sync.ledger_state``), and
the run reports and dead letters streams (``sync.ledger_runs``). Every key is named in ``sync.keys``.

An ``AccountEntry`` also holds the role holders where PostHog keeps them on relationships (``sync/roles.py``), and
PostHog's system record also its API generation (``sync/posthog/generation.py``).

Every batch operation is one round trip and one command per record at most (``MGET``, one script reading every
bucket field of the batch, or one pipelined ``MULTI``/``EXEC``), whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import cast

from sync.keys import owner_of
from sync.ledger_core import AccountEntry, LedgerCore, LockNotAcquired, RecordEntry, RecordKey, delete_keys
from sync.ledger_layout import (
    ACCOUNT_PARTS,
    RECORD_PARTS,
    compact_fp,
    decode_entry,
    decode_id,
    decode_record,
    decode_seen,
    encode_entry,
    encode_id,
    encode_record,
    encode_seen,
    split_account,
    split_record,
)
from sync.ledger_locks import LedgerLocks, lock_owner
from sync.ledger_state import LedgerState
from sync.posthog.models import Account

__all__ = [
    "AccountEntry",
    "Ledger",
    "LedgerCore",
    "LockNotAcquired",
    "RecordEntry",
    "RecordKey",
    "delete_keys",
    "lock_owner",
    "owner_of",
]


class Ledger(LedgerLocks, LedgerState):
    """Typed access to the ledger keys of one PostHog project."""

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
        return self._suffixes(self.keys.prefix("a"))

    def search_index(self, pattern: str, limit: int) -> list[tuple[str, str, str]]:
        """``(kind, value, account id)`` of at most ``limit`` index entries whose value matches the glob ``pattern``
        (a SCAN of the index buckets, ``HSCAN MATCH`` in each: for the status page's search, not per batch)."""
        self.ready()
        prefix = self.keys.prefix("x")
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
        prefix = self.keys.prefix("a")
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
        return sorted(self._records(self.keys.match("r", source, obj)))

    def record_count(self) -> int:
        """How many records of every source the ledger holds an entry for (a SCAN of the record buckets)."""
        return len(self._records(self.keys.match("r")))

    def _records(self, pattern: str) -> list[str]:
        """Record ids with an entry (not only an outbound fingerprint) in the buckets matching ``pattern``."""
        self.ready()
        buckets = list(self.redis.scan_iter(match=pattern, count=1000, _type="hash"))
        pipe = self.redis.pipeline(transaction=False)
        for key in buckets:
            pipe.hgetall(key)
        found = cast(list[dict[str, str]], pipe.execute() if buckets else [])
        return [rid for fields in found for rid, raw in fields.items() if split_record(raw)[0]]
