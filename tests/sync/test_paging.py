"""The one paging helper and its loop guard (``sync.paging``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.hubspot.errors import HubSpotPagingLoop
from sync.errors import FatalError
from sync.paging import LoopGuard, PagingLoop, follow


@given(st.lists(st.integers(0, 1000), min_size=0, max_size=30, unique=True))
def test_follow_yields_every_page_once_until_no_token(tokens: list[int]) -> None:
    chain = [*tokens, None]
    asked: list[int | None] = []

    def fetch(token: int | None) -> tuple[str, int | None]:
        asked.append(token)
        position = 0 if token is None else tokens.index(token) + 1
        return f"page{position}", chain[position]

    pages = list(follow(fetch, "test read"))

    assert pages == [f"page{n}" for n in range(len(tokens) + 1)]
    assert asked == [None, *tokens]


def test_a_repeated_token_raises_instead_of_looping() -> None:
    calls = 0

    def fetch(token: str | None) -> tuple[int, str | None]:
        nonlocal calls
        calls += 1
        return calls, "same"

    with pytest.raises(PagingLoop, match="test read: paging token 'same' repeated"):
        list(follow(fetch, "test read"))
    assert calls == 2


def test_the_guard_raises_the_vendors_error_which_is_a_fatal_paging_loop() -> None:
    guard = LoopGuard("HubSpot associations", HubSpotPagingLoop)
    assert guard.check(("1", "a")) == ("1", "a")
    assert guard.check(("2", "a")) == ("2", "a")
    with pytest.raises(HubSpotPagingLoop) as caught:
        guard.check(("1", "a"))
    assert isinstance(caught.value, PagingLoop) and isinstance(caught.value, FatalError)


def test_every_paging_loop_in_connectors_goes_through_the_helper() -> None:
    """No hand-written ``while True`` paging loop is left outside ``sync/paging.py`` (the windowed search
    and the Salesforce pull, which re-open queries, guard their tokens with ``LoopGuard``)."""
    root = Path(__file__).resolve().parents[2] / "connectors"
    loops = {
        str(path.relative_to(root)): path.read_text().count("while True")
        for path in root.rglob("*.py")
        if "while True" in path.read_text()
    }
    # paging.follow itself; HubSpot's and Salesforce's call paths retry in a loop; WindowedSearch moves its window
    # (each request strictly past the last, raising otherwise); the Salesforce pull and Stripe's customer listing
    # re-open their reads and guard every token with a LoopGuard.
    assert set(loops) <= {
        "paging.py",
        "hubspot/client.py",
        "hubspot/search.py",
        "salesforce/client.py",
        "salesforce/connector.py",
        "stripe/reader.py",
    }
    for name in ("salesforce/connector.py", "stripe/reader.py"):
        assert "LoopGuard(" in (root / name).read_text()
