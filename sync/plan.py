"""Plan before write: a sync of several sources reads everything first, then writes each account once.

PostHog has no bulk write and a budget of 4,800 requests an hour per key, so the floor of a first sync is one
request per account. Applied source by source, an account held by three CRMs costs three writes; planned, one:

1. **Stage** (``SyncEngine.stage_plan``): every page of every stream is mapped, unchanged records are dropped, the
   rest resolved to an account and staged in Redis under a *group key*: the account id, ``ext:<external_id>`` for
   an account still to create, or ``rec:<source>:<id>`` for a record with nothing to match on. One pipelined round
   trip per page; the worker holds no more than a page in memory, whatever the number of records.
2. **Write** (``SyncEngine.write_plan_chunk``): the groups, in chunks of ``chunk_size``, are written each account
   once with the fields of all its sources (one POST for a new account, one PATCH for an existing one), then
   pushed back. Chunks are independent: one worker writes them all, or each is a Celery task of its own
   (``crmsync.write_plan``), every one drawing on the shared PostHog budget. A chunk run twice (redelivered,
   resumed after a throttle) skips what its first run applied, by fingerprint.
3. **Finish** (``SyncEngine.finish_plan``): once every chunk is done, the streams' cursors are committed and the
   write phase's report stored. Until then cursors stay where they were, so an abandoned plan is staged anew by
   the next sync; its keys expire after ``PLAN_TTL_S`` without progress.

Keys under ``<ns>:plan:<plan id>:`` (``sync.keys``, ``ProjectKeys.plan``)

| key | holds |
|---|---|
| ``meta`` | hash: mode, chunk size, number of chunks once sealed, ``cursor:<source>:<stream>``, ``finished`` |
| ``groups`` | sorted set: group keys in staging order (chunk k is a stable index range) |
| ``g:<group key>`` | list: that account's staged items (JSON: the CRM record, its resolved account) |
| ``done`` | set: numbers of the chunks written |
| ``counts``, ``errors``, ``review`` | the write phase's report, summed over chunks |
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sync.connector import CrmRecord
from sync.ledger import Ledger, delete_keys

PLAN_TTL_S = 7 * 24 * 3600
MAX_ERRORS_KEPT = 1000


@dataclass(frozen=True)
class StagedItem:
    """One changed record waiting in a plan, with the account it resolved to (None: to be created)."""

    record: CrmRecord
    account_id: str | None
    domain_owner: str | None = None

    def dump(self) -> str:
        r = self.record
        return json.dumps(
            {
                "s": r.source,
                "o": r.object,
                "i": r.id,
                "f": r.fields,
                "v": r.version,
                "m": r.modified_at.isoformat() if r.modified_at else None,
                "d": r.deleted,
                "g": list(r.merged_ids),
                "k": r.link_rank,
                "a": self.account_id,
                "w": self.domain_owner,
            },
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, raw: str) -> StagedItem:
        d = json.loads(raw)
        record = CrmRecord(
            source=d["s"],
            object=d["o"],
            id=d["i"],
            fields=d["f"],
            version=d["v"],
            modified_at=datetime.fromisoformat(d["m"]) if d["m"] else None,
            deleted=d["d"],
            merged_ids=tuple(d["g"]),
            link_rank=d["k"],
        )
        return cls(record, d["a"], d["w"])


class PlanStore:
    """The Redis side of one plan: staged groups, chunk bookkeeping, pending cursors, the summed report."""

    def __init__(self, ledger: Ledger, plan_id: str) -> None:
        self.ledger = ledger
        self.redis = ledger.redis
        self.id = plan_id
        self._prefix = ledger.keys.prefix("plan", plan_id)
        self._staged = 0

    @classmethod
    def create(cls, ledger: Ledger, mode: str, chunk_size: int, plan_id: str | None = None) -> PlanStore:
        """A new plan; with ``plan_id`` (a task's, taken up again after its worker died), whatever an earlier
        attempt staged under that id is dropped first: staging starts over from the committed cursors."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        store = cls(ledger, plan_id or uuid.uuid4().hex[:16])
        if plan_id is not None:
            store.drop()  # a SCAN: only when an id is given, i.e. when a task stages again
        store.redis.hset(store._key("meta"), mapping={"mode": mode, "chunk_size": chunk_size})
        store.redis.expire(store._key("meta"), PLAN_TTL_S)
        return store

    def _key(self, suffix: str) -> str:
        return self.ledger.keys.plan(self.id, suffix)

    def _meta(self, field: str) -> str | None:
        return cast(str | None, self.redis.hget(self._key("meta"), field))

    def exists(self) -> bool:
        return bool(self.redis.exists(self._key("meta")))

    @property
    def mode(self) -> str:
        return self._meta("mode") or "full"

    @property
    def chunk_size(self) -> int:
        return int(self._meta("chunk_size") or 1)

    @property
    def chunks(self) -> int:
        return int(self._meta("chunks") or 0)

    @property
    def sealed(self) -> bool:
        """Staged to the end (``seal``): its chunks may be written."""
        return self._meta("chunks") is not None

    def chunks_left(self) -> list[int]:
        """Numbers of the chunks not written yet."""
        done = {int(n) for n in cast(set[str], self.redis.smembers(self._key("done")))}
        return [n for n in range(self.chunks) if n not in done]

    # -- phase 1 --------------------------------------------------------------------------------------------

    def stage(self, groups: Mapping[str, Sequence[StagedItem]], cursor: tuple[str, str, str] | None) -> None:
        """Stage one page: its items under their group keys, and the stream's cursor after it. One round trip."""
        pipe = self.redis.pipeline(transaction=True)
        order: dict[str, float] = {}
        for key, items in groups.items():
            self._staged += 1
            order[key] = self._staged
            pipe.rpush(self._key(f"g:{key}"), *(i.dump() for i in items))
            pipe.expire(self._key(f"g:{key}"), PLAN_TTL_S)
        if order:
            pipe.zadd(self._key("groups"), order, nx=True)  # a group met again keeps its first place
            pipe.expire(self._key("groups"), PLAN_TTL_S)
        if cursor is not None:
            source, stream, raw = cursor
            pipe.hset(self._key("meta"), f"cursor:{source}:{stream}", raw)
        if len(pipe):
            pipe.execute()

    def seal(self) -> int:
        """End staging: fix the number of chunks (returned)."""
        groups = cast(int, self.redis.zcard(self._key("groups")))
        chunks = math.ceil(groups / self.chunk_size)
        self.redis.hset(self._key("meta"), "chunks", str(chunks))
        return chunks

    # -- phase 2 --------------------------------------------------------------------------------------------

    def chunk(self, number: int) -> list[StagedItem]:
        """The staged items of chunk ``number`` (two round trips)."""
        start = number * self.chunk_size
        keys = cast(list[str], self.redis.zrange(self._key("groups"), start, start + self.chunk_size - 1))
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.lrange(self._key(f"g:{key}"), 0, -1)
        return [StagedItem.load(raw) for rows in pipe.execute() for raw in rows]

    def chunk_done(
        self, number: int, counts: Mapping[str, int], errors: Iterable[Mapping[str, Any]], review: Iterable[Any]
    ) -> int:
        """Add a chunk's counts, errors and review items to the plan's report and mark it done; returns how many
        chunks are done (one MULTI/EXEC). Also used for the partial counts of a chunk stopped by a throttle, with
        ``number`` -1 (counted, not done)."""
        pipe = self.redis.pipeline(transaction=True)
        for name, n in counts.items():
            if n:
                pipe.hincrby(self._key("counts"), name, n)
        for error in errors:
            pipe.rpush(self._key("errors"), json.dumps(error))
        pipe.ltrim(self._key("errors"), 0, MAX_ERRORS_KEPT - 1)
        for item in review:
            pipe.rpush(self._key("review"), json.dumps(item))
        if number >= 0:
            pipe.sadd(self._key("done"), number)
        for suffix in ("meta", "groups", "done", "counts", "errors", "review"):
            pipe.expire(self._key(suffix), PLAN_TTL_S)
        pipe.scard(self._key("done"))
        return int(pipe.execute()[-1])

    # -- phase 3 --------------------------------------------------------------------------------------------

    def remember_locks(self, names: Sequence[str]) -> None:
        """The run locks the plan holds (token: the plan id), released at its finish."""
        self.redis.hset(self._key("meta"), "locks", json.dumps(list(names)))

    def locks(self) -> list[str]:
        return [str(n) for n in json.loads(self._meta("locks") or "[]")]

    def claim_finish(self) -> bool:
        """True for exactly one caller: the one that finishes the plan."""
        return bool(self.redis.hsetnx(self._key("meta"), "finished", "1"))

    def cursors(self) -> dict[tuple[str, str], str]:
        """The cursor each staged stream reached: committed at the finish, never before."""
        meta = cast(dict[str, str], self.redis.hgetall(self._key("meta")))
        out: dict[tuple[str, str], str] = {}
        for name, raw in meta.items():
            if name.startswith("cursor:"):
                source, stream = name.removeprefix("cursor:").split(":", 1)
                out[(source, stream)] = raw
        return out

    def report_parts(self) -> tuple[dict[str, int], list[dict[str, Any]], list[Any]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self._key("counts"))
        pipe.lrange(self._key("errors"), 0, -1)
        pipe.lrange(self._key("review"), 0, -1)
        counts, errors, review = pipe.execute()
        return (
            {k: int(v) for k, v in counts.items()},
            [json.loads(e) for e in errors],
            [json.loads(r) for r in review],
        )

    @classmethod
    def live(cls, ledger: Ledger) -> list[PlanStore]:
        """Every plan staged and not yet finished (a SCAN: for ``crmsync status``, not a sync's path)."""
        prefix = ledger.keys.prefix("plan")
        metas = ledger.redis.scan_iter(match=f"{prefix}*:meta", count=1000)
        return [cls(ledger, str(key)[len(prefix) : -len(":meta")]) for key in metas]

    def accounts_left(self) -> int:
        """Accounts staged and not yet written (each about one PostHog request: its POST or PATCH)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self._key("groups"))
        pipe.smembers(self._key("done"))
        groups, done = pipe.execute()
        size = self.chunk_size
        written = sum(min(size, int(groups) - int(n) * size) for n in done)
        return max(0, int(groups) - written)

    def drop(self) -> int:
        return delete_keys(self.redis, self._prefix + "*")
