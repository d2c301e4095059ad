"""Where an incremental HubSpot read got to, as epoch milliseconds (UTC).

``modified_ms``: every deal with ``hs_lastmodifieddate`` before it was read, and those exactly at it with
``hs_object_id <= object_id`` (0 while that timestamp is not being read in id order). ``companies_ms``: the same
for companies, whose changes (name, domain, external id) are re-read onto their deals. The next run reads from
each value minus the configured lookback, so a few records are read twice and the ledger absorbs them.
"""

from __future__ import annotations

from sync.connector import Cursor


class HubSpotCursor(Cursor):
    """The committed position of the ``deals`` stream (see the module docstring)."""

    modified_ms: int
    object_id: int = 0
    companies_ms: int = 0

    def sort_key(self) -> tuple[int, int, int]:
        return (self.modified_ms, self.object_id, self.companies_ms)
