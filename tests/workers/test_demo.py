"""``make demo`` end to end: stand-ins, a real Celery worker process, webhooks; it must finish green."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from connectors.registry import CONNECTORS
from tests.conftest import REDIS_URL


@pytest.mark.timeout(240)
def test_demo_runs_end_to_end() -> None:
    own_db = REDIS_URL.rsplit("/", 1)[0] + "/12"  # Celery queues of its own, whatever else uses the server
    env = {**os.environ, "COLUMNS": "120", "REDIS_URL": own_db}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo"], capture_output=True, text=True, timeout=230, env=env
    )
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps lines at the terminal width
    assert result.returncode == 0, output[-4000:]
    assert "Full sync of every CRM" in output
    assert re.search(r"status page at http://127\.0\.0\.1:\d+/ui/ \(user crmsync, password sandbox-ui\)", output)
    assert "PostHog showed the new name" in output
    assert f"inbound: {len(CONNECTORS)} accounts updated" in output  # exactly one edit in each CRM, both ways
    # today's PostHog: the CSM set on its relationship and the Health score, each pushed to its one linked record
    assert "outbound: 2 CRM records updated from PostHog" in output
    assert re.search(r"roles: PostHog is current: [1-9]\d* holders assigned as relationships", output)
    assert "CSM relationship (owned by PostHog" in output
    for step in ("full sync", "incremental", "outbound"):
        row = re.search(rf"│ {step} │((?: *\d+ *│){{6}})", output)
        assert row is not None, step
        numbers = [int(n) for n in row.group(1).split("│")[:6]]  # seen, created, updated, unchanged, pushed, failed
        assert numbers[0] > 0 and numbers[5] == 0, (step, row.group(0))


@pytest.mark.timeout(240)
def test_demo_starts_an_embedded_redis_when_none_answers() -> None:
    from workers.serving import free_port

    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "COLUMNS": "120", "REDIS_URL": nothing_there}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo"], capture_output=True, text=True, timeout=230, env=env
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output[-4000:]
    assert "(embedded)" in output and "PostHog showed the new name" in output
