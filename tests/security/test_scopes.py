"""Least privilege: the worker needs exactly six PostHog scopes, and a key missing one stops it at start-up.

``sync.posthog.scopes`` probes each scope with a request that changes nothing (a read, or an empty PATCH of the
nil UUID that answers 404 once past the scope check). The last test starts the real ``crmsync worker`` command
with a key lacking ``usage_metric:write`` and reads the scope's name in its error output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from sandbox.posthog.app import ApiKey, PostHogSandboxConfig, create_app
from sync.errors import ConfigError
from sync.posthog import PostHogClient
from sync.posthog.scopes import REQUIRED_SCOPES, missing_scopes, require_scopes
from sync.settings import PostHogSettings
from workers.serving import ServerThread

EXACT = "phx_least_privilege"


def _without(scope: str) -> str:
    return f"phx_without_{scope.replace(':', '_')}"


def _lacking(scope: str) -> tuple[str, ...]:
    """The six scopes minus ``scope``; minus the object's ``:write`` too for a ``:read`` scope, since a write scope
    implies its read scope in PostHog (``APIScopePermission``), so a key with ``account:write`` can read accounts."""
    gone = {scope, scope.replace(":read", ":write")}
    return tuple(x for x in REQUIRED_SCOPES if x not in gone)


KEYS = (
    ApiKey(EXACT, REQUIRED_SCOPES),
    *(ApiKey(_without(s), _lacking(s)) for s in REQUIRED_SCOPES),
    ApiKey("phx_read_only", ("account:read", "usage_metric:read", "project:read", "organization_member:read")),
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_app(PostHogSandboxConfig(keys=KEYS))) as running:
        yield running


def _client(server: ServerThread, key: str) -> PostHogClient:
    return PostHogClient(PostHogSettings(host=server.url, personal_api_key=SecretStr(key), project_id=1))


def test_a_key_with_exactly_the_six_scopes_passes_and_the_probes_write_nothing(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url) as admin:
        admin.post("/_sandbox/stats/reset").raise_for_status()
        with _client(server, EXACT) as client:
            assert missing_scopes(client) == []
            require_scopes(client)
        rows = admin.get("/_sandbox/stats").json()["requests"]
    # six probes, twice, but the project's organisation is read once per client (its members are listed by it)
    assert sum(r["count"] for r in rows) == 2 * len(REQUIRED_SCOPES) - 1
    writes = [r for r in rows if r["method"] not in ("GET", "HEAD")]
    assert writes and all(r["status"] == 404 for r in writes), writes  # nothing was changed


@pytest.mark.parametrize("scope", REQUIRED_SCOPES)
def test_each_missing_scope_is_named(server: ServerThread, scope: str) -> None:
    with _client(server, _without(scope)) as client:
        assert missing_scopes(client) == [x for x in REQUIRED_SCOPES if x not in _lacking(scope)]
        with pytest.raises(ConfigError) as raised:
            require_scopes(client)
    assert raised.value.key == "posthog.personal_api_key"
    assert scope in str(raised.value)
    assert _without(scope) not in str(raised.value)  # the key itself is never in the message


def test_a_read_only_key_lacks_both_write_scopes(server: ServerThread) -> None:
    with _client(server, "phx_read_only") as client:
        assert missing_scopes(client) == ["account:write", "usage_metric:write"]


@pytest.mark.timeout(60)
def test_the_worker_refuses_to_start_without_a_scope(server: ServerThread, tmp_path: Path) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(
        yaml.safe_dump({"posthog": {"host": server.url, "stand_in": True, "project_id": 1}, "mappings": {}})
    )
    key = _without("usage_metric:write")
    env = {**os.environ, "POSTHOG_PERSONAL_API_KEY": key, "CRMSYNC_CONFIG": str(config), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "--config", str(config), "worker", "--concurrency", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output[-2000:]
    assert "usage_metric:write" in output
    assert key not in output
