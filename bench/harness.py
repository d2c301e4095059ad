"""What every benchmark scenario stands on: a private Redis, the stand-ins, real Celery worker processes, counters.

- ``RedisServer``: a ``redis-server`` of its own on a free loopback port (no persistence), so that
  ``INFO commandstats`` deltas count crmsync's commands only, not those of other clients of a shared Redis.
- ``Env``: the four stand-ins (``SandboxStack``) seeded with ``records`` identities per CRM, a config file for them,
  a ``Runtime`` in this process (to enqueue and to serve webhooks), and ``workers`` Celery pool processes started
  as ``crmsync worker --concurrency N`` (like ``workers/demo.py``).
- ``Counters``: a snapshot of every stand-in's ``/_sandbox/stats`` and of Redis ``commandstats``; ``delta`` of two
  snapshots is what one scenario cost.
- ``peak_rss_kib``: the largest ``VmHWM`` among the worker's processes (the Celery main process and its pool
  children); ``reset_peak_rss`` zeroes it (``/proc/<pid>/clear_refs`` ← 5) so each scenario has its own peak.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from sandbox.posthog.config import Generation
from sandbox.posthog.throttle import ThrottleRate
from sandbox.stack import POSTHOG_KEY, SandboxStack
from workers.config import parse_config
from workers.processes import RedisServer
from workers.runtime import Runtime, set_runtime

CRMS = ("salesforce", "hubspot", "stripe")
STANDINS = ("posthog", *CRMS)
READ_POSTS = ("/search", "/batch/read", "oauth2/token", "/query")
"""Route fragments of POST requests that only read (HubSpot search and batch read, OAuth, SOQL)."""


def is_write(method: str, route: str) -> bool:
    """Whether a request (method and route template, as the stand-ins count them) changes data."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not any(fragment in route for fragment in READ_POSTS)


