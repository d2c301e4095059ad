"""The one place a Redis client is built from ``REDIS_URL``: a plain ``redis://`` URL, or Celery's Sentinel form.

Sentinel (``docs/operations.md``): ``REDIS_URL="sentinel://host:26379;sentinel://host:26380;sentinel://host:26381"``
with the master's name in ``REDIS_SENTINEL_MASTER`` (or the config's ``redis_sentinel_master``). This is the form
kombu's ``SentinelChannel`` reads for the broker (each node a ``sentinel://`` URL, separated by ``;``; the master's
name in the transport option ``master_name``: ``kombu/transport/redis.py``) and Celery's ``SentinelBackend`` for
results (``celery/backends/redis.py``: ``result_backend_transport_options["master_name"]``), so the broker, the
results and the ledger (redis-py's ``Sentinel(...).master_for(name)``) all follow the same master through a
failover. As in both, a password and a database number in the URL (``sentinel://:pw@host:26379/2``, from the
first node) are the *master's*; the sentinels themselves are reached without one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from sync.errors import ConfigError

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def sentinel_nodes(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The sentinels of a ``sentinel://...;sentinel://...`` URL, and the master's ``db``/``password``/``username``
    (from the first node). ``ConfigError`` names ``REDIS_URL`` without echoing it (it may hold a password)."""
    nodes: list[tuple[str, int]] = []
    params: dict[str, Any] = {}
    for n, chunk in enumerate(c.strip() for c in url.split(";")):
        if not chunk:
            continue  # a trailing ';'
        parts = urlsplit(chunk)
        try:
            port = parts.port or DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ConfigError("REDIS_URL", f"sentinel node {n + 1} has no valid port") from None
        if parts.scheme.lower() != SENTINEL_SCHEME or not parts.hostname:
            raise ConfigError("REDIS_URL", f"sentinel node {n + 1} is not a sentinel://host:port URL")
        nodes.append((parts.hostname, port))
        if len(nodes) == 1:
            db = parts.path.strip("/")
            if db and not db.isdigit():
                raise ConfigError("REDIS_URL", "the database after the first sentinel must be a number")
            params = {"db": int(db or 0)}
            if parts.password:
                params["password"] = unquote(parts.password)
            if parts.username:
                params["username"] = unquote(parts.username)
    if not nodes:
        raise ConfigError("REDIS_URL", "no sentinel in the sentinel:// URL")
    return nodes, params


def connect(url: str, sentinel_master: str | None = None, **options: Any) -> redis.Redis:
    """A client (``decode_responses``) for ``url``; for a Sentinel URL, one that always talks to the current
    master of ``sentinel_master`` (redis-py asks the sentinels again after a connection error)."""
    kwargs: dict[str, Any] = {"decode_responses": True, "health_check_interval": 30, **options}
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    if not sentinel_master:
        raise ConfigError("REDIS_SENTINEL_MASTER", "a sentinel:// REDIS_URL needs the master's name")
    nodes, params = sentinel_nodes(url)
    timeouts = {k: v for k, v in kwargs.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel_kwargs = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, **timeouts}
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(sentinel_master, **params, **kwargs)  # type: ignore[no-untyped-call]
    return client


def transport_options(url: str, sentinel_master: str | None) -> dict[str, Any]:
    """What Celery's broker and results backend need besides the URL: the master's name for a Sentinel URL."""
    return {"master_name": sentinel_master} if is_sentinel(url) and sentinel_master else {}
