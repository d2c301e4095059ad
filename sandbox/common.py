"""Pieces every stand-in shares: request counters, fault injection, admin routes, an in-process server.

Each stand-in (PostHog, HubSpot, Stripe, Salesforce) is a FastAPI app that speaks its vendor's wire format.
What they have in common lives here so that benchmarks and fault tests drive all four the same way:

- ``GET  /_sandbox/health``  → ``{"ok": true}``
- ``GET  /_sandbox/stats``   → request counts by method, route template and status (``StatsRecorder``), and
  ``throttled``: the 429s the stand-in answered by its own rate limits (injected faults are counted apart)
- ``POST /_sandbox/stats/reset`` → zero the counters, keep the data
- ``POST /_sandbox/faults``  → ``{"rate_429", "rate_5xx", "status_5xx", "latency_ms", "retry_after_s", "seed"}``;
  ``{}`` clears
- ``POST /_sandbox/reset``   → clears stats and faults, and the stand-in's own data through its reset hook

Faults are answered in the vendor's own error shape, through a ``FaultResponder`` each stand-in supplies.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.serving import ServerThread

ADMIN_PREFIX = "/_sandbox"
FAULT_ROUTE = "<fault>"
"""The route injected faults are counted under in the stats."""

FaultResponder = Callable[[int, float], Response]
"""Builds the vendor-shaped response for an injected fault: (status 429 or 5xx, retry-after seconds)."""


class FaultConfig(BaseModel):
    """What ``POST /_sandbox/faults`` accepts. Rates are probabilities per request (admin routes exempt)."""

    model_config = ConfigDict(extra="forbid")

    rate_429: float = Field(0.0, ge=0.0, le=1.0)
    rate_5xx: float = Field(0.0, ge=0.0, le=1.0)
    status_5xx: int = Field(500, ge=500, le=599)  # which 5xx: 503 for "unavailable" (deploys, overload)
    latency_ms: float = Field(0.0, ge=0.0, le=60_000)
    retry_after_s: float | None = Field(None, ge=0.0, le=3600)
    seed: int | None = None


@dataclass
class StatsRecorder:
    """Counts requests by (method, route template, status); thread-safe, cheap."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    faults_injected: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.counts[(method, route, status)] += 1

    def record_fault(self, status: int) -> None:
        with self._lock:
            self.faults_injected[status] += 1

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.faults_injected.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            items = sorted(self.counts.items())
            faults = dict(self.faults_injected)
        by_method: Counter[str] = Counter()
        for (method, _, _), n in items:
            by_method[method] += n
        return {
            "total": sum(n for _, n in items),
            "throttled": sum(n for (_, route, status), n in items if status == 429 and route != FAULT_ROUTE),
            "by_method": dict(by_method),
            "requests": [{"method": m, "route": r, "status": s, "count": n} for (m, r, s), n in items],
            "faults_injected": {str(k): v for k, v in sorted(faults.items())},
        }


class FaultInjector:
    """Decides per request whether to answer with an injected 429 or 5xx, and how long to stall first."""

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()
        self._lock = threading.Lock()

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)

    def draw(self) -> int | None:
        """Status to inject for this request, or None to serve it normally."""
        with self._lock:
            cfg = self.config
            if not cfg.rate_429 and not cfg.rate_5xx:
                return None
            roll = self._rng.random()
        if roll < cfg.rate_429:
            return 429
        if roll < cfg.rate_429 + cfg.rate_5xx:
            return cfg.status_5xx
        return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class SandboxMiddleware:
    """Pure ASGI middleware: injects faults and latency, then counts the request under its route template."""

    def __init__(
        self,
        app: ASGIApp,
        stats: StatsRecorder,
        faults: FaultInjector,
        fault_responder: FaultResponder,
        retry_after_header: bool = True,
    ) -> None:
        self.app = app
        self.stats = stats
        self.faults = faults
        self.fault_responder = fault_responder
        self.retry_after_header = retry_after_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        cfg = self.faults.config
        if cfg.latency_ms:
            await asyncio.sleep(cfg.latency_ms / 1000)
        injected = self.faults.draw()
        if injected is not None:
            self.stats.record_fault(injected)
            self.stats.record(method, FAULT_ROUTE, injected)
            response = self.fault_responder(injected, cfg.retry_after_s or 0.0)
            if self.retry_after_header and cfg.retry_after_s is not None and injected == 429:
                response.headers["Retry-After"] = f"{cfg.retry_after_s:g}"
            await response(scope, receive, send)
            return

        status_holder: dict[str, int] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.stats.record(method, _route_template(scope), status_holder["status"])


