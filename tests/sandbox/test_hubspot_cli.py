"""``crmsync sandbox run hubspot`` starts a working stand-in with the given flags."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from hubspot import HubSpot

from sandbox.hubspot.seeding import company_id
from workers.processes import stop_process

LAUNCH = "import typer; from sandbox.hubspot.cli import run_hubspot; typer.run(run_hubspot)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serves_seeded_portal_with_custom_token() -> None:
    port = _free_port()
    args = [sys.executable, "-c", LAUNCH, "--port", str(port), "--seed", "4", "--seed-start", "2"]
    process = subprocess.Popen(
        [*args, "--token", "pat-cli", "--app-limit", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/_sandbox/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.1)
        page = HubSpot(access_token="pat-cli", host=url).crm.companies.basic_api.get_page(limit=10)
        assert [c.id for c in page.results] == [str(company_id(i)) for i in range(2, 6)]
        wrong = httpx.get(f"{url}/crm/v3/owners/", headers={"Authorization": "Bearer pat-sandbox"}, trust_env=False)
        assert wrong.status_code == 401
    finally:
        stop_process(process, timeout_s=10)  # its whole group, pass or fail
        output, _ = process.communicate(timeout=10)
    assert f"HubSpot stand-in on http://127.0.0.1:{port}" in output
    assert "pat-cli" in output
