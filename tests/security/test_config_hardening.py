"""Configuration and operations (issue 13, points 8 to 11): start-up checks, secrets in errors, Redis outages,
files and hosts. CLI checks run the real ``crmsync`` command (typer's runner in-process, or a subprocess where the
entry point's own handling is what is tested)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from celery.exceptions import Retry
from typer.testing import CliRunner

from sandbox.stack import SandboxStack
from sync.errors import ConfigError
from workers import data
from workers.cli import app as cli_app
from workers.config import check_host, load_config, parse_config
from workers.logs import mask_url_password, redact, remember_secrets, secrets_of
from workers.runtime import Runtime, set_runtime
from workers.tasks import MAX_RETRIES, refresh
from workers.webhooks import create_webhook_app

SECRETS = {
    "password": "pw-6d1c0c1e-config-hardening",
    "webhook_old": "whsec_old_4f0e9b2a7c",
    "webhook_new": "whsec_new_81b3e5d0aa",
    "jwt": "-----BEGIN PRIVATE KEY-----\nMIIEv-jwt-key-body-7e21\n-----END PRIVATE KEY-----",
    "redis": "r3dis-pw-0c9f",
}


def base_config(**sources: Any) -> dict[str, Any]:
    example = yaml.safe_load(data.read_text(data.EXAMPLE_CONFIG))
    return {
        "posthog": {"host": "http://127.0.0.1:9", "stand_in": True, "project_id": 1, "personal_api_key": "phx_x"},
        "sources": sources,
        **{k: example[k] for k in ("ownership", "mappings")},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 8. connector config checked at start-up -------------------------------------------------------------------

TYPO = {"stand_in": True, "config": {"access_token": "pat-typo-test", "host": "http://127.0.0.1:9", "page_sise": 50}}


def test_the_receiver_refuses_to_start_on_a_connector_typo() -> None:
    runtime = Runtime(parse_config(base_config(hubspot=TYPO)))
    with pytest.raises(ConfigError) as info:
        create_webhook_app(runtime, enqueue=lambda s, o, c: None)
    assert info.value.key == "sources.hubspot.config.page_sise"


@pytest.mark.parametrize("command", [["worker"], ["beat"], ["webhooks", "serve"]])
def test_worker_beat_and_receiver_stop_naming_the_key(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(base_config(hubspot=TYPO)))
    monkeypatch.setenv("CRMSYNC_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli_app, command)
    set_runtime(None)
    assert result.exit_code == 2, result.output
    assert "sources.hubspot.config.page_sise" in result.output and "pat-typo-test" not in result.output


def test_the_receiver_will_not_listen_off_loopback_without_a_public_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    monkeypatch.setenv("CRMSYNC_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli_app, ["webhooks", "serve", "--host", "0.0.0.0", "--port", "0"])
    set_runtime(None)
    assert result.exit_code == 2 and "webhooks.public_url" in result.output


# -- 9. secrets in errors and logs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        f"  password: {SECRETS['password']}\n\tbad: tab",  # a tab where YAML allows none
        f"  password: *{SECRETS['password']}",  # read as an alias of that name
        f'  password: "{SECRETS["password"]}',  # an unclosed quote
        f"  password: {SECRETS['password']}: more",  # a second colon
        f"  password: [{SECRETS['password']}",  # an unclosed list
    ],
)
def test_yaml_errors_never_echo_the_offending_line(tmp_path: Path, line: str) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(f"posthog:\n  host: https://us.posthog.com\nsources:\n  salesforce:\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert "line" in str(info.value)
    assert SECRETS["password"] not in str(info.value) and SECRETS["password"][:12] not in repr(info.value)


def test_secrets_in_lists_the_jwt_key_and_the_redis_url_are_collected_and_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRETS['redis']}@127.0.0.1:6379/0")
    raw = base_config(
        stripe={
            "stand_in": True,
            "config": {"api_key": "sk_test_x", "webhook_secrets": [SECRETS["webhook_old"], SECRETS["webhook_new"]]},
        },
        salesforce={
            "config": {
                "auth": {"flow": "jwt", "client_id": "c", "username": "u@example.com", "private_key": SECRETS["jwt"]}
            }
        },
    )
    config = parse_config(raw)
    found = set(secrets_of(config))
    assert {SECRETS["webhook_old"], SECRETS["webhook_new"], SECRETS["jwt"], SECRETS["redis"]} <= found
    remember_secrets(found)
    line = f"{SECRETS['webhook_old']} {SECRETS['jwt']} redis://:{SECRETS['redis']}@host {SECRETS['webhook_new']}"
    masked = redact(line)
    assert not any(SECRETS[k] in masked for k in ("webhook_old", "webhook_new", "jwt", "redis"))
    assert redact({"private_key": "x" * 3, "webhook_secrets": ["abc"]}) == {
        "private_key": "****",
        "webhook_secrets": "****",
    }
    assert (
        mask_url_password("redis://user:pw@h:1/0 and rediss://:p@h/1")
        == "redis://user:****@h:1/0 and rediss://:****@h/1"
    )


# -- 10. Redis errors ------------------------------------------------------------------------------------------


def test_the_cli_with_redis_down_prints_one_line_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(base_config()))
    url = f"redis://:{SECRETS['redis']}@127.0.0.1:{free_port()}/0"
    env = {**os.environ, "CRMSYNC_CONFIG": str(config), "REDIS_URL": url, "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "status"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "REDIS_URL" in lines[0] and "127.0.0.1" not in lines[0] and SECRETS["redis"] not in lines[0]


def test_a_task_retries_when_redis_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``refresh`` reads its pending ids from Redis: with Redis gone it asks Celery for a retry (and, with acks_late,
    the message is not lost) instead of failing for good."""
    raw = base_config(stripe={"stand_in": True, "config": {"api_key": "sk_test_x", "api_base": "http://127.0.0.1:9"}})
    monkeypatch.delenv("REDIS_URL", raising=False)
    runtime = Runtime(parse_config({**raw, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    set_runtime(runtime)
    try:
        for retries, raised in ((0, Retry), (MAX_RETRIES, redis.exceptions.ConnectionError)):
            # a delivery as the worker runs it (not called directly); eager, so a retry is raised, not sent
            refresh.push_request(id=f"t-redis-{retries}", retries=retries, is_eager=True, called_directly=False)
            try:
                with pytest.raises(raised) as info:  # a retry; on the last allowed attempt it gives up, as for a 5xx
                    refresh.run("stripe", "customers")
            finally:
                refresh.pop_request()
            if raised is Retry:
                assert isinstance(info.value, Retry) and isinstance(info.value.exc, redis.exceptions.ConnectionError)
    finally:
        set_runtime(None)
        runtime.close()


# -- 11. files and hosts ---------------------------------------------------------------------------------------


def test_sandbox_files_are_owner_only(tmp_path: Path) -> None:
    config, endpoints = tmp_path / "crmsync.sandbox.yaml", tmp_path / "endpoints.json"
    endpoints.write_text("{}")
    endpoints.chmod(0o644)  # a file left by an older run keeps no wider mode
    with SandboxStack(seed=10, data_dir=tmp_path / "data", webhooks=False) as stack:
        stack.write(config, endpoints)
        written = yaml.safe_load(config.read_text())
    for path in (config, endpoints):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert written["posthog"]["stand_in"] is True
    assert all(block["stand_in"] is True for block in written["sources"].values())
    parse_config(written)  # the stand-in marker is what lets its http loopback hosts through


@pytest.mark.parametrize(
    ("url", "stand_in", "accepted"),
    [
        ("https://api.hubapi.com", False, True),
        ("https://us.posthog.com", False, True),
        ("http://api.hubapi.com", False, False),  # real hosts need https
        ("https://10.0.0.5", False, False),
        ("https://192.168.1.10:8443", False, False),
        ("https://127.0.0.1:8010", False, False),
        ("https://localhost", False, False),
        ("https://[::1]/", False, False),
        ("http://127.0.0.1:8010", True, True),  # a stand-in
        ("http://10.0.0.5:8010", True, True),
        ("http://169.254.169.254/latest", False, False),  # cloud metadata: refused even for a stand-in
        ("http://169.254.169.254/latest", True, False),
        ("https://2852039166/", True, False),  # the same address, other notations
        ("https://0xa9fea9fe/", True, False),
        ("https://0251.0376.0251.0376/", True, False),
        ("https://[::ffff:169.254.169.254]/", True, False),
        ("http://metadata.google.internal/", True, False),
        ("https://[fe80::1]/", True, False),
        ("ftp://api.hubapi.com", True, False),
    ],
)
def test_hosts_that_receive_credentials(url: str, stand_in: bool, accepted: bool) -> None:
    if accepted:
        check_host(url, "posthog.host", stand_in)
    else:
        with pytest.raises(ConfigError) as info:
            check_host(url, "posthog.host", stand_in)
        assert info.value.key == "posthog.host"


def test_every_vendor_host_is_checked_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTHOG_HOST", raising=False)
    real = base_config()
    real["posthog"] = {"host": "http://127.0.0.1:8010", "project_id": 1}
    with pytest.raises(ConfigError, match=r"^posthog\.host"):
        parse_config(real)
    cases = {
        "hubspot": ("host", {"access_token": "pat-x"}),
        "stripe": ("api_base", {"api_key": "sk_test_x"}),
        "salesforce": ("login_url", {}),
    }
    for source, (key, rest) in cases.items():
        raw = base_config(**{source: {"config": {**rest, key: "https://169.254.169.254"}}})
        with pytest.raises(ConfigError) as info:
            parse_config(raw)
        assert info.value.key == f"sources.{source}.config.{key}"
    monkeypatch.setenv("POSTHOG_HOST", "http://169.254.169.254")
    with pytest.raises(ConfigError, match=r"^POSTHOG_HOST"):
        parse_config(base_config())
