"""Where a Zendesk read got to: a point on Zendesk's clock for the incremental organization export, and while the
first full read runs, the cursor-pagination position to resume it from.

The time-based incremental export (``GET /api/v2/incremental/organizations?start_time=``) answers the
organizations changed at or after ``start_time``, up to 1,000 a page, with ``end_time`` (the ``start_time`` of the
next page) and ``end_of_stream``. The cursor keeps that ``start_time``: every change before it is applied.

The first read is a full read with cursor pagination (``GET /api/v2/organizations?page[size]=100``); each committed
page stores ``after`` (the ``meta.after_cursor`` to resume from) and the ``start_time`` the export takes over from
once the full read ends (its first answer's ``Date`` less an overlap); the final page clears ``after``.
"""

from __future__ import annotations

from sync.connector import Cursor


class ZendeskCursor(Cursor):
    """The committed position of the ``organizations`` stream."""

    start_time: int
    """Unix seconds on Zendesk's clock: changes before it are applied."""
    after: str | None = None
    """Set while the full read is under way: the ``page[after]`` cursor of its next page."""
    pages: int = 0
    """Full-read pages committed so far (orders the cursors of one full read)."""

    def sort_key(self) -> tuple[int, int, int]:
        """Later export time first; within one time, a finished full read after any of its partial pages."""
        return (self.start_time, 0, self.pages) if self.after is not None else (self.start_time, 1, 0)

    @property
    def in_full_read(self) -> bool:
        return self.after is not None
