"""The ledger's streams: run reports (``<ns>:runs``) and the dead-letter queue (``<ns>:dlq``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sync.ledger_core import LedgerCore


class LedgerRuns(LedgerCore):
    """Run reports and parked records."""

    def append_run(self, report: Mapping[str, Any], maxlen: int = 1000) -> str:
        return str(self.redis.xadd(self.keys.runs(), {"report": json.dumps(report)}, maxlen=maxlen))

    def recent_runs(self, count: int = 20) -> list[dict[str, Any]]:
        return [report for _, report in self.run_entries(count)]

    def run_entries(self, count: int = 20) -> list[tuple[str, dict[str, Any]]]:
        """The newest run reports with their stream ids (newest first): the id addresses one run (``run``)."""
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrevrange(self.keys.runs(), count=count))
        return [(entry_id, json.loads(fields["report"])) for entry_id, fields in entries]

    def run(self, entry_id: str) -> dict[str, Any] | None:
        """One run report by its stream id (``XRANGE id id``), None when it is not (or no longer) in the stream."""
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrange(self.keys.runs(), entry_id, entry_id))
        return json.loads(entries[0][1]["report"]) if entries else None

    def park(self, entries: Sequence[Mapping[str, Any]], maxlen: int = 100_000) -> list[str]:
        """Add records that could not be applied to the dead-letter stream (one round trip)."""
        if not entries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(self.keys.dlq(), {"entry": json.dumps(entry)}, maxlen=maxlen)
        return [str(i) for i in pipe.execute()]

    def dead_letters(self, count: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        entries = cast(list[tuple[str, dict[str, str]]], self.redis.xrange(self.keys.dlq(), count=count))
        return [(entry_id, json.loads(fields["entry"])) for entry_id, fields in entries]

    def dlq_size(self) -> int:
        return cast(int, self.redis.xlen(self.keys.dlq()))

    def drop_dead_letters(self, entry_ids: Sequence[str]) -> int:
        return cast(int, self.redis.xdel(self.keys.dlq(), *entry_ids)) if entry_ids else 0
