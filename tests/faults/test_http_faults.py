"""Throttling and server errors from PostHog or from every CRM at once: nothing lost, nothing doubled.

Each stand-in injects 20% 429s and 5% 500s (seeded, so a run is repeatable). The short HTTP retries of each client
absorb most of them; a run that still ends on a retryable error is run again, as the Celery task would be. A create
(POST) answered 500 is not retried blindly (it may have happened): the record is parked in the dead-letter stream
with its reason, and a replay applies it (a repeat create is a 409 on the external id, resolved by an exact search).
The final PostHog accounts and CRM-side pushed fields must equal those of a clean run on an identical stack.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.harness import SOURCES, deployment, diff, final_state, settle, sync_all

SEED = 60
FAULTS = {"rate_429": 0.2, "rate_5xx": 0.05, "retry_after_s": 0, "seed": 7}


@pytest.mark.timeout(120)
def test_posthog_throttling_and_errors_change_nothing(clean_state: Callable[[int], dict[str, list[str]]]) -> None:
    with deployment(SEED) as dep:
        dep.faults("posthog", **FAULTS)
        reports = sync_all(dep.runtime)
        parked = [e for _, e in dep.runtime.ledger.dead_letters(1000)]
        reports += settle(dep.runtime)  # replays run under the same faults
        injected = dep.injected("posthog")
        dep.faults("posthog")
        faulty = final_state(dep.runtime)
        again = sync_all(dep.runtime, mode="full")  # a second pass finds nothing left to do
    assert injected.get("429", 0) >= 20 and injected.get("500", 0) >= 5, injected
    failed = [e for r in reports for e in r.errors if r.mode != "replay"]
    assert len(parked) == len(failed)  # every failure was parked, with source, id and reason
    assert all(e["source"] in SOURCES and e["id"] and e["reason"] for e in parked)
    assert faulty == clean_state(SEED), diff(clean_state(SEED), faulty)
    assert sum(r.counts["created"] + r.counts["updated"] + r.counts["pushed"] for r in again) == 0


@pytest.mark.timeout(150)
def test_crm_throttling_and_errors_change_nothing(clean_state: Callable[[int], dict[str, list[str]]]) -> None:
    with deployment(SEED) as dep:
        for vendor in SOURCES:
            dep.faults(vendor, **FAULTS)
        reports = sync_all(dep.runtime)
        reports += settle(dep.runtime)
        injected = {vendor: dep.injected(vendor) for vendor in SOURCES}
        for vendor in SOURCES:
            dep.faults(vendor)
        faulty = final_state(dep.runtime)
    for vendor in SOURCES:
        assert sum(injected[vendor].values()) >= 1, (vendor, injected)  # Salesforce pages are large: few calls
    assert not dep.runtime.ledger.dead_letters(10)
    assert faulty == clean_state(SEED), diff(clean_state(SEED), faulty)
