"""Parked records replayed on beat's schedule with a per-source backoff in Redis; ``status`` shows the dead
letters and PostHog's request budget. Against the PostHog stand-in and the real Redis; time is the test's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import POSTHOG_KEY, PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import MAPPING
from workers.cli_status import budget_line, dead_letters_line
from workers.config import parse_config
from workers.replay import ReplayBackoff, replay_due
from workers.runtime import Runtime, set_runtime
from workers.status import status_data


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def crm() -> MemoryCrm:
    return MemoryCrm()


@pytest.fixture
def runtime(posthog: PostHogSandbox, ledger: Any, crm: MemoryCrm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    raw = {
        **MAPPING,
        "posthog": {"host": posthog.url, "stand_in": True, "project_id": 1, "budget": ["1000/60"]},
        "ledger_prefix": ledger.ns.split(":")[0],
        "sources": {"memcrm": {"config": {}}},
        "dlq_replay": {"backoff_s": 60, "max_backoff_s": 100},
    }
    rt = Runtime(parse_config(raw))
    rt.__dict__["redis"] = ledger.redis
    rt.__dict__["ledger"] = ledger
    rt.install_connector("memcrm", MemoryConnector(crm))
    set_runtime(rt)
    yield rt
    set_runtime(None)  # the ledger fixture deletes every key under its prefix, the budget's included


def park_one(runtime: Runtime, crm: MemoryCrm) -> None:
    crm.put("001A", ext="acct-a")  # no name: cannot be created, parked
    runtime.engine.run(runtime.connector("memcrm"), "accounts")
    assert runtime.ledger.dlq_size() == 1


def test_backoff_doubles_up_to_its_cap_and_clears_once_replayed(runtime: Runtime, crm: MemoryCrm) -> None:
    park_one(runtime, crm)
    clock = Clock()
    backoff = ReplayBackoff(runtime.redis, runtime.ledger.ns)
    fetches = crm.fetches

    def tick(advance: float) -> int:
        """Advance the clock, run beat's tick; how many times the CRM was asked for the parked record."""
        nonlocal fetches
        clock.now += advance
        replay_due(runtime, ["memcrm"], now=clock)
        asked, fetches = crm.fetches - fetches, crm.fetches
        return asked

    assert tick(0) == 1  # due at once: replayed, still bad
    assert backoff.state()["memcrm"]["delay_s"] == 60 and backoff.state()["memcrm"]["attempts"] == 1
    assert tick(59) == 0  # not due yet
    assert tick(1) == 1
    assert backoff.state()["memcrm"]["delay_s"] == 100  # 120, capped at max_backoff_s
    assert tick(100) == 1
    assert backoff.state()["memcrm"] == {"delay_s": 100, "next_at": clock.now + 100, "attempts": 3}
    assert runtime.ledger.dlq_size() == 1
    crm.records["001A"]["name"] = "Acme"  # fixed in the CRM
    assert tick(99) == 0
    assert tick(1) == 1
    assert runtime.ledger.dlq_size() == 0 and backoff.state() == {}  # applied: parked no more, backoff forgotten


def test_backoff_resets_when_the_stream_empties(runtime: Runtime, crm: MemoryCrm) -> None:
    park_one(runtime, crm)
    clock = Clock()
    replay_due(runtime, ["memcrm"], now=clock)
    backoff = ReplayBackoff(runtime.redis, runtime.ledger.ns)
    assert "memcrm" in backoff.state()
    runtime.ledger.drop_dead_letters([entry_id for entry_id, _ in runtime.ledger.dead_letters()])  # e.g. by hand
    fetches = crm.fetches
    assert replay_due(runtime, ["memcrm"], now=clock) == []
    assert crm.fetches == fetches and backoff.state() == {}


def test_the_scheduled_task_goes_through_the_backoff(runtime: Runtime, crm: MemoryCrm) -> None:
    from workers.tasks import replay_dlq

    park_one(runtime, crm)
    first = replay_dlq.apply(kwargs={"scheduled": True}).get()
    assert [r["counts"]["failed"] for r in first["runs"]] == [1]
    again = replay_dlq.apply(kwargs={"scheduled": True}).get()
    assert again["runs"] == []  # backing off: a minute before the next attempt
    manual = replay_dlq.apply().get()  # `crmsync dlq replay` / a manual task call does not wait
    assert [r["counts"]["failed"] for r in manual["runs"]] == [1]


