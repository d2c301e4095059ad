"""The event window on its own (pure): out-of-order and repeated events reduce to one change per customer."""

from __future__ import annotations

import random
from typing import Any

from connectors.stripe.events import MAX_SEEN, EventWindow, customer_of, is_echo

PREFIX = "crmsync-"


def event(
    event_id: str, event_type: str, created: int, customer: str, key: str | None = None, **obj: Any
) -> dict[str, Any]:
    if event_type.startswith("customer.subscription."):
        data = {"id": f"sub_{event_id}", "object": "subscription", "customer": customer, **obj}
    else:
        data = {"id": customer, "object": "customer", **obj}
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "data": {"object": data},
        "request": {"id": None, "idempotency_key": key},
    }


def test_two_thousand_customers_shuffled_and_repeated_give_one_change_each() -> None:
    rng = random.Random(20)
    events: list[dict[str, Any]] = []
    newest: dict[str, int] = {}
    for c in range(2000):
        customer = f"cus_{c:05d}"
        for k in range(rng.randint(1, 4)):
            kind = rng.choice(["customer.updated", "customer.subscription.updated", "customer.created"])
            created = 1_000_000 + rng.randint(0, 600)
            events.append(event(f"evt_{c:05d}_{k}", kind, created, customer))
            newest[customer] = max(newest.get(customer, 0), created)
    delivered = events + rng.sample(events, 1500)  # repeats
    rng.shuffle(delivered)  # no order at all
    window = EventWindow.after((), PREFIX, keep_from=0)
    for e in delivered:
        window.add(e)
    changes = window.to_refresh()
    assert len(changes) == 2000 and len({c.customer_id for c in changes}) == 2000
    assert {c.customer_id: c.newest for c in changes} == newest
    assert window.duplicates == 1500 and window.listed == len(delivered)
    assert window.newest == max(newest.values())


def test_events_already_applied_are_skipped_but_still_remembered() -> None:
    first = EventWindow.after((), PREFIX, keep_from=100)
    for e in (event("evt_a", "customer.updated", 90, "cus_1"), event("evt_b", "customer.updated", 120, "cus_2")):
        first.add(e)
    seen = first.seen_since(100)
    assert seen == ("evt_b",)  # only what is inside the lookback is carried

    second = EventWindow.after(seen, PREFIX, keep_from=100)
    second.add(event("evt_b", "customer.updated", 120, "cus_2"))  # the overlap: applied last time
    second.add(event("evt_c", "customer.updated", 110, "cus_3"))  # became visible late, inside the lookback
    assert [c.customer_id for c in second.to_refresh()] == ["cus_3"]
    assert second.already_applied == 1
    assert second.seen_since(100) == ("evt_b", "evt_c")


def test_deletes_win_and_own_echoes_need_no_refresh() -> None:
    window = EventWindow.after((), PREFIX, keep_from=0)
    window.add(event("e1", "customer.updated", 10, "cus_echo", key=f"{PREFIX}abc"))
    window.add(event("e2", "customer.updated", 11, "cus_mixed", key=f"{PREFIX}abc"))
    window.add(event("e3", "customer.updated", 12, "cus_mixed", key="someone-else"))
    window.add(event("e4", "customer.updated", 13, "cus_gone"))
    window.add(event("e5", "customer.deleted", 12, "cus_gone"))  # older than the update, still a delete
    window.add(event("e6", "customer.subscription.deleted", 14, "cus_gone"))
    by_id = {c.customer_id: c for c in window.to_refresh()}
    assert set(by_id) == {"cus_mixed", "cus_gone"}
    assert by_id["cus_gone"].deleted and by_id["cus_gone"].newest == 14
    assert window.echoes == 2


def test_customer_of_and_is_echo() -> None:
    assert customer_of(event("e", "customer.updated", 1, "cus_1")) == "cus_1"
    assert customer_of(event("e", "customer.subscription.created", 1, "cus_2")) == "cus_2"
    expanded = event("e", "customer.subscription.updated", 1, "x")
    expanded["data"]["object"]["customer"] = {"id": "cus_3", "object": "customer"}
    assert customer_of(expanded) == "cus_3"
    assert customer_of({"id": "e", "type": "customer.discount.created", "data": {"object": {}}}) is None
    assert is_echo(event("e", "customer.updated", 1, "c", key=f"{PREFIX}k"), PREFIX)
    assert not is_echo(event("e", "customer.updated", 1, "c", key="other"), PREFIX)
    assert not is_echo(event("e", "customer.deleted", 1, "c", key=f"{PREFIX}k"), PREFIX)


def test_the_carried_ids_are_bounded() -> None:
    window = EventWindow.after((), PREFIX, keep_from=0)
    for n in range(MAX_SEEN + 50):
        window.add(event(f"evt_{n:06d}", "customer.updated", n, f"cus_{n}"))
    seen = window.seen_since(0)
    assert len(seen) == MAX_SEEN and "evt_000000" not in seen  # the newest are kept
