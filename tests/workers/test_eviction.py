"""No silent eviction: the commands that run crmsync refuse a Redis that may evict keys; ``status`` warns.

Real ``redis-server`` processes of their own (``--maxmemory 100mb --maxmemory-policy allkeys-lru``), killed after
each test whatever its outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from tests.support.waiting import wait_for
from tests.sync.test_engine import MAPPING
from workers.eviction import read_policy
from workers.serving import free_port

EVICTING = ("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")


def _redis_server(tmp_path: Path, *extra: str) -> Iterator[redis.Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, "--dir", str(tmp_path), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5)
    try:
        wait_for(lambda: _pings(client), 10, "redis-server")
        yield client
    finally:
        process.kill()
        process.wait(timeout=10)
        client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[redis.Redis]:
    yield from _redis_server(tmp_path, *EVICTING)


@pytest.fixture
def evicting_without_config(tmp_path: Path) -> Iterator[redis.Redis]:
    """A managed-Redis look-alike: CONFIG renamed away, so only INFO tells the policy."""
    yield from _redis_server(tmp_path, *EVICTING, "--rename-command", "CONFIG", "")


def _url(client: redis.Redis) -> str:
    return f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"


def _crmsync(tmp_path: Path, client: redis.Redis, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "crmsync.yaml"
    raw = {**MAPPING, "posthog": {"host": "http://127.0.0.1:9", "stand_in": True, "project_id": 1}, "sources": {}}
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "REDIS_URL": _url(client), "POSTHOG_PERSONAL_API_KEY": "phx_test"}
    command = [sys.executable, "-m", "workers.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("command", [["worker"], ["beat"], ["webhooks", "serve", "--port", "0"], ["sync", "all"]])
def test_an_evicting_redis_is_refused_naming_maxmemory_policy(
    tmp_path: Path, evicting: redis.Redis, command: list[str]
) -> None:
    result = _crmsync(tmp_path, evicting, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "maxmemory-policy" in lines[0] and "allkeys-lru" in lines[0], result.stderr
    assert evicting.dbsize() == 0  # refused before it wrote anything (no queue, no budget, no ledger key)


def test_status_warns_naming_maxmemory_policy(tmp_path: Path, evicting: redis.Redis) -> None:
    result = _crmsync(tmp_path, evicting, "status")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stdout.splitlines() if "maxmemory-policy" in line]
    assert len(warning) == 1 and "allkeys-lru" in warning[0], result.stdout


def test_info_memory_tells_when_config_is_renamed_away(tmp_path: Path, evicting_without_config: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError):
        evicting_without_config.config_get("maxmemory-policy")
    policy = read_policy(evicting_without_config)
    assert (policy.via, policy.policy, policy.maxmemory, policy.evicts) == ("INFO", "allkeys-lru", 100 * 2**20, True)
    result = _crmsync(tmp_path, evicting_without_config, "worker")
    assert result.returncode == 2 and "maxmemory-policy" in result.stderr, result.stderr


def test_noeviction_or_no_limit_is_accepted_and_unreadable_is_said(evicting: redis.Redis) -> None:
    evicting.config_set("maxmemory-policy", "noeviction")
    assert read_policy(evicting).evicts is False and read_policy(evicting).problem() is None
    evicting.config_set("maxmemory-policy", "allkeys-lru")
    evicting.config_set("maxmemory", "0")  # no limit: nothing is ever evicted
    assert read_policy(evicting).evicts is False
    evicting.execute_command("ACL", "SETUSER", "blind", "on", ">pw", "~*", "+@all", "-config", "-info")
    blind = redis.Redis(
        port=evicting.connection_pool.connection_kwargs["port"], username="blind", password="pw", decode_responses=True
    )
    try:
        policy = read_policy(blind)
    finally:
        blind.close()
    assert policy.via == "unreadable" and not policy.evicts
    assert policy.problem() is not None and policy.problem().startswith("maxmemory-policy: could not be read")  # type: ignore[union-attr]
