"""The one paging helper and its loop guard (``sync.paging``)."""

from __future__ import annotations

import ast
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


ROOT = Path(__file__).resolve().parents[2]
LISTINGS = (
    "connectors/hubspot/client.py",  # deal pages, owners, associations (a token per unfinished input)
    "connectors/hubspot/connector.py",  # full reads
    "connectors/hubspot/search.py",  # windowed search (the window's position) and its id-order drain
    "connectors/salesforce/connector.py",  # the pull (re-opening an expired locator) and fetch reads
    "connectors/stripe/reader.py",  # customers (falling back to creation time), subscriptions, events
    "connectors/zendesk/connector.py",  # the full read (cursor pagination, resumable) and the incremental export
    "connectors/zendesk/fields.py",  # organization fields (cursor pagination)
    "sync/posthog/client.py",  # accounts, usage metrics, members (next URLs on the configured host only)
    "sync/posthog/custom_properties.py",
    "sync/posthog/relationships.py",
)


def loops(path: Path) -> list[int]:
    """Line numbers of the ``while`` loops of a module (in code: docstrings and comments do not count)."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.While)]


def test_no_module_of_the_connectors_has_a_loop_of_its_own() -> None:
    """Paging goes through ``sync.paging.follow`` and retrying through ``sync.calls``: no ``while`` loop is left in
    ``connectors/``, whatever it pages by (a token, a window's position, a list of unfinished inputs)."""
    found = {str(path.relative_to(ROOT)): loops(path) for path in (ROOT / "connectors").rglob("*.py") if loops(path)}
    assert found == {}


@pytest.mark.parametrize("name", LISTINGS)
def test_every_listing_pages_through_the_one_helper(name: str) -> None:
    path = ROOT / name
    assert loops(path) == [], f"{name} has a paging loop of its own"
    assert "follow(" in path.read_text()


def test_the_only_vendor_loops_are_the_helper_and_the_call_path() -> None:
    """In ``sync/``, the paging helper's loop and the one call path's retry loop are the vendor-facing loops;
    the budgets' waits (``sync.budget``, ``sync.ratelimit``) are the others the call path uses."""
    assert len(loops(ROOT / "sync" / "paging.py")) == 1
    assert len(loops(ROOT / "sync" / "calls.py")) == 1
