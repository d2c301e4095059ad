"""Configuration findings of issue 21: metadata hosts in every notation, a bad ``CRMSYNC_CONFIG`` as clean as a bad
``--config``, Redis timeouts against a server that accepts and never answers, odd ``REDIS_URL`` values never echoed,
and masking (any letter case) on every output of the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.errors import ConfigError
from sync.ledger import delete_keys
from sync.report import RunReport
from tests.faults.harness import REDIS_URL
from tests.security.test_config_hardening import base_config
from workers.config import check_host, parse_config
from workers.logs import redact, remember_secrets
from workers.runtime import Runtime

METADATA_URLS = [
    "http://[64:ff9b::169.254.169.254]/",  # NAT64 (RFC 6052)
    "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64 (RFC 8215)
    "http://[::169.254.169.254]/",  # IPv4-compatible
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped, hex
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254 inverted
    "http://instance-data.ec2.internal/",  # AWS
    "http://INSTANCE-DATA.ec2.internal./",
    "http://metadata.google.internal/",  # GCP
    "http://[fd00:ec2::254]/",  # AWS IMDS over IPv6
    "http://100.100.100.200/",  # Alibaba
    "http://168.63.129.16/",  # Azure WireServer
]


@pytest.mark.parametrize("url", METADATA_URLS)
@pytest.mark.parametrize("stand_in", [False, True])
def test_metadata_addresses_are_refused_even_for_a_stand_in(url: str, stand_in: bool) -> None:
    with pytest.raises(ConfigError, match="metadata") as info:
        check_host(url, "sources.hubspot.config.host", stand_in)
    assert info.value.key == "sources.hubspot.config.host"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8010", "http://[::1]:8010", "http://10.0.0.5", "http://[fd00::5]"])
def test_stand_ins_on_loopback_and_private_addresses_still_pass(url: str) -> None:
    check_host(url, "posthog.host", True)


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``crmsync ARGS`` in a process of its own (a fresh import, as a user runs it)."""
    full = {**os.environ, "POSTHOG_PERSONAL_API_KEY": "phx_x", "COLUMNS": "2000", **env}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args], capture_output=True, text=True, env=full, timeout=timeout
    )


def test_a_bad_config_from_the_environment_is_as_clean_as_from_the_option(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"posthog": {"host": "https://us.posthog.com"}, "bogus": 1}))
    helped = _cli(["--help"], {"CRMSYNC_CONFIG": str(bad)})
    assert helped.returncode == 0 and "Traceback" not in helped.stderr and "sync" in helped.stdout
    by_env = _cli(["status"], {"CRMSYNC_CONFIG": str(bad)})
    by_option = _cli(["--config", str(bad), "status"], {})
    for done in (by_env, by_option):
        assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
        assert "config error:" in done.stderr and "mappings" in done.stderr
    assert by_env.stderr == by_option.stderr


class SilentServer:
    """A TCP server on loopback that accepts every connection and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
        self.thread.join(5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_redis_that_never_answers_is_an_error_not_a_hang(tmp_path: Path, silent: SilentServer) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({**base_config(), "redis_timeout_s": 1}))
    url = f"redis://:pw-silent-0042@127.0.0.1:{silent.port}/0"
    done = _cli(["--config", str(config), "status"], {"REDIS_URL": url}, timeout=60)
    assert done.returncode == 1 and "TimeoutError" in done.stderr and "Traceback" not in done.stderr
    assert len(silent.accepted) >= 1  # it did connect: the read timed out, the process did not hang

    runtime = Runtime(parse_config({**base_config(), "redis_url": url, "redis_timeout_s": 1}))
    kwargs = runtime.redis.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1 and kwargs["socket_connect_timeout"] == 1
    from workers.celery_app import app, configure

    configure(url, timeout_s=1)
    options = app.conf.broker_transport_options
    assert options["socket_timeout"] == 1 and options["socket_connect_timeout"] == 1
    assert app.conf.redis_socket_connect_timeout == 1
    configure(REDIS_URL)


ODD_URLS = [
    "127.0.0.1:6379",  # no scheme
    "redis://:s3cret-odd-0001@127.0.0.1:notaport/0",  # bad port
    "redis://:s3cret-odd-0002@127.0.0.1:99999/0",  # port out of range
    "redis://:s3cret-odd-0003@hôst.example:6379/0",  # unicode host
    "redis://:s3cret@odd-0004@127.0.0.1:{port}/0",  # unescaped @ in the password
    "redis://:s3cret%odd-0005@127.0.0.1:{port}/0",  # a % that is no escape
    "redis://:s3cret-odd-0006@[::1:6379/0",  # unclosed IPv6 literal
    "http://:s3cret-odd-0007@127.0.0.1:6379/0",  # another scheme
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("url", ODD_URLS)
def test_an_odd_redis_url_is_never_echoed(tmp_path: Path, url: str) -> None:
    url = url.replace("{port}", str(_closed_port()))
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    done = _cli(["--config", str(config), "status"], {"REDIS_URL": url})
    output = done.stdout + done.stderr
    assert done.returncode in (1, 2) and "Traceback" not in output, output
    assert "REDIS_URL" in output
    for fragment in ("s3cret", "odd-00", "127.0.0.1", "hôst", "notaport", "99999"):
        assert fragment not in output, (fragment, output)


SECRET = f"Sk_Live_Mixed{uuid.uuid4().hex}"


@pytest.fixture
def config_with_a_parked_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config whose Stripe key is ``SECRET``, and a ledger whose last run and dead letter quote it in capitals
    (an error message that upper-cased what it quoted)."""
    prefix = f"crmsync-mask-{uuid.uuid4().hex[:8]}"
    stripe = {"stand_in": True, "config": {"api_key": SECRET, "api_base": "http://127.0.0.1:9"}}
    raw: dict[str, Any] = {**base_config(stripe=stripe), "redis_url": REDIS_URL, "ledger_prefix": prefix}
    monkeypatch.delenv("REDIS_URL", raising=False)
    runtime = Runtime(parse_config(raw))
    report = RunReport("stripe", "customers", "full")
    report.finish("failed", reason=f"refused key {SECRET.upper()}")
    runtime.ledger.append_run(report.as_dict())
    reason = f"401: INVALID API KEY {SECRET.upper()} / {SECRET.lower()}"
    runtime.ledger.park([{"source": "stripe", "object": "customers", "id": "cus_1", "field": None, "reason": reason}])
    path = tmp_path / "crmsync.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield path
    delete_keys(runtime.redis, f"{prefix}:*")
    runtime.close()


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["dlq", "list"], ["dlq", "list", "--json"]])
def test_every_cli_output_masks_secrets_in_any_case(config_with_a_parked_secret: Path, command: list[str]) -> None:
    done = _cli(["--config", str(config_with_a_parked_secret), *command], {"REDIS_URL": REDIS_URL})
    output = (done.stdout + done.stderr).lower()
    assert done.returncode == 0, output
    assert SECRET.lower() not in output.replace("\n", "") and "****" in output
    if "--json" in command:
        json.loads(done.stdout)


def test_redact_is_case_insensitive() -> None:
    remember_secrets([SECRET])
    assert redact(f"a {SECRET.upper()} b {SECRET} c {SECRET.lower()}") == "a **** b **** c ****"
