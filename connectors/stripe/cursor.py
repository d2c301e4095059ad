"""Where a Stripe read got to: a point on Stripe's event clock, plus what a resumed full sync needs.

Stripe customers carry no modification time, so changes are followed through ``/v1/events``. The cursor's
``created`` (unix seconds) means: every change announced by an event created at or before it has been applied.
The next read lists events from ``created - lookback`` on and skips the ``seen`` event ids (events in that
overlap already applied), so events that became visible late are caught and none is applied twice.

During a full sync each committed page stores ``resume_after`` (the last customer listed, and its ``created``),
so a full sync that was interrupted goes on from there instead of starting over; the final page clears it.
``customers`` and ``ended_subscriptions`` are sizes seen by the last full sync: an incremental read uses them
to choose between one request per changed customer and one bulk list.
"""

from __future__ import annotations

from sync.connector import Cursor


class StripeCursor(Cursor):
    """The committed position of the ``customers`` stream."""

    created: int
    """Unix seconds on Stripe's clock: changes announced by events up to here are applied."""
    seen: tuple[str, ...] = ()
    """Ids of events in the lookback window before ``created`` that were already applied."""
    resume_after: str | None = None
    """Set while a full sync is under way: the last customer id committed."""
    resume_created: int | None = None
    """The ``created`` of ``resume_after``: where to go on if that customer was deleted meanwhile."""
    pages: int = 0
    """Full-sync pages committed so far (orders the cursors of one full sync)."""
    customers: int | None = None
    """How many customers the last full sync listed."""
    ended_subscriptions: int | None = None
    """How many ended (canceled, expired) subscriptions the last full sync read."""

    def sort_key(self) -> tuple[int, int, int]:
        """Later event time first; within one time, a finished full sync after any of its partial pages."""
        return (self.created, 0 if self.resume_after is not None else 1, self.pages)

    @property
    def in_full_sync(self) -> bool:
        return self.resume_after is not None

    def is_stale(self, now: float, retention_s: float, lookback_s: int, margin_s: float = 3600.0) -> bool:
        """True when events the next read needs may already be gone (older than Stripe's retention)."""
        return now - (self.created - lookback_s) > retention_s - margin_s
