"""Newest-first cursor paging over sorted ``(created, id)`` keys, as Stripe's list endpoints page.

Stripe lists newest first, ties on ``created`` broken by id. Each collection keeps its keys in ascending order
in one or more ``SortedIndex`` (one per subscription status, one per event type, ...); a page is a bisect into
each index plus a lazy merge, so a page costs O(log n + limit) however many records there are.

``starting_after=X`` gives the ``limit`` keys just older than X; ``ending_before=X`` the ``limit`` keys just
newer than X, still returned newest first (the SDK walks those pages backwards). ``has_more`` says whether more
keys lie beyond the page in the direction of travel.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

Key = tuple[int, str]
"""``(created, id)``: the order Stripe lists in (reversed)."""

_FLOOR = -(2**63)
_CEILING = 2**63


class SortedIndex:
    """Keys in ascending order; O(log n) lookups, O(n) memmove inserts (cheap up to ~10^6 keys)."""

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        self._keys: list[Key] = sorted(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Key) -> bool:
        position = bisect_left(self._keys, key)
        return position < len(self._keys) and self._keys[position] == key

    def add(self, key: Key) -> None:
        insort(self._keys, key)

    def add_many(self, keys: Iterable[Key]) -> None:
        self._keys.extend(keys)
        self._keys.sort()

    def remove(self, key: Key) -> None:
        position = bisect_left(self._keys, key)
        if position < len(self._keys) and self._keys[position] == key:
            del self._keys[position]

    def drop_before(self, key: Key) -> list[Key]:
        """Remove and return every key smaller than ``key`` (used to expire old events)."""
        position = bisect_left(self._keys, key)
        dropped = self._keys[:position]
        del self._keys[:position]
        return dropped

    def ascending(self, window: Window) -> Iterator[Key]:
        start, stop = bisect_left(self._keys, window.lo), bisect_left(self._keys, window.hi)
        return iter(self._keys[start:stop])

    def descending(self, window: Window) -> Iterator[Key]:
        start, stop = bisect_left(self._keys, window.lo), bisect_left(self._keys, window.hi)
        keys = self._keys
        return (keys[position] for position in range(stop - 1, start - 1, -1))


@dataclass(frozen=True)
class Window:
    """The half-open key range ``[lo, hi)`` a list request may return from."""

    lo: Key = (_FLOOR, "")
    hi: Key = (_CEILING, "")

    @classmethod
    def for_created(cls, created_lo: int | None, created_hi: int | None) -> Window:
        """The window for ``created`` bounds given inclusive at both ends (``None`` = open)."""
        lo = (created_lo, "") if created_lo is not None else (_FLOOR, "")
        hi = (created_hi + 1, "") if created_hi is not None else (_CEILING, "")
        return cls(lo, hi)

    def older_than(self, key: Key) -> Window:
        """Narrowed to keys strictly before ``key`` (``starting_after``)."""
        return Window(self.lo, min(self.hi, key))

    def newer_than(self, key: Key) -> Window:
        """Narrowed to keys strictly after ``key`` (``ending_before``); ``id + NUL`` is the next key up."""
        return Window(max(self.lo, (key[0], key[1] + "\0")), self.hi)


def page(
    indexes: Sequence[SortedIndex], window: Window, limit: int, *, backwards: bool = False
) -> tuple[list[Key], bool]:
    """Up to ``limit`` keys from the union of ``indexes`` inside ``window``, newest first, and ``has_more``.

    Forwards (no cursor or ``starting_after``) takes the newest keys of the window; ``backwards``
    (``ending_before``) takes the oldest ones, which are the keys right after the cursor.
    """
    if backwards:
        merged = heapq.merge(*(index.ascending(window) for index in indexes))
    else:
        merged = heapq.merge(*(index.descending(window) for index in indexes), reverse=True)
    taken = list(islice(merged, limit + 1))
    has_more = len(taken) > limit
    keys = taken[:limit]
    if backwards:
        keys.reverse()
    return keys, has_more
