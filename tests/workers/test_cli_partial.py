"""``crmsync sync --inline`` as a cron job runs it, against the stand-ins: a run that parks records is ``partial``
(never ``succeeded``) in its report, in ``crmsync status`` and in the metrics, and the command exits 23 so the job
can alert on it; once the record is fixed and replayed, the next run succeeds and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from sandbox.stack import POSTHOG_KEY
from sync.errors import BadRecordError
from sync.report import RunReport
from tests.conftest import REDIS_URL
from tests.faults.harness import deployment
from workers.cli_sync import PARTIAL_EXIT
from workers.metrics import RedisMetricsCollector, record_run

SEED = 6
BAD_CUSTOMER = f"cus_S{SEED + 2 * SEED // 3 - 3:013d}"  # a Stripe-only identity (see sandbox/stack.py)


def crmsync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY, "COLUMNS": "200"}
    command = [sys.executable, "-m", "workers.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)


def test_sync_inline_exits_23_when_it_parks_records(tmp_path: Path) -> None:
    assert PARTIAL_EXIT == 23
    with deployment(SEED) as dep:
        config = tmp_path / "crmsync.yaml"
        config.write_text(yaml.safe_dump(dep.stack.config()))
        with dep.admin("stripe") as stripe:  # nothing left to name its account by: parked on create
            stripe.post(f"/_sandbox/customers/{BAD_CUSTOMER}", json={"name": "", "email": ""}).raise_for_status()

        first = crmsync(config, "sync", "stripe", "--inline", "--full", "--json")
        assert first.returncode == 23, first.stderr[-3000:]
        (run,) = json.loads(first.stdout)["runs"]
        assert run["status"] == "partial" and run["counts"]["failed"] == 1, run
        assert run["reason"].startswith(f"1 of {run['counts']['seen']} records failed"), run

        table = crmsync(config, "status")
        assert table.returncode == 0 and "partial, 1 failed" in table.stdout, table.stdout
        status = json.loads(crmsync(config, "status", "--json").stdout)
        assert status["sources"]["stripe"]["last_run"]["status"] == "partial"
        report = RunReport("stripe", "customers", "full")  # as a worker's task counts its run
        report.add("seen", 3)
        report.error(BadRecordError("stripe", BAD_CUSTOMER, "name", "required to create an account"))
        record_run(dep.runtime.redis, dep.runtime.ledger.ns, report.finish())
        metrics = {m.name: m for m in RedisMetricsCollector(dep.runtime.redis, dep.runtime.ledger.ns).collect()}
        runs = {tuple(s.labels.values()): s.value for s in metrics["crmsync_runs"].samples}
        assert runs == {("stripe", "partial"): 1}, runs

        with dep.admin("stripe") as stripe:
            stripe.post(f"/_sandbox/customers/{BAD_CUSTOMER}", json={"name": "Fixed Inc"}).raise_for_status()
        replayed = crmsync(config, "dlq", "replay", "stripe", "--json")
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        again = crmsync(config, "sync", "stripe", "--inline", "--json")
        assert again.returncode == 0 and json.loads(again.stdout)["runs"][0]["status"] == "succeeded"
