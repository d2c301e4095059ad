"""``crmsync sandbox run posthog --generation ...`` serves the generation asked for; a wrong one fails at start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx

from tests.support.waiting import wait_for

LAUNCH = "import typer; from sandbox.posthog.cli import run_posthog; typer.run(run_posthog)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_sandbox/health", trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def test_cli_serves_the_generation_asked_for() -> None:
    port = _free_port()
    args = ["--port", str(port), "--generation", "transitional", "--proxy-retry-after", "--key-owner-level", "1"]
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: process.poll() is not None or _healthy(url), 30, "the stand-in")
        assert process.poll() is None
        info = httpx.get(f"{url}/_sandbox/info", trust_env=False).json()
        assert (info["generation"], info["proxy_retry_after"]) == ("transitional", True)
        headers = {"Authorization": "Bearer phx_sandbox"}
        definitions = httpx.get(f"{url}/api/projects/1/account_relationship_definitions/", headers=headers)
        assert definitions.status_code == 200
        members = httpx.get(f"{url}/api/organizations/@current/members/", headers=headers).json()["results"]
        assert [(m["user"]["id"], m["level"]) for m in members] == [(1, 1)]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert "generation: transitional" in output


def test_cli_refuses_an_unknown_generation() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCH, "--port", "0", "--generation", "future"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "seed, transitional, current" in result.stdout + result.stderr


def test_sandbox_up_refuses_an_unknown_posthog_generation_before_starting_anything() -> None:
    from typer.testing import CliRunner

    from workers.cli import app

    result = CliRunner().invoke(app, ["sandbox", "up", "--posthog-generation", "future"])
    assert result.exit_code != 0 and "--posthog-generation" in result.output


def test_the_sandbox_stack_passes_its_generation_to_the_standin() -> None:
    from sandbox.stack import SandboxStack

    stack = SandboxStack(seed=5, posthog_generation="current", webhooks=False)
    try:
        stack.start()
        info = httpx.get(f"{stack.url('posthog')}/_sandbox/info", trust_env=False).json()
        assert (info["generation"], info["proxy_retry_after"]) == ("current", False)  # as PostHog: no Retry-After
    finally:
        stack.stop()
