"""Server-side query cursors behind ``nextRecordsUrl``.

A query whose result does not fit one batch keeps its rows here under a query locator (``01g...``); the
next page is ``/services/data/vXX.X/query/<locator>-<offset>``. As on the real platform: a cursor is a
snapshot taken when the query ran, it expires after 15 minutes without use, and a user holds at most 10
open cursors (opening an eleventh releases the oldest). An unknown, expired or out-of-range locator answers
400 ``INVALID_QUERY_LOCATOR``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce import ids
from sandbox.salesforce.errors import SalesforceError

IDLE_TIMEOUT_S = 15 * 60
MAX_OPEN_PER_USER = 10


@dataclass
class Cursor:
    locator: str
    user_id: str
    records: list[dict[str, Any]]
    batch_size: int
    last_used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Page:
    """One batch of a query result and where the next one starts (None when done)."""

    total_size: int
    records: list[dict[str, Any]]
    next_locator: str | None


def invalid_locator() -> SalesforceError:
    return SalesforceError.one(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


class CursorStore:
    """Open cursors, oldest first. Thread-safe."""

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._counter = 0
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def open_count(self) -> int:
        with self._lock:
            return len(self._cursors)

    def first_page(self, records: list[dict[str, Any]], batch_size: int, user_id: str) -> Page:
        """The first batch of ``records``; opens a cursor when more remain."""
        if len(records) <= batch_size:
            return Page(len(records), records, None)
        with self._lock:
            self._expire()
            self._counter += 1
            locator = ids.make_id(ids.QUERY_LOCATOR_PREFIX, "Sd", self._counter)
            self._cursors[locator] = Cursor(locator, user_id, records, batch_size)
            mine = [c for c in self._cursors.values() if c.user_id == user_id]
            for stale in mine[: max(0, len(mine) - MAX_OPEN_PER_USER)]:
                del self._cursors[stale.locator]
        return Page(len(records), records[:batch_size], f"{locator}-{batch_size}")

    def next_page(self, token: str, user_id: str) -> Page:
        """The batch at ``<locator>-<offset>``."""
        locator, sep, offset_text = token.rpartition("-")
        if not sep or not offset_text.isdigit():
            raise invalid_locator()
        offset = int(offset_text)
        canonical = ids.normalize_id(locator)
        with self._lock:
            self._expire()
            cursor = self._cursors.get(canonical or "")
            if cursor is None or cursor.user_id != user_id or offset > len(cursor.records):
                raise invalid_locator()
            cursor.last_used = time.monotonic()
            self._cursors.move_to_end(cursor.locator)
        end = offset + cursor.batch_size
        batch = cursor.records[offset:end]
        next_locator = f"{cursor.locator}-{end}" if end < len(cursor.records) else None
        return Page(len(cursor.records), batch, next_locator)

    def _expire(self) -> None:
        deadline = time.monotonic() - IDLE_TIMEOUT_S
        for locator in [k for k, c in self._cursors.items() if c.last_used < deadline]:
            del self._cursors[locator]
