"""``crmsync sandbox up`` ends within 5 s of Ctrl-C (SIGINT) or SIGTERM, even with a request in flight on every
one of its six servers (issue 21, item 5), and leaves no process behind.

Each server gets a POST whose body never finishes arriving: uvicorn then waits its graceful 2 s before cancelling
the request, and the stack used to stop its servers one after the other (12 s and more, the receiver never)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from sync.ledger import delete_keys
from tests.conftest import REDIS_URL
from tests.support.waiting import wait_for

EXIT_WITHIN_S = 5
"""What the issue asks: ``sandbox up`` gone this long after the signal."""

IN_FLIGHT = {
    "posthog": "/_sandbox/seed",
    "hubspot": "/_sandbox/seed",
    "stripe": "/_sandbox/seed",
    "salesforce": "/_sandbox/seed",
    "webhooks": "/webhooks/hubspot",
    "ui": "/ui/actions/sync/hubspot",
}
"""A POST route of each server that reads its body before answering."""


def hold_a_request(url: str, path: str, auth: str = "") -> socket.socket:
    """Open a connection and send a POST whose body (1,000 bytes announced) stops after one byte."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock: socket.socket = socket.create_connection((host, port), timeout=10)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\n{auth}Sec-Fetch-Site: same-origin\r\n\r\n{{"
    )
    sock.sendall(head.encode())
    return sock


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sandbox_up_exits_within_5_s_of_a_signal_with_requests_in_flight(tmp_path: Path, signum: int) -> None:
    config, endpoints = tmp_path / "crmsync.sandbox.yaml", tmp_path / "endpoints.json"
    prefix = f"crmsync-stop-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "workers.cli", "sandbox", "up", "--seed", "5", "--config-out", str(config)]
    command += ["--endpoints-out", str(endpoints), "--ledger-prefix", prefix]
    up = subprocess.Popen(
        command,
        env={**os.environ, "REDIS_URL": REDIS_URL},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: killed whatever happens below
    )
    held: list[socket.socket] = []
    try:
        wait_for(lambda: endpoints.exists() or up.poll() is not None, 120, "sandbox up to write its endpoints")
        assert up.poll() is None, up.stdout.read() if up.stdout else ""
        described: dict[str, Any] = json.loads(endpoints.read_text())
        ui = described["ui"]
        login = base64.b64encode(f"{ui['username']}:{ui['password']}".encode()).decode()
        for name, path in IN_FLIGHT.items():
            auth = f"Authorization: Basic {login}\r\n" if name == "ui" else ""
            held.append(hold_a_request(described[name]["url"], path, auth))
        time.sleep(0.5)  # let every server take its request up (nothing is measured by this)
        up.send_signal(signum)
        output, _ = up.communicate(timeout=EXIT_WITHIN_S)
        assert up.returncode == 0, output
        assert "stopping" in output
        wait_for(lambda: not group_alive(up.pid), 10, "the sandbox's process group to be gone")
    finally:
        for sock in held:
            sock.close()
        if group_alive(up.pid):
            os.killpg(up.pid, signal.SIGKILL)
        up.wait(timeout=10)
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")
