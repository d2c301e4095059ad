"""Incremental reads through HubSpot search, past its 10,000-result cap, without ever looping.

HubSpot's search serves at most the first 10,000 results of a query (an ``after`` offset of 10,000 answers 400),
takes one sort per request, and pages by offset (so a record edited mid-read shifts the pages after it). So
``WindowedSearch`` never pages by offset at all: every request is a new window that starts where the last page
ended, at ``after=0``, and no window can reach the cap.

1. **Main window**: ``hs_lastmodifieddate >= L`` sorted ascending by it, where ``L`` is the last timestamp of
   the previous page; ids already read at ``L`` are dropped from the answer. After a page, every record modified
   before its last timestamp has been read: that timestamp is a safe checkpoint.
2. A full page whose records all share ``L`` cannot move the window. **Drain** ``L`` instead:
   ``hs_lastmodifieddate == L`` sorted by ``hs_object_id``, each next request adding ``hs_object_id > last id``;
   ids already read are skipped; each drain page checkpoints ``(L, last id)``.
3. Then the main window continues strictly past ``L`` (``>``).

Every request starts strictly past the previous position in (timestamp, id) order, or reads at least one new
record, so the read ends; and it is complete however many records share one timestamp (12,000 deals touched by
one import is an ordinary day). Edits made during the read move records forward, where the read still finds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.hubspot.client import HsObject, ObjectPage, SearchFilter
from connectors.hubspot.errors import HubSpotPagingLoop
from sync.paging import follow

MODIFIED = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"

SearchFn = Callable[[list[SearchFilter], str, int], ObjectPage]
"""(filters, sort property, after offset) → one page; the caller fixes object type, page size and properties."""


def epoch_ms(value: str | None) -> int | None:
    """HubSpot timestamps (epoch ms, or ISO 8601 with any precision, ``Z`` or an offset) as epoch ms."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


@dataclass(frozen=True)
class Checkpoint:
    """Read so far: every record with timestamp < ``modified_ms``, and those at ``modified_ms`` with id <=
    ``object_id`` (0: none of them are known to be read)."""

    modified_ms: int
    object_id: int = 0


@dataclass(frozen=True)
class SearchBatch:
    """Records from one search page (already-given ids removed) and the checkpoint after it."""

    records: list[HsObject]
    checkpoint: Checkpoint


def _modified(obj: HsObject) -> int:
    value = epoch_ms(obj.properties.get(MODIFIED))
    if value is None:
        raise ValueError(f"search result {obj.id} has no {MODIFIED}")
    return value


class WindowedSearch:
    """Reads everything modified since a checkpoint, one page per request (see the module docstring).

    ``search`` does one request: (filters, sort property, after) → page of at most ``page_size`` results (or of
    the smaller ``ObjectPage.limit`` it reports, when the client shrank its pages after a 429).
    """

    def __init__(self, search: SearchFn, page_size: int) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.search = search
        self.page_size = page_size

    def since(self, start: Checkpoint, inclusive: bool = True) -> Iterator[SearchBatch]:
        """Everything past ``start``: timestamps ``>= start.modified_ms`` when ``inclusive`` (and no id is
        given), else the rest of that timestamp after ``start.object_id`` in id order, then everything later.

        Pages through ``sync.paging.follow``: the token is the window's position ``(lower, inclusive)``, which
        every page moves strictly forward, so a repeated one (a server answering out of order) is a
        ``HubSpotPagingLoop`` instead of a read that never ends."""
        seen: set[str] = set()  # ids already read whose timestamp is the window's lower bound
        if start.object_id or not inclusive:
            if start.object_id:
                yield from self._drain(start.modified_ms, start.object_id, seen)
            inclusive = False

        def window(position: tuple[int, bool] | None) -> tuple[Iterable[SearchBatch], tuple[int, bool] | None]:
            nonlocal seen
            lower, from_lower = position if position is not None else (start.modified_ms, inclusive)
            page = self.search([SearchFilter(MODIFIED, "GTE" if from_lower else "GT", str(lower))], MODIFIED, 0)
            if not page.results:
                return (), None
            stamps = [_modified(obj) for obj in page.results]
            last_ts = stamps[-1]
            full = len(page.results) >= (page.limit or self.page_size) and page.next_after is not None
            if from_lower and last_ts == lower and full:
                # A page of nothing but ``lower``: the window cannot move. Read that timestamp in id order.
                drained, seen = self._drain(lower, 0, seen), set()
                return drained, (lower, False)
            fresh = [obj for obj, ts in zip(page.results, stamps, strict=True) if not (ts == lower and obj.id in seen)]
            batch = SearchBatch(fresh, Checkpoint(last_ts))
            if not full:
                return (batch,), None
            if last_ts != lower:
                seen = set()
            seen.update(obj.id for obj, ts in zip(page.results, stamps, strict=True) if ts == last_ts)
            return (batch,), (last_ts, True)

        for batches in follow(window, "HubSpot search", HubSpotPagingLoop):
            yield from batches

    def _drain(self, ts: int, after_id: int, skip: set[str]) -> Iterator[SearchBatch]:
        """Every record modified exactly at ``ts`` with id > ``after_id``, in id order, minus ``skip``."""

        def ids_after(lower_id: int | None) -> tuple[list[SearchBatch], int | None]:
            lower = after_id if lower_id is None else lower_id
            filters = [SearchFilter(MODIFIED, "EQ", str(ts))]
            if lower:
                filters.append(SearchFilter(OBJECT_ID, "GT", str(lower)))
            page = self.search(filters, OBJECT_ID, 0)
            if not page.results:
                return [], None
            last_id = int(page.results[-1].id)
            if last_id <= lower:
                raise HubSpotPagingLoop(f"HubSpot search: id {last_id} does not move past {lower}")
            batch = SearchBatch([obj for obj in page.results if obj.id not in skip], Checkpoint(ts, last_id))
            more = len(page.results) >= (page.limit or self.page_size) and page.next_after is not None
            return [batch], last_id if more else None

        for batches in follow(ids_after, f"HubSpot search at {ts}", HubSpotPagingLoop):
            yield from batches