@dataclass
class SandboxKit:
    """The shared machinery one stand-in app carries; build with ``install_sandbox``."""

    stats: StatsRecorder
    faults: FaultInjector


def install_sandbox(
    app: FastAPI,
    fault_responder: FaultResponder,
    reset_hook: Callable[[], Awaitable[None] | None] | None = None,
    *,
    retry_after_header: bool = True,
) -> SandboxKit:
    """Add counters, fault injection and the ``/_sandbox/*`` admin routes to a stand-in app.

    ``retry_after_header=False``: an injected 429 is left as the responder built it (PostHog sends none).
    """
    kit = SandboxKit(stats=StatsRecorder(), faults=FaultInjector())

    @app.get(f"{ADMIN_PREFIX}/health", include_in_schema=False)
    def _health() -> dict[str, bool]:
        return {"ok": True}

    @app.get(f"{ADMIN_PREFIX}/stats", include_in_schema=False)
    def _stats() -> dict[str, Any]:
        return kit.stats.snapshot()

    @app.post(f"{ADMIN_PREFIX}/stats/reset", include_in_schema=False)
    def _stats_reset() -> dict[str, bool]:
        kit.stats.reset()
        return {"ok": True}

    @app.post(f"{ADMIN_PREFIX}/faults", include_in_schema=False)
    def _faults(config: FaultConfig) -> dict[str, Any]:
        kit.faults.configure(config)
        return config.model_dump()

    @app.post(f"{ADMIN_PREFIX}/reset", include_in_schema=False)
    async def _reset() -> JSONResponse:
        kit.stats.reset()
        kit.faults.configure(FaultConfig())
        if reset_hook is not None:
            result = reset_hook()
            if result is not None:
                await result
        return JSONResponse({"ok": True})

    app.add_middleware(
        SandboxMiddleware,
        stats=kit.stats,
        faults=kit.faults,
        fault_responder=fault_responder,
        retry_after_header=retry_after_header,
    )
    return kit


@contextmanager
def serving(app: ASGIApp, **kwargs: Any) -> Iterator[ServerThread]:
    """``with serving(app) as server: httpx.get(server.url + ...)``."""
    server = ServerThread(app, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: the exact bytes to POST and the headers (signature included)."""

    url: str
    body: bytes
    headers: dict[str, str]


class WebhookSender:
    """Delivers a stand-in's webhooks from a background thread, in order, retrying failures with backoff.

    Real vendors deliver asynchronously and retry on non-2xx; so does this. ``sign`` is called at each
    attempt (vendors re-sign retries with a fresh timestamp). Counts are exposed for tests.
    """

    def __init__(self, max_attempts: int = 5, base_delay_s: float = 0.2, timeout_s: float = 5.0) -> None:
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self._queue: queue.Queue[tuple[str, bytes, Callable[[bytes], dict[str, str]]] | None] = queue.Queue()
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self.delivered = 0
        self.failed = 0
        self.attempts = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
        self._thread.start()

    def send(self, url: str, body: bytes, sign: Callable[[bytes], dict[str, str]]) -> None:
        """Queue ``body`` for ``url``; ``sign(body)`` returns the headers to send with it."""
        self._queue.put((url, body, sign))

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery was sent or given up; True if the queue emptied in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Stop: deliveries still queued are dropped and a delivery being retried is given up (a stand-in that stops
        owes nobody its backlog, and must not hold ``sandbox up`` past Ctrl-C); waits up to ``timeout`` for the
        delivery in flight, if any (the thread is a daemon: it cannot keep the process alive)."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        if not self._thread.is_alive():
            self._client.close()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if not self._closing.is_set():
                    self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, url: str, body: bytes, sign: Callable[[bytes], dict[str, str]]) -> None:
        for attempt in range(self.max_attempts):
            if self._closing.is_set():
                return
            self.attempts += 1
            try:
                response = self._client.post(url, content=body, headers=sign(body))
                if response.status_code < 300:
                    self.delivered += 1
                    return
            except httpx.HTTPError:
                pass
            self._closing.wait(self.base_delay_s * (2**attempt))
        self.failed += 1
