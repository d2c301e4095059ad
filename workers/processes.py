"""Real processes for the demo, tests and benchmarks: a ``crmsync worker`` (started, awaited, stopped) and a
private ``redis-server`` on a free loopback port."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import redis
from celery import Celery

from workers.serving import free_port


def start_worker(
    config_path: Path,
    env: dict[str, str],
    log: IO[bytes] | int | None = subprocess.DEVNULL,
    concurrency: int = 2,
    queues: str = "bulk,realtime",
    loglevel: str = "WARNING",
    hostname: str | None = None,
) -> subprocess.Popen[bytes]:
    """``crmsync --config PATH worker`` as a child process (``env`` should carry ``REDIS_URL`` and secrets);
    ``hostname`` is its Celery node name (default: the worker's own, unique per process). It starts in a process
    group of its own (its pid), so that the worker and its pool can be killed at once (``killpg``)."""
    command = [
        sys.executable,
        "-m",
        "workers.cli",
        "--config",
        str(config_path),
        "worker",
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "--loglevel",
        loglevel,
        *(["--hostname", hostname] if hostname else []),
    ]
    return subprocess.Popen(
        command,
        env={**env, "CRMSYNC_CONFIG": str(config_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a group of its own, with its pool: ``stop_process`` ends them all
    )


def wait_for_worker(app: Celery, worker: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Block until a worker answers ``ping`` (``RuntimeError`` if the process dies or the time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError("the worker did not come up")


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 20) -> None:
    """Terminate, then kill if it does not exit in time. A process started in a session of its own
    (``start_new_session=True``: a worker and its pool, ``sandbox up``) is ended with its whole group, and whatever
    of the group outlives its leader (a pool child) is killed too: nothing a test starts is left running."""
    group = _own_group(process)
    _signal(process, group, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal(process, group, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def _own_group(process: subprocess.Popen[Any]) -> int | None:
    """The process group ``process`` leads, or None (it shares its parent's, or is already gone)."""
    try:
        return process.pid if os.getpgid(process.pid) == process.pid else None
    except ProcessLookupError:
        return None


def _signal(process: subprocess.Popen[Any], group: int | None, signum: int) -> None:
    if group is None:
        if process.poll() is None:
            process.send_signal(signum)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


class RedisServer:
    """A ``redis-server`` of its own on a free loopback port, without persistence (``--save "" --appendonly no``).

    For what must not touch a shared server: restarting Redis mid-run, a worker's queues, counting commands.
    ``restart()`` gives an empty Redis on the same port, as after a crash of a server that keeps nothing.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, decode_responses=True, socket_connect_timeout=0.5)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.workdir is not None:
            args += ["--dir", str(self.workdir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client.ping():
                    return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer") from None
                time.sleep(0.05)

    def commandstats(self) -> dict[str, int]:
        """Calls per command since the server started (``INFO commandstats``)."""
        info: Any = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        self.client.connection_pool.disconnect()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        # Celery results waiting on this server are finalised now, while it still answers: collected later, each one
        # would retry its lost connection for 20 s in whatever thread the collector happened to run
        gc.collect()
        self.stop()
