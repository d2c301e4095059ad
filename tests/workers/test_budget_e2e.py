"""End to end: ``sandbox up --posthog-throttle`` writes a config whose budget matches the stand-in's throttle,
and a real sync through that config is never refused by PostHog; without a throttle the config is unthrottled."""

from __future__ import annotations

import uuid

import httpx
import pytest
from typer.testing import CliRunner

from sandbox.posthog.throttle import ThrottleRate
from sandbox.stack import SandboxStack
from sync.budget import Window
from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from workers.config import parse_config
from workers.runtime import Runtime


def test_a_throttled_stack_syncs_within_its_budget() -> None:
    prefix = f"crmsync-test-{uuid.uuid4().hex[:12]}"
    stack = SandboxStack(seed=30, redis_url=REDIS_URL, webhooks=False, ledger_prefix=prefix)
    stack.posthog_throttle = (ThrottleRate(15, 1),)
    with stack:
        config = stack.config()
        assert config["posthog"]["budget"] == ["15/1"]
        runtime = Runtime(parse_config(config))
        try:
            assert runtime.posthog_budget is not None and runtime.posthog_budget.windows == (Window(15, 1.0),)
            (stream,) = runtime.streams("salesforce")
            report = runtime.engine.run(runtime.connector("salesforce"), stream, "full")
            stats = httpx.get(f"{stack.url('posthog')}/_sandbox/stats").json()
            assert report.status == "succeeded" and report.counts["failed"] == 0
            assert report.counts["created"] + report.counts["updated"] == 30
            assert stats["throttled"] == 0  # every request waited for budget instead of being refused
            assert stats["total"] > 2 * 15 and runtime.posthog_budget.waits >= 1
        finally:
            runtime.close()
            delete_keys(runtime.redis, f"{prefix}:*")


def test_an_unthrottled_stack_writes_an_unthrottled_config() -> None:
    with SandboxStack(seed=5, redis_url=REDIS_URL, webhooks=False) as stack:
        config = stack.config()
        info = httpx.get(f"{stack.url('posthog')}/_sandbox/info").json()
    assert config["posthog"]["budget"] == [] and info["throttle"] == []
    assert Runtime(parse_config(config)).posthog_budget is None


@pytest.mark.parametrize("spec", ["480", "480/minute", "0/60"])
def test_sandbox_up_rejects_a_bad_throttle(spec: str) -> None:
    from workers.cli import app

    result = CliRunner().invoke(app, ["sandbox", "up", "--posthog-throttle", spec])
    assert result.exit_code == 2 and "bad throttle" in result.output
