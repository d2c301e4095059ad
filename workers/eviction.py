"""No silent eviction: crmsync's ledger, cursors, plans and queues live in Redis and must never be evicted.

A Redis with ``maxmemory`` set and an evicting ``maxmemory-policy`` (``allkeys-lru``, ``volatile-ttl``, ...) drops
keys when it fills up: a ledger that forgets what it wrote makes the next run re-write and re-push everything, a
dropped plan or queue loses work. So ``worker``, ``beat``, ``webhooks serve`` and ``sync`` refuse to start on such a
Redis (``check_no_eviction``, one line naming ``maxmemory-policy``) and ``status`` prints a warning line.

How it is read: ``CONFIG GET maxmemory`` and ``CONFIG GET maxmemory-policy``; managed Redis services often disable
or rename ``CONFIG``, so then ``INFO memory`` (its ``maxmemory`` and ``maxmemory_policy`` fields, Redis 4+). When
neither answers, the policy is unknown: the commands start with a warning naming ``maxmemory-policy`` (a check that
cannot be made must not keep a working deployment down), and ``status`` shows the same warning.
``maxmemory 0`` (no limit, Redis's default) never evicts whatever the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from sync.errors import ConfigError

SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class EvictionPolicy:
    """What Redis says about eviction: ``policy`` None when neither CONFIG nor INFO could tell (``via`` says which)."""

    maxmemory: int | None
    policy: str | None
    via: str  # "CONFIG", "INFO" or "unreadable"

    @property
    def evicts(self) -> bool:
        """True when Redis may drop keys: a memory limit and a policy other than ``noeviction``."""
        return bool(self.maxmemory) and self.policy is not None and self.policy != SAFE_POLICY

    @property
    def known(self) -> bool:
        return self.policy is not None

    def reason(self) -> str | None:
        """Why Redis is not safe for crmsync (None when it is); ``problem`` prefixes it with ``maxmemory-policy``."""
        if self.evicts:
            return (
                f"Redis evicts keys when full ({self.policy}, maxmemory {self.maxmemory} bytes) and would silently "
                f"forget crmsync's ledger; set maxmemory-policy {SAFE_POLICY} (or maxmemory 0)"
            )
        if not self.known:
            return (
                f"could not be read (CONFIG GET and INFO memory refused); make sure it is {SAFE_POLICY}, or "
                "crmsync's ledger may be silently evicted"
            )
        return None

    def problem(self) -> str | None:
        """One line naming ``maxmemory-policy`` when Redis evicts or cannot tell; None when it is safe."""
        reason = self.reason()
        return None if reason is None else f"maxmemory-policy: {reason}"


def read_policy(client: redis.Redis) -> EvictionPolicy:
    """``maxmemory`` and ``maxmemory-policy`` from ``CONFIG GET``, else from ``INFO memory``, else unknown."""
    try:
        config: dict[str, Any] = {}
        for name in ("maxmemory", "maxmemory-policy"):
            config.update(cast(dict[str, Any], client.config_get(name)))
        if "maxmemory-policy" in config:
            return EvictionPolicy(_int(config.get("maxmemory")), str(config["maxmemory-policy"]), "CONFIG")
    except redis.exceptions.ResponseError:
        pass  # CONFIG disabled, renamed (an unknown command) or not allowed to this user (NOPERM)
    try:
        memory = cast(dict[str, Any], client.info("memory"))
    except redis.exceptions.ResponseError:
        return EvictionPolicy(None, None, "unreadable")
    policy = memory.get("maxmemory_policy")
    if policy is None:
        return EvictionPolicy(None, None, "unreadable")
    return EvictionPolicy(_int(memory.get("maxmemory")), str(policy), "INFO")


def check_no_eviction(client: redis.Redis) -> str | None:
    """Start-up check: ``ConfigError`` naming ``maxmemory-policy`` when Redis evicts; the warning to show (or None)
    when the policy cannot be read."""
    policy = read_policy(client)
    if policy.evicts:
        raise ConfigError("maxmemory-policy", str(policy.reason()))
    return policy.problem()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
