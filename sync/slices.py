"""Plan chunks written a slice at a time (issue 20).

A ``crmsync.write_plan`` chunk holds up to 200 accounts; written as one batch, it held every one of their account
locks until its last request, which at PostHog's budget is minutes (25 s at 8 requests a second). A webhook refresh
of one of those accounts waited for the whole chunk. Written in slices of ``SLICE_ACCOUNTS`` accounts, each slice
takes its own locks and commits on its own: a refresh waits for one slice at most, and a throttle that stops a
chunk has committed every slice before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLICE_ACCOUNTS = 16
"""Accounts per slice: two seconds of a budget of 8 requests a second (one request per account)."""


def account_slices(items: Sequence[T], account_of: Callable[[T], str], size: int = SLICE_ACCOUNTS) -> list[list[T]]:
    """``items`` in slices of at most ``size`` accounts, in order, the items of one account always together."""
    if size < 1:
        raise ValueError("a slice holds at least one account")
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(account_of(item), []).append(item)
    ordered = list(groups.values())
    return [[i for group in ordered[start : start + size] for i in group] for start in range(0, len(ordered), size)]
