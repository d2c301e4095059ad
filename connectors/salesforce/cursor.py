"""Where an incremental read of an sObject got to, and how one read moves it (testable apart from any I/O).

Rows are read in ``ORDER BY SystemModstamp, Id`` order, so a row's *position* is ``(SystemModstamp, Id)``. The
cursor keeps two positions:

- ``modstamp_ms`` / ``last_id``: the newest row read so far (what the cursor's ``sort_key`` orders by);
- ``settled_ms`` / ``settled_id``: every row at or before this position has been read *for good*. A row is
  settled once it was read while its ``SystemModstamp`` was at least ``overlap`` older than the server's clock:
  by then no transaction can still commit a row there, so nothing can appear behind it. ``settled_id = None``
  means every row at ``settled_ms`` is settled.

The next read starts strictly after the settled position. Rows between the settled position and the newest
row (those that were recent when read) are read again, so a row whose transaction committed late with an older
stamp is still seen; repeats are absorbed by the ledger. Because the settled position advances row by row (not
page by page), a read stopped early (allowance, crash) resumes exactly where it stopped, however many rows share
one ``SystemModstamp``: nothing is lost and nothing is read over and over. A quiet org is not re-read either:
once its newest rows are older than the overlap, the next read starts after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sync.connector import CrmRecord, Cursor

Position = tuple[int, int, str]
"""A comparable position: ``(epoch ms, 0, id)`` for one row, ``(epoch ms, 1, "")`` for every row at that ms."""


def position(modstamp_ms: int, record_id: str | None) -> Position:
    return (modstamp_ms, 1, "") if record_id is None else (modstamp_ms, 0, record_id)


class SalesforceCursor(Cursor):
    """The committed state of an incremental read (epoch milliseconds, UTC). See the module docstring."""

    modstamp_ms: int = 0
    last_id: str = ""
    settled_ms: int = 0
    settled_id: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        """Newest row first, then the settled position: both only ever move forward."""
        return (self.modstamp_ms, self.last_id, *position(self.settled_ms, self.settled_id))

    @property
    def settled(self) -> Position:
        return position(self.settled_ms, self.settled_id)


@dataclass
class ReadProgress:
    """How one query moves a cursor: feed it each page's records in order; ``cursor()`` is the state to commit.

    ``horizon_ms`` is the server's clock when the query ran, minus the overlap, floored to the second: rows
    stamped at or before it are settled as they are read, and when the query is done everything up to it is.
    """

    modstamp_ms: int
    last_id: str
    settled: Position
    horizon_ms: int

    @classmethod
    def start(cls, cursor: SalesforceCursor | None, horizon_ms: int) -> ReadProgress:
        if cursor is None:
            return cls(0, "", position(0, ""), horizon_ms)
        return cls(cursor.modstamp_ms, cursor.last_id, cursor.settled, horizon_ms)

    def advance(self, records: Iterable[CrmRecord], stamps: Iterable[int], done: bool) -> None:
        """Account for one page: its records (in query order) and their ``SystemModstamp`` in epoch ms."""
        for record, stamp in zip(records, stamps, strict=True):
            if (stamp, record.id) > (self.modstamp_ms, self.last_id):
                self.modstamp_ms, self.last_id = stamp, record.id
            if stamp <= self.horizon_ms:
                self.settled = max(self.settled, position(stamp, record.id))
        if done:
            self.settled = max(self.settled, position(self.horizon_ms, None))

    def cursor(self) -> SalesforceCursor:
        ms, whole, record_id = self.settled
        return SalesforceCursor(
            modstamp_ms=self.modstamp_ms,
            last_id=self.last_id,
            settled_ms=ms,
            settled_id=None if whole else record_id,
        )
