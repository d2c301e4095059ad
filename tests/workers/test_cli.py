"""The CLI as a user runs it: ``sandbox up`` then ``sync all --inline --json``; ``dlq``; bad config named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis
import yaml

from connectors.registry import CONNECTORS
from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from workers.processes import stop_process


def crmsync(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_sandbox_up_writes_a_config_that_syncs_at_once(tmp_path: Path) -> None:
    config = tmp_path / "crmsync.sandbox.yaml"
    endpoints = tmp_path / "endpoints.json"
    env = {**os.environ, "REDIS_URL": REDIS_URL}
    prefix = f"crmsync-cli-{uuid.uuid4().hex[:8]}"  # this test's ledger, apart from any other on the shared Redis
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "sandbox",
            "up",
            "--seed",
            "20",
            "--config-out",
            str(config),
            "--endpoints-out",
            str(endpoints),
            "--ledger-prefix",
            prefix,
            "--posthog-throttle",
            "1000/60",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, killed in ``finally`` whatever happens
    )
    try:
        deadline = time.monotonic() + 60
        while not endpoints.exists() and time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            time.sleep(0.2)
        written = yaml.safe_load(config.read_text())
        assert written["ledger_prefix"] == prefix
        assert written["posthog"]["budget"] == ["1000/60"]  # the stand-in's throttle, as the config's budget
        described = json.loads(endpoints.read_text())
        assert set(described) == {"posthog", *CONNECTORS, "webhooks", "ui"}
        ui = described["ui"]
        assert httpx.get(ui["url"]).status_code == 401  # the status page, behind its login
        assert httpx.get(ui["url"], auth=(ui["username"], ui["password"])).status_code == 200

        result = crmsync("--config", str(config), "sync", "all", "--inline", "--json", env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        runs = json.loads(result.stdout)["runs"]
        assert {r["source"] for r in runs} == {*CONNECTORS, "all"}  # read, then written
        assert all(r["status"] == "succeeded" and r["counts"]["failed"] == 0 for r in runs)
        assert sum(r["counts"]["created"] for r in runs) > 0

        dry = crmsync("--config", str(config), "sync", "salesforce", "--inline", "--dry-run", "--json", env=env)
        assert dry.returncode == 0 and json.loads(dry.stdout)["runs"][0]["counts"]["updated"] == 0
        table = crmsync("--config", str(config), "sync", "stripe", "--inline", "--dry-run", "--full", env=env)
        assert table.returncode == 0 and "Plan: 0 field changes, nothing written" in table.stdout, table.stdout

        listed = crmsync("--config", str(config), "dlq", "list", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout) == {"entries": [], "total": 0}
        replayed = crmsync("--config", str(config), "dlq", "replay", "all", "--json", env=env)
        assert replayed.returncode == 0 and all(r["status"] == "succeeded" for r in json.loads(replayed.stdout)["runs"])

        status = crmsync("--config", str(config), "status", "--json", env=env)
        assert status.returncode == 0, status.stderr[-3000:]
        data = json.loads(status.stdout)
        assert data["dead_letters"] == {"total": 0, "oldest": None, "replay_backoff": {}}
        (window,) = data["posthog_budget"]["windows"]
        assert window["window"] == "1000/60" and window["used"] > 0 and window["used"] + window["left"] == 1000
        assert data["posthog_budget"]["blocked"] is False
        text = crmsync("--config", str(config), "status", env=env)
        assert (
            text.returncode == 0 and "PostHog budget: 1000/60 used" in text.stdout and "Dead letters: 0" in text.stdout
        )
    finally:
        interrupt(up)
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")


def interrupt(up: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user stops ``sandbox up``: it must end within 5 s (``test_sandbox_stop.py``); its process
    group is killed whatever happened."""
    try:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
    finally:
        stop_process(up)


def test_bad_config_fails_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({"mappings": {}, "sources": {"hubspot": {"schedule": {"every_s": 0}}}}))
    result = crmsync("--config", str(config), "status", env={**os.environ, "POSTHOG_PERSONAL_API_KEY": "k"})
    assert result.returncode == 2
    assert "sources.hubspot.schedule.every_s" in result.stdout + result.stderr


