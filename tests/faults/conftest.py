"""Fixtures of the fault suite: the environment every deployment needs, and clean-run baselines to compare with."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.faults.harness import deployment, final_state, posthog_env, sync_all

State = dict[str, list[str]]


@pytest.fixture(autouse=True)
def _posthog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in posthog_env().items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def clean_state() -> Iterator[Callable[[int], State]]:
    """``clean_state(seed)``: the final state of a fault-free full sync of a fresh stack (computed once per seed)."""
    cache: dict[int, State] = {}

    def get(seed: int) -> State:
        if seed not in cache:
            with pytest.MonkeyPatch.context() as mp:
                for key, value in posthog_env().items():
                    mp.setenv(key, value)
                with deployment(seed) as dep:
                    reports = sync_all(dep.runtime)
                    assert all(r.status == "succeeded" and not r.counts["failed"] for r in reports)
                    cache[seed] = final_state(dep.runtime)
        return cache[seed]

    yield get