@dataclass
class Counters:
    """Request counts per stand-in as ``{(method, route): n}`` and Redis calls per command."""

    requests: dict[str, dict[tuple[str, str], int]]
    redis_calls: dict[str, int]

    def delta(self, before: Counters) -> Counters:
        requests: dict[str, dict[tuple[str, str], int]] = {}
        for name, counts in self.requests.items():
            old = before.requests.get(name, {})
            diff = {k: n - old.get(k, 0) for k, n in counts.items() if n - old.get(k, 0)}
            requests[name] = diff
        calls = {k: n - before.redis_calls.get(k, 0) for k, n in self.redis_calls.items()}
        return Counters(requests, {k: n for k, n in calls.items() if n})

    def total(self, name: str) -> int:
        return sum(self.requests.get(name, {}).values())

    def writes(self, name: str) -> int:
        return sum(n for (m, r), n in self.requests.get(name, {}).items() if is_write(m, r))

    def by_method(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (method, _), n in self.requests.get(name, {}).items():
            out[method] = out.get(method, 0) + n
        return dict(sorted(out.items()))

    def by_route(self, name: str) -> dict[str, int]:
        return {f"{m} {r}": n for (m, r), n in sorted(self.requests.get(name, {}).items())}

    def redis_total(self, exclude: tuple[str, ...] = ("info",)) -> int:
        return sum(n for k, n in self.redis_calls.items() if k not in exclude)


def stand_in_counts(http: httpx.Client, url: str) -> dict[tuple[str, str], int]:
    """``/_sandbox/stats`` of one stand-in as ``{(method, route template): count}`` (all statuses)."""
    stats = http.get(f"{url}/_sandbox/stats").json()
    counts: dict[tuple[str, str], int] = {}
    for row in stats["requests"]:
        key = (str(row["method"]), str(row["route"]))
        counts[key] = counts.get(key, 0) + int(row["count"])
    return counts


def without_custom_properties(config: dict[str, Any]) -> dict[str, Any]:
    """The config without its ``custom.*`` fields and ownership rules: the seed and transitional generations have
    no custom properties, so a user of such a server maps none (a worker's start-up check would refuse them)."""
    config = {
        **config,
        "ownership": {k: v for k, v in config.get("ownership", {}).items() if not k.startswith("custom.")},
    }
    mappings: dict[str, Any] = {}
    for source, streams in config.get("mappings", {}).items():
        mappings[source] = {}
        for stream, spec in streams.items():
            fields = [f for f in spec.get("fields", []) if not str(f.get("target", "")).startswith("custom.")]
            mappings[source][stream] = {**spec, "fields": fields}
    config["mappings"] = mappings
    return config


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in text.split():
            found.append(int(child))
            found.extend(_children(int(child)))
    return found


def process_tree(pid: int) -> list[int]:
    return [pid, *_children(pid)]


def _vm_field(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peak_rss_kib(pid: int) -> int:
    """The largest ``VmHWM`` (peak resident set, KiB) of the process and its descendants."""
    return max((_vm_field(p, "VmHWM") for p in process_tree(pid)), default=0)


def reset_peak_rss(pid: int) -> None:
    """Reset ``VmHWM`` of the process tree to the current RSS (Linux ``clear_refs`` = 5)."""
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{p}/clear_refs").write_text("5")


@dataclass
class Env:
    """One benchmark environment: Redis, stand-ins, config, runtime, workers; ``close()`` undoes everything.

    Give several environments of one run the same ``RedisServer`` (``redis=``): the Celery app of this process keeps
    its broker connections, so it must keep talking to one server; ``close()`` then empties it instead of stopping it.
    """

    records: int
    workers: int = 2
    concurrency: int = 1  # pool processes of each worker (``crmsync worker --concurrency``)
    coalesce_s: float = 0.25
    start_workers: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="crmsync-bench-")))
    redis: RedisServer | None = None
    posthog_throttle: tuple[ThrottleRate, ...] = ()  # the PostHog stand-in's throttles; the config's budget matches
    posthog_generation: Generation = "current"  # the PostHog API generation the stand-in serves (docs/posthog.md)
    stack: SandboxStack | None = None
    runtime: Runtime | None = None
    worker_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    http: httpx.Client | None = None
    config_path: Path | None = None
    recorders: dict[str, Recorder] = field(default_factory=dict)
    own_redis: bool = False

    def start(self) -> Env:
        if self.redis is None:
            self.redis = RedisServer(self.workdir).start()
            self.own_redis = True
        prefix = f"crmsync-bench-{uuid.uuid4().hex[:8]}"
        self.stack = SandboxStack(
            seed=self.records,
            redis_url=self.redis.url,
            webhooks=False,
            ledger_prefix=prefix,
            data_dir=self.workdir / "sandbox",
            posthog_throttle=self.posthog_throttle,
            posthog_generation=self.posthog_generation,
        )
        self.stack.start()
        self.recorders = install_recorders(self.stack)
        self.http = httpx.Client(timeout=120, verify=str(self.stack.ca_file))
        config = self.stack.config()
        if self.posthog_generation != "current":
            config = without_custom_properties(config)
        config["webhooks"] = {**config.get("webhooks", {}), "coalesce_s": self.coalesce_s}
        if self.posthog_throttle:  # windows scaled down in time: so is the budget's margin against jitter
            scale = min(r.duration_s for r in self.posthog_throttle) / 60
            config["posthog"]["budget_margin_s"] = round(0.5 * scale, 3)
        self.config_path = self.workdir / "crmsync.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        overrides = {
            "POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY,
            "REDIS_URL": self.redis.url,
            "CRMSYNC_CONFIG": str(self.config_path),
        }
        self._saved_env = {key: os.environ.get(key) for key in overrides}  # put back by close()
        os.environ.update(overrides)
        self.runtime = Runtime(parse_config(config, str(self.config_path)))
        set_runtime(self.runtime)
        from workers.celery_app import configure

        configure(self.redis.url)
        if self.start_workers:
            self.start_worker()
        return self

    def start_worker(self) -> None:
        """``workers`` separate ``crmsync worker --concurrency <concurrency>`` processes (1 by default), each its own
        Celery node, so a worker process is a process whatever the pool does (and peak memory is per process); each
        runs its realtime node beside it, as ``crmsync worker`` does."""
        assert self.config_path is not None and self.redis is not None
        env = {**os.environ, "CRMSYNC_CONFIG": str(self.config_path), "REDIS_URL": self.redis.url}
        cmd = [sys.executable, "-m", "workers.cli", "--config", str(self.config_path), "worker"]
        cmd += ["--concurrency", str(self.concurrency), "--loglevel", "WARNING"]
        for n in range(self.workers):
            log = (self.workdir / f"worker{n}.log").open("wb")
            self.worker_procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        from workers.celery_app import app

        app.control.purge()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for proc in self.worker_procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {proc.returncode}: see {self.workdir}/worker*.log")
            replies = app.control.ping(timeout=1.0)
            if len(replies) >= self.workers or (replies and time.monotonic() > deadline - 100):
                time.sleep(1.0)  # same node name on one host: ping may merge replies; let the rest finish booting
                return
        raise RuntimeError("the workers did not come up")

    def url(self, name: str) -> str:
        assert self.stack is not None
        return self.stack.url(name)

    def counters(self) -> Counters:
        assert self.http is not None and self.redis is not None
        requests = {name: stand_in_counts(self.http, self.url(name)) for name in STANDINS}
        return Counters(requests, self.redis.commandstats())

    def peak_rss_kib(self) -> int:
        """The largest peak RSS of any one worker process (Celery main process or pool child)."""
        return max((peak_rss_kib(p.pid) for p in self.worker_procs), default=0)

    def reset_peak_rss(self) -> None:
        for proc in self.worker_procs:
            reset_peak_rss(proc.pid)

    def close(self) -> None:
        if self.worker_procs:
            from workers.celery_app import app

            app.control.purge()
        for proc in self.worker_procs:
            proc.terminate()
        for proc in self.worker_procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.runtime is not None:
            self.runtime.close()
        set_runtime(None)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self.http is not None:
            self.http.close()
        if self.stack is not None:
            self.stack.stop()
        if self.redis is not None:
            if self.own_redis:
                self.redis.stop()
            else:
                self.redis.client.flushall()  # a private server: nothing else lives there
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Env:
        try:
            return self.start()
        except BaseException:
            self.close()  # whatever did start (Redis, stand-ins, workers) must not outlive a failed start
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float = 0.0  # time.monotonic() when the stand-in had answered it


class Recorder:
    """Keeps a copy of every vendor API request a stand-in serves while ``on`` (admin routes excluded).

    Installed around the stand-in app's built middleware stack (Starlette calls ``app.middleware_stack``), so the
    ceiling can replay exactly the requests crmsync made, from one tight ``httpx`` loop.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.on = False
        self.requests: list[RecordedRequest] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.on or scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.inner(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            await self.inner(scope, recording_receive, send)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            body = b"".join(chunks)
            self.requests.append(
                RecordedRequest(scope["method"], scope["path"], query, headers, body, time.monotonic())
            )


def install_recorders(stack: SandboxStack) -> dict[str, Recorder]:
    """A ``Recorder`` around each stand-in app (off until ``on`` is set)."""
    recorders: dict[str, Recorder] = {}
    for name, server in stack.servers.items():
        app: Any = server._server.config.app  # the stand-in's FastAPI app
        if getattr(app, "middleware_stack", None) is None:
            app.middleware_stack = app.build_middleware_stack()
        recorder = Recorder(app.middleware_stack)
        app.middleware_stack = recorder
        recorders[name] = recorder
    return recorders
