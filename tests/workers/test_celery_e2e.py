"""End to end on real processes: a Celery worker, beat, the CLI, the webhook receiver, the four stand-ins, Redis.

One stack and one worker (2 pool processes) serve the module; each test asserts PostHog's state or the run
reports, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connectors.registry import CONNECTORS
from sandbox.stack import POSTHOG_KEY, SandboxStack
from sync.ledger import delete_keys
from sync.posthog import AccountFilter
from tests.conftest import REDIS_URL
from tests.support.waiting import wait_for
from workers.config import parse_config
from workers.processes import start_worker, stop_process, wait_for_worker
from workers.runtime import Runtime, set_runtime
from workers.serving import ServerThread
from workers.webhooks import create_webhook_app

SEED = 30
E2E_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/13"  # a database of its own: its Celery queues are this test's alone


@dataclass
class Deployment:
    stack: SandboxStack
    runtime: Runtime
    config_path: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workers.cli", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def runs(self, source: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.runtime.ledger.recent_runs(200) if source is None or r.get("source") == source]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("e2e")
    prefix = f"crmsync-e2e-{uuid.uuid4().hex[:8]}"
    stack = SandboxStack(seed=SEED, redis_url=E2E_REDIS, ledger_prefix=prefix, data_dir=workdir / "sandbox")
    stack.start()
    raw = stack.config()
    raw["sources"]["stripe"]["schedule"] = {"every_s": 2}
    config_path = workdir / "crmsync.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    env = {
        **os.environ,
        "CRMSYNC_CONFIG": str(config_path),
        "REDIS_URL": E2E_REDIS,
        "POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY,
    }
    os.environ["POSTHOG_PERSONAL_API_KEY"] = POSTHOG_KEY
    runtime = Runtime(parse_config(raw))
    set_runtime(runtime)
    from workers.celery_app import configure

    app = configure(E2E_REDIS)
    app.control.purge()
    worker = start_worker(config_path, env, (workdir / "worker.log").open("wb"))
    receiver = None
    try:  # from the worker's start on: a receiver that fails to build must not leave the worker running
        receiver = ServerThread(create_webhook_app(runtime), port=stack.webhook_port).start()
        wait_for_worker(app, worker)
        yield Deployment(stack, runtime, config_path, env)
    finally:
        if receiver is not None:
            receiver.stop()
        stop_process(worker)
        app.control.purge()
        delete_keys(runtime.redis, f"{prefix}:*")
        runtime.close()
        stack.stop()
        set_runtime(None)


def test_manual_sync_through_the_cli_on_the_worker(deployment: Deployment) -> None:
    result = deployment.cli("sync", "all", "--full", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    runs = {r["source"]: r for r in report["runs"]}
    assert set(runs) == {*CONNECTORS, "all"}  # every source read and staged, then one plan written
    assert all(r["status"] == "succeeded" and r["counts"]["failed"] == 0 for r in runs.values())
    assert runs["all"]["counts"]["created"] > 0 and runs["all"]["counts"]["pushed"] > 0
    assert set(runs["hubspot"]["counts"]) >= {
        "seen",
        "created",
        "updated",
        "unchanged",
        "unlinked",
        "pushed",
        "conflicts",
        "failed",
    }
    accounts = list(deployment.runtime.posthog.iter_accounts())
    by_external = {a.external_id: a for a in accounts if a.external_id}
    # identities [2N/3, N) are in all three CRMs: one account each, carrying all three links
    for i in range(2 * SEED // 3, SEED):
        if i % 5 == 4:
            continue  # the Stripe stand-in seeds these customers without an external id: nothing links them
        account = by_external[f"acct-{i:05d}"]
        props = account.properties
        assert props.sfdc_id and props.hubspot_deal_id and props.stripe_customer_id, account.name


def test_overlapping_triggers_run_once(deployment: Deployment) -> None:
    from workers.tasks import sync_source

    httpx.post(
        f"{deployment.stack.url('salesforce')}/_sandbox/faults",
        json={"latency_ms": 800},  # long enough for the second trigger to start meanwhile
        verify=str(deployment.stack.ca_file),
    )
    try:
        first = sync_source.apply_async(("salesforce",), {"mode": "full"}, queue="bulk")
        second = sync_source.apply_async(("salesforce",), {"mode": "full"}, queue="bulk")
        statuses = sorted(r["status"] for result in (first, second) for r in result.get(timeout=120)["runs"])
    finally:
        httpx.post(
            f"{deployment.stack.url('salesforce')}/_sandbox/faults", json={}, verify=str(deployment.stack.ca_file)
        )
    assert statuses == ["skipped", "succeeded"]


def test_beat_triggers_scheduled_runs(deployment: Deployment) -> None:
    def scheduled() -> list[dict[str, Any]]:
        return [r for r in deployment.runs("stripe") if r["mode"] == "incremental"]

    before = len(scheduled())
    beat = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "--config", str(deployment.config_path), "beat", "--loglevel", "WARNING"],
        env=deployment.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: ``stop_process`` ends it whole
    )
    try:
        wait_for(lambda: len(scheduled()) >= before + 2, 60, "two scheduled stripe runs")  # every 2 s in this config
    finally:
        stop_process(beat)
    assert all(r["status"] in ("succeeded", "skipped") for r in scheduled()[: len(scheduled()) - before])


def test_webhook_refresh_reaches_posthog(deployment: Deployment) -> None:
    new_name = f"Renamed by webhook {uuid.uuid4().hex[:6]}"
    only_in_stripe = f"cus_S{SEED + 2 * SEED // 3 - 1:013d}"  # the last Stripe identity: in no other CRM
    httpx.post(f"{deployment.stack.url('stripe')}/_sandbox/customers/{only_in_stripe}", json={"name": new_name})
    wait_for(
        lambda: bool(list(deployment.runtime.posthog.iter_accounts(AccountFilter(search=new_name)))),
        60,
        "the webhook refresh",
    )
    # the delivery was refreshed on the realtime queue (a scheduled run left over from the beat test may have
    # applied the change first; either way PostHog shows it, and the refresh then finds nothing left to do)
    wait_for(lambda: any(r["mode"] == "refresh" for r in deployment.runs("stripe")), 60, "the refresh run")


def test_status_and_metrics_report_the_runs(deployment: Deployment) -> None:
    result = deployment.cli("status", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads(result.stdout)["sources"]
    for source in ("salesforce", "hubspot", "stripe"):
        assert status[source]["last_run"]["status"] in ("succeeded", "skipped")
        assert status[source]["dlq"] == 0
        assert any(c["present"] for c in status[source]["cursors"].values())
    metrics = httpx.get(f"{deployment.stack.webhooks_url}/metrics").text
    assert 'crmsync_runs_total{source="hubspot",status="succeeded"}' in metrics
    assert 'crmsync_records_total{outcome="seen",source="salesforce"}' in metrics
    assert 'crmsync_records_total{outcome="created",source="all"}' in metrics  # a plan writes for every source
    assert 'crmsync_webhooks_total{outcome="accepted",source="stripe"}' in metrics