def test_status_shows_dead_letters_and_the_budget(runtime: Runtime, crm: MemoryCrm) -> None:
    empty = status_data(runtime)
    assert empty["dead_letters"] == {"total": 0, "oldest": None, "replay_backoff": {}}
    assert dead_letters_line(empty["dead_letters"]) == "Dead letters: 0"
    park_one(runtime, crm)
    replay_due(runtime, ["memcrm"])
    data = status_data(runtime)
    dead = data["dead_letters"]
    assert dead["total"] == 1 and data["dlq_total"] == 1
    oldest = dead["oldest"]
    assert {k: oldest[k] for k in ("source", "object", "id", "field")} == {
        "source": "memcrm",
        "object": "accounts",
        "id": "001A",
        "field": "name",
    }
    assert oldest["reason"] and 0 <= oldest["age_s"] < 600
    assert dead["replay_backoff"]["memcrm"]["attempts"] == 1
    assert "memcrm accounts 001A (name)" in dead_letters_line(dead)

    budget = data["posthog_budget"]
    used = runtime.posthog_budget.usage().windows[0].used if runtime.posthog_budget else 0
    assert used >= 1  # the run's PostHog requests went through the budget
    assert budget["windows"] == [
        {"window": "1000/60", "limit": 1000, "seconds": 60.0, "used": used, "left": 1000 - used}
    ]
    assert budget["blocked"] is False and "not blocked" in budget_line(budget)
    assert runtime.posthog_budget is not None
    runtime.posthog_budget.block(30)
    blocked = status_data(runtime)["posthog_budget"]
    assert blocked["blocked"] is True and blocked["blocked_until"] is not None and blocked["blocks"] == 1
    assert "blocked by a 429 until " in budget_line(blocked) and " UTC (" in budget_line(blocked)
    assert budget_line({"unthrottled": True}).endswith("unthrottled (posthog.budget: [])")


def test_worker_start_up_skips_the_scope_check_while_the_budget_is_spent(
    runtime: Runtime, posthog: PostHogSandbox
) -> None:
    assert runtime.posthog_budget is not None
    runtime.check_posthog_key()  # the probes, through the budget
    probes = posthog.stats()["total"]
    assert probes > 0 and runtime.posthog_budget.usage().windows[0].used == probes
    runtime.posthog_budget.block(3600)  # e.g. another worker met a 429 with a long Retry-After
    runtime.check_posthog_key()  # neither raises nor sends anything
    assert posthog.stats()["total"] == probes


def test_status_estimates_a_staged_backlog_at_the_current_budget(runtime: Runtime, crm: MemoryCrm) -> None:
    from workers.cli_status import backlog_line

    assert status_data(runtime)["backlog"]["posthog_requests"] == 0
    for i in range(1500):
        crm.put(f"001{i:05d}", name=f"Company {i}", ext=f"acct-{i}")
    connectors = {"memcrm": runtime.connector("memcrm")}
    store, _ = runtime.engine.stage_plan(connectors, {"memcrm": ["accounts"]}, "full", chunk_size=500)
    assert store is not None
    runtime.engine.write_plan_chunk(store, 0, connectors)  # 500 written, 1,000 left
    pending = f"{runtime.ledger.ns}:pending:memcrm:accounts"
    runtime.redis.sadd(pending, "001A", "001B")  # two webhook ids waiting, and the receiver's window marker
    runtime.redis.set(f"{pending}:scheduled", "1")
    backlog = status_data(runtime)["backlog"]
    assert backlog["plans"] == [{"plan": store.id, "accounts_left": 1000, "chunks": 3}]
    assert backlog["webhook_ids_waiting"] == 2 and backlog["posthog_requests"] == 1002
    left = runtime.posthog_budget.usage().windows[0].left if runtime.posthog_budget else 0
    # what the 1000/60 window has left goes now; the rest at 1000 requests a minute
    assert backlog["eta_s"] == round((1002 - left) / (1000 / 60), 1)
    assert "1,002 PostHog requests (1 plans being written" in backlog_line(backlog)


def test_status_says_when_posthog_drops_tags(runtime: Runtime) -> None:
    assert status_data(runtime)["posthog_tags"]["dropped"] is False
    runtime.ledger.mark_tagging_unsupported(runtime.config.mapping.fingerprint())
    assert status_data(runtime)["posthog_tags"]["dropped"] is True
