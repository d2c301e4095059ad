"""The one paginator every listing pages through (connectors and the PostHog client), with one loop guard.

A listing is a ``fetch(token) → (page, next token)`` function and ``follow`` drives it: ``fetch(None)`` first,
then ``fetch(next token)`` until the next token is ``None``, yielding each page, lazily (a consumer that stops
stops the reads). What a token is, is the listing's strategy; the loop, its guard and its laziness are shared:

- a vendor's opaque cursor: HubSpot ``after``, Stripe ``starting_after``, Salesforce ``nextRecordsUrl``,
  PostHog's ``next`` URL (the PostHog client refuses one on another host);
- an offset (PostHog's relationship definitions);
- a position the listing computes itself: HubSpot's windowed search ``(lower bound, inclusive)`` and its
  id-order drain (the last id), Stripe's customers ``(starting_after, created[lte])``;
- the work still to do: HubSpot's association reads (the inputs whose links are not all read yet).

A vendor (or a stand-in) that hands back a token already used would make a read loop forever; like Singer SDK's
paginator, the guard raises ``PagingLoop`` (fatal: no retry fixes it) instead. ``LoopGuard`` is that guard on its
own, for a token inside one page (HubSpot's per-input ``after``). ``tests/sync/test_paging.py`` checks that no
module of ``connectors/`` (and no PostHog listing) has a loop of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

from sync.errors import FatalError

P = TypeVar("P")
T = TypeVar("T", bound=Hashable)


class PagingLoop(FatalError):
    """A paging token came back that this read had already used: stop instead of looping forever."""


class LoopGuard:
    """The tokens one read has used; ``check`` raises ``PagingLoop`` naming ``what`` on the first repeat."""

    def __init__(self, what: str, error: Callable[[str], PagingLoop] = PagingLoop) -> None:
        self.what = what
        self.error = error
        self._seen: set[Hashable] = set()

    def check(self, token: T) -> T:
        """``token``, once; the second time it raises (the token is shown, it is a vendor cursor, not a secret)."""
        if token in self._seen:
            raise self.error(f"{self.what}: paging token {token!r} repeated")
        self._seen.add(token)
        return token


def follow(
    fetch: Callable[[T | None], tuple[P, T | None]],
    what: str,
    error: Callable[[str], PagingLoop] = PagingLoop,
) -> Iterator[P]:
    """Every page of one read: ``fetch(None)``, then ``fetch(next token)`` until there is none."""
    guard = LoopGuard(what, error)
    token: T | None = None
    while True:
        page, next_token = fetch(token)
        yield page
        if next_token is None:
            return
        token = guard.check(next_token)