def _sandbox_up(
    config: Path, prefix: str, env: dict[str, str], command: list[str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """``crmsync sandbox up`` as the README's "try it" starts it; returns once its config is written."""
    endpoints = config.with_suffix(".endpoints.json")
    endpoints.unlink(missing_ok=True)
    args = ["sandbox", "up", "--seed", "20", "--config-out", str(config), "--endpoints-out", str(endpoints)]
    up = subprocess.Popen(
        [*(command or [sys.executable, "-m", "workers.cli"]), *args, "--ledger-prefix", prefix],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: ``interrupt`` ends it
    )
    try:
        deadline = time.monotonic() + 60
        while not endpoints.exists() and time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            time.sleep(0.2)
    except BaseException:
        stop_process(up)
        raise
    return up


def test_the_try_it_sequence_twice_syncs_everything_both_times(tmp_path: Path) -> None:
    """``sandbox up``, ``sync all --inline``, Ctrl-C, and the same again: the second set of stand-ins is another
    set of systems, so the ledger's state of the first is dropped (and reported) and everything syncs again."""
    config = tmp_path / "crmsync.sandbox.yaml"
    env = {**os.environ, "REDIS_URL": REDIS_URL}
    prefix = f"crmsync-cli-{uuid.uuid4().hex[:8]}"
    rounds = []
    try:
        for _ in range(2):
            up = _sandbox_up(config, prefix, env)
            try:
                result = crmsync("--config", str(config), "sync", "all", "--inline", "--json", env=env)
                assert result.returncode == 0, result.stderr[-3000:]
                runs = json.loads(result.stdout)["runs"]
                assert all(r["status"] == "succeeded" and r["counts"]["failed"] == 0 for r in runs), runs
                rounds.append({r["source"]: r for r in runs if r["source"] != "all"})
                rounds[-1]["created"] = sum(r["counts"]["created"] for r in runs)
                rounds[-1]["resets"] = [reset for r in runs for reset in r.get("state_reset", [])]
                status = crmsync("--config", str(config), "status", "--json", env=env)
                assert status.returncode == 0, status.stderr[-3000:]
                rounds[-1]["status"] = json.loads(status.stdout)
            finally:
                interrupt(up)
        first, second = rounds
        for source in ("salesforce", "hubspot", "stripe"):
            assert second[source]["counts"]["seen"] == first[source]["counts"]["seen"] > 0, (source, second[source])
        assert first["resets"] == []
        # the second round found a new PostHog and dropped everything, every link with it
        resets = second["resets"]
        assert [r["system"] for r in resets] == ["posthog"] and resets[0]["dropped"]["idx"] > 0, resets
        assert second["created"] == first["created"] > 0
        systems = [
            {s: r["status"]["sources"][s]["system"] for s in ("salesforce", "hubspot", "stripe")} for r in rounds
        ]
        assert systems[0]["salesforce"].startswith("org 00D") and systems[0]["hubspot"].startswith("portal ")
        assert systems[0]["stripe"].startswith("acct_") and all(systems[0][s] != systems[1][s] for s in systems[0])
        assert rounds[0]["status"]["posthog_system"] != rounds[1]["status"]["posthog_system"]

        dry = crmsync("--config", str(config), "reset", "salesforce", "--dry-run", "--json", env=env)
        assert dry.returncode == 0, dry.stderr[-2000:]
        would = json.loads(dry.stdout)
        assert would["system"] == systems[1]["salesforce"] and would["would_drop"]["rec"] == 20
        refused = subprocess.run(
            [sys.executable, "-m", "workers.cli", "--config", str(config), "reset", "all"],
            input="n\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert refused.returncode == 1 and "nothing dropped" in refused.stdout + refused.stderr
        dropped = crmsync("--config", str(config), "reset", "all", "--yes", "--json", env=env)
        assert dropped.returncode == 0 and json.loads(dropped.stdout)["dropped"]["rec"] >= 20
        after = json.loads(crmsync("--config", str(config), "reset", "all", "--dry-run", "--json", env=env).stdout)
        assert after["would_drop"] == {}
        runs_kept = redis.Redis.from_url(REDIS_URL).exists(f"{prefix}:1:runs")
        assert runs_kept  # history stays
    finally:
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")
