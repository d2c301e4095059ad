"""The ledger's per-system state outside the record buckets: cursors, seen webhook events, the account index
watermark, PostHog's tagging support, which system each state describes, and dropping one system's state."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, cast

from redis.commands.core import Script

from sync.keys import BUCKETED, POSTHOG, owner_of
from sync.ledger_runs import LedgerRuns

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


class LedgerState(LedgerRuns):
    """Cursors, webhook events, system records and state drop."""

    @cached_property
    def _note_system(self) -> Script:
        return self.redis.register_script(_NOTE_SYSTEM)

    # -- account index watermark ----------------------------------------------------------------------

    def index_watermark(self) -> str | None:
        raw = cast(str | None, self.redis.get(self.keys.idxmeta()))
        return str(json.loads(raw)["watermark"]) if raw else None

    def set_index_watermark(self, watermark: str) -> None:
        self.redis.set(self.keys.idxmeta(), json.dumps({"watermark": watermark, "at": time.time()}))

    # -- PostHog without its tagging feature ---------------------------------------------------------------

    def tagging_unsupported(self) -> dict[str, Any] | None:
        """``{"mapping": fingerprint, "at": epoch}`` when PostHog was found dropping the tags we wrote."""
        raw = cast(str | None, self.redis.get(self.keys.notags()))
        return cast(dict[str, Any], json.loads(raw)) if raw else None

    def mark_tagging_unsupported(self, mapping_fp: str) -> None:
        self.redis.set(self.keys.notags(), json.dumps({"mapping": mapping_fp, "at": time.time()}))

    # -- cursors -----------------------------------------------------------------------------------------

    def get_cursor(self, source: str, stream: str) -> str | None:
        return cast(str | None, self.redis.get(self.keys.cursor(source, stream)))

    def set_cursor(self, source: str, stream: str, raw: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.cursor(source, stream), raw)
        pipe.set(self.keys.cursor_at(source, stream), repr(time.time()))
        pipe.execute()

    def cursor_written_at(self, source: str, stream: str) -> float | None:
        """When the cursor was last committed (epoch seconds), for ``crmsync status``."""
        raw = cast(str | None, self.redis.get(self.keys.cursor_at(source, stream)))
        return float(raw) if raw else None

    def clear_cursor(self, source: str, stream: str) -> None:
        self.redis.delete(self.keys.cursor(source, stream))

    # -- webhook events ------------------------------------------------------------------------------------

    def first_sightings(self, source: str, event_ids: Sequence[str], ttl_s: int = 7 * 24 * 3600) -> list[bool]:
        """Mark events as seen (``SET NX EX``, one round trip); True for each id not seen before."""
        if not event_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self.keys.evt(source, event_id), "1", nx=True, ex=ttl_s)
        return [bool(r) for r in pipe.execute()]

    # -- locks -----------------------------------------------------------------------------------------------
    # -- which system the state describes ---------------------------------------------------------------

    def systems(self, names: Sequence[str]) -> list[str | None]:
        """The identity each of ``names`` (a source, or ``posthog``) has its state recorded for; one round trip."""
        raw = cast(list[str | None], self.redis.mget([self.keys.system(name) for name in names]))
        return [str(json.loads(r)["id"]) if r else None for r in raw]

    def set_system(self, name: str, identity: str) -> None:
        self.redis.set(self.keys.system(name), json.dumps({"id": identity, "at": time.time()}))

    def system_record(self, name: str) -> dict[str, Any] | None:
        """The whole ``system:<name>`` record (identity, when recorded, and what was learnt about that system)."""
        raw = cast(str | None, self.redis.get(self.keys.system(name)))
        return cast(dict[str, Any], json.loads(raw)) if raw else None

    def note_system(self, name: str, identity: str, **facts: Any) -> bool:
        """Add ``facts`` to the record of ``name`` if it still describes ``identity`` (checked and set in one
        script, so a rebind to another system in between is never overwritten); False when it does not."""
        args = [identity, json.dumps(facts), str(time.time())]
        return bool(self._note_system(keys=[self.keys.system(name)], args=args))

    def state_of(self, name: str) -> dict[str, list[str]]:
        """Every key of ``name``'s state by family (one SCAN of the namespace), as ``sync.keys`` assigns keys to
        states: a source's keys (``State.SOURCE`` families naming it), or for ``posthog`` every key of the
        ``source`` and ``posthog`` states (PostHog state is what every link points into), never a plan's or the
        project's (run history, counters, live locks, task leases, the layout)."""
        self.ready()
        found: dict[str, list[str]] = {}
        for key in self.redis.scan_iter(match=self.keys.match(), count=1000):
            owner, family = owner_of(str(key)[len(self.ns) + 1 :])
            if owner is not None and (name == POSTHOG or owner == name):
                found.setdefault(family, []).append(str(key))
        return found

    def count_state(self, found: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """Entries by family of ``state_of``'s keys: a bucket counts its fields (one pipelined ``HLEN`` each), any
        other key counts one."""
        buckets = [key for family in BUCKETED for key in found.get(family, ())]
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
        if name != POSTHOG:
            parked = self.parked_of(name)
            if parked:
                counts["dlq"] = self.drop_dead_letters(parked)
        return counts
