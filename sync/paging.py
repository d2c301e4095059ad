"""One paging helper with one loop guard, for every paging loop in ``connectors/``.

Vendors page with an opaque token the client hands back (HubSpot ``after``, Salesforce ``nextRecordsUrl``,
Stripe ``starting_after``). A vendor (or a stand-in) that hands back a token already used would make a read loop
forever; like Singer SDK's paginator, the guard raises ``PagingLoop`` (fatal: no retry fixes it) instead.

- ``LoopGuard``: remembers the tokens one read has used; ``check(token)`` raises on a repeat. For loops that do
  not fit ``follow`` (several tokens in flight at once, such as HubSpot's per-input association paging).
- ``follow(fetch, what)``: calls ``fetch(token)`` → ``(page, next token)`` from ``None`` until the next token is
  ``None``, yielding each page; guarded.
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
