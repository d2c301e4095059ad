"""One incremental window of Stripe events, reduced to "which customers changed" (pure: no I/O).

Stripe lists events newest first, and not strictly in the order things happened: several events share one
``created`` second in no set order, and an event can become visible after newer ones were listed. So events
are never applied as deltas. The window collects them all, drops repeats by event id (within the window, and
those the previous window already applied, named in the cursor's ``seen``), and keeps per customer only: the
newest event time, whether it was deleted, and whether every event was the connector's own push echoing back.
The caller then re-reads each changed customer's current state once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_SEEN = 5000
"""At most this many event ids ride in the cursor; past that, overlap events are re-read (harmless, the
ledger absorbs repeats) rather than letting the cursor grow without bound."""


@dataclass
class CustomerChange:
    """What the window says about one customer."""

    customer_id: str
    newest: int
    deleted: bool = False
    echo_only: bool = True


def customer_of(event: Mapping[str, Any]) -> str | None:
    """The customer an event is about: the object itself for ``customer.*``, its ``customer`` otherwise."""
    event_type = str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    if event_type in ("customer.created", "customer.updated", "customer.deleted"):
        value = obj.get("id")
    else:
        value = obj.get("customer")
        if isinstance(value, Mapping):  # expanded
            value = value.get("id")
    return value if isinstance(value, str) and value else None


def is_echo(event: Mapping[str, Any], prefix: str) -> bool:
    """A ``customer.updated`` caused by a request carrying one of the connector's own idempotency keys."""
    if event.get("type") != "customer.updated":
        return False
    request = event.get("request") or {}
    key = request.get("idempotency_key") if isinstance(request, Mapping) else None
    return isinstance(key, str) and key.startswith(prefix)


@dataclass
class EventWindow:
    """Accumulates the events of one read; ``skip`` are ids already applied (the cursor's ``seen``)."""

    skip: frozenset[str]
    echo_prefix: str
    keep_from: int
    """Events created at or after this are remembered (id, created) for the next cursor's ``seen``."""
    changes: dict[str, CustomerChange] = field(default_factory=dict)
    newest: int | None = None
    listed: int = 0
    duplicates: int = 0
    already_applied: int = 0
    echoes: int = 0
    _ids: set[str] = field(default_factory=set)
    _recent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def after(cls, seen: Iterable[str], echo_prefix: str, keep_from: int) -> EventWindow:
        return cls(frozenset(seen), echo_prefix, keep_from)

    def add(self, event: Mapping[str, Any]) -> None:
        """Take one listed event into account (repeats and unrelated events are counted and ignored)."""
        self.listed += 1
        event_id = str(event.get("id") or "")
        created = int(event.get("created") or 0)
        if not event_id or event_id in self._ids:
            self.duplicates += 1
            return
        self._ids.add(event_id)
        if created >= self.keep_from:
            self._recent[event_id] = created
        self.newest = created if self.newest is None else max(self.newest, created)
        if event_id in self.skip:
            self.already_applied += 1
            return
        customer_id = customer_of(event)
        if customer_id is None:
            return
        echo = is_echo(event, self.echo_prefix)
        self.echoes += echo
        change = self.changes.get(customer_id)
        if change is None:
            change = self.changes[customer_id] = CustomerChange(customer_id, created)
        change.newest = max(change.newest, created)
        change.deleted = change.deleted or event.get("type") == "customer.deleted"
        change.echo_only = change.echo_only and echo

    def to_refresh(self) -> list[CustomerChange]:
        """Customers to re-read or mark deleted: every changed customer except pure echoes of our pushes."""
        return [c for c in self.changes.values() if not c.echo_only or c.deleted]

    def seen_since(self, since: int) -> tuple[str, ...]:
        """Ids of the listed events created at or after ``since`` (newest kept when over ``MAX_SEEN``)."""
        recent = sorted(((t, i) for i, t in self._recent.items() if t >= since), reverse=True)[:MAX_SEEN]
        return tuple(sorted(i for _, i in recent))
