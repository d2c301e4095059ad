"""Everything a worker process needs, built once from the config: Redis, PostHog client, ledger, engine, connectors."""

from __future__ import annotations

import threading
from functools import cached_property

import redis
import structlog

from connectors.registry import build_connector
from sync.budget import RequestBudget, posthog_budget_key
from sync.connector import Connector
from sync.engine import SyncEngine
from sync.errors import ConfigError
from sync.ledger import Ledger
from sync.posthog.client import PostHogClient
from sync.posthog.custom_properties import require_definitions
from sync.posthog.scopes import require_scopes
from sync.ratelimit import BudgetExhausted
from workers.config import AppConfig, load_config
from workers.leases import TaskLeases
from workers.redis_conn import connect

log = structlog.get_logger("crmsync.runtime")


class Runtime:
    """One per process (Celery worker, webhook server, CLI). Connectors are built on first use."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.settings = config.posthog_settings()
        self._connectors: dict[str, Connector] = {}
        self._lock = threading.Lock()

    @cached_property
    def redis(self) -> redis.Redis:
        timeout = self.config.redis_timeout_s
        return connect(
            self.config.redis_url,
            self.config.redis_sentinel_master,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )

    @cached_property
    def posthog_budget(self) -> RequestBudget | None:
        """PostHog's request budget for this host and key, shared through Redis by every worker; None when the
        config says PostHog does not throttle (``posthog.budget: []``)."""
        windows = self.settings.budget_windows
        if not windows:
            return None
        key = posthog_budget_key(
            self.config.ledger_prefix, self.settings.base_url, self.settings.personal_api_key.get_secret_value()
        )
        return RequestBudget(
            self.redis,
            key,
            windows,
            margin_s=self.settings.budget_margin_s,
            max_wait_s=self.settings.budget_max_wait_s,
            realtime_share=self.settings.realtime_share,
        )

    @cached_property
    def posthog(self) -> PostHogClient:
        return PostHogClient(self.settings, budget=self.posthog_budget)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.settings.project_id, prefix=self.config.ledger_prefix)

    @cached_property
    def engine(self) -> SyncEngine:
        return SyncEngine(self.posthog, self.ledger, self.config.mapping, lease_ms=self.config.leases.ttl_ms)

    @cached_property
    def task_leases(self) -> TaskLeases:
        return TaskLeases(self.redis, self.ledger.ns, self.config.leases.ttl_ms)

    def connector(self, source: str) -> Connector:
        with self._lock:
            if source not in self._connectors:
                block = self.config.sources.get(source)
                if block is None or not block.enabled:
                    raise ConfigError(f"sources.{source}", "not configured or not enabled")
                self._connectors[source] = build_connector(source, block.config, self.redis, self.config.mapping)
            return self._connectors[source]

    def check_sources(self) -> None:
        """Start-up check: build the connector of every enabled source, so a bad key in a connector's config
        raises ``ConfigError`` naming it (``sources.hubspot.config.page_size``) now, not at its first use."""
        for source in self.config.enabled_sources():
            self.connector(source)

    def built_connectors(self) -> dict[str, Connector]:
        """The connectors built (or installed) so far, by source."""
        with self._lock:
            return dict(self._connectors)

    def install_connector(self, source: str, connector: Connector) -> None:
        """Use this connector object for ``source`` instead of building one from the config (embedding, tests)."""
        with self._lock:
            self._connectors[source] = connector

    def check_posthog_key(self) -> None:
        """Start-up check of a worker: raise ``ConfigError`` naming each PostHog scope the key lacks.

        Six harmless probes (``sync/posthog/scopes.py``), so that a key without, say, ``usage_metric:write``
        stops the worker at once instead of failing runs one by one later. A client of its own, closed at once:
        the worker forks its pool after this, and children must not share an open connection.

        The probes draw on PostHog's request budget like any call. When it is spent for longer than a call may
        wait (another worker's backlog, a 429 block), the check is skipped with a warning rather than keeping the
        worker from starting: a missing scope still fails the first run that needs it, naming the scope."""
        with PostHogClient(self.settings, budget=self.posthog_budget) as client:
            try:
                require_scopes(client)
            except BudgetExhausted as exc:
                log.warning("PostHog scope check skipped: request budget spent", retry_after=exc.retry_after)

    def check_custom_properties(self) -> None:
        """Start-up check of a worker: every custom property definition the mapping declares exists in PostHog,
        with the declared type (one list request; none without ``custom.*`` fields). A missing one raises
        ``ConfigError`` naming the mapping key (``crmsync setup posthog`` creates it)."""
        with PostHogClient(self.settings, budget=self.posthog_budget) as client:
            try:
                require_definitions(client, self.config.mapping)
            except BudgetExhausted as exc:
                log.warning("custom property check skipped: request budget spent", retry_after=exc.retry_after)

    def streams(self, source: str) -> list[str]:
        """The streams of ``source`` that have a mapping (in the connector's order)."""
        mapped = self.config.mapping.mappings.get(source, {})
        return [s for s in self.connector(source).streams if s in mapped]

    def close(self) -> None:
        """Close every connector built so far (their HTTP sessions and pools), the PostHog client and Redis."""
        with self._lock:
            connectors, self._connectors = list(self._connectors.values()), {}
        for connector in connectors:
            connector.close()
        if "posthog" in self.__dict__:
            self.posthog.close()
        if "redis" in self.__dict__:
            self.redis.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, from ``CRMSYNC_CONFIG`` (built on first use)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(load_config())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (the CLI's ``--config``, tests); None forgets it."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
