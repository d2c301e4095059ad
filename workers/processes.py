"""Start a real ``crmsync worker`` process and wait until it answers: for the demo, tests and benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from celery import Celery


def start_worker(
    config_path: Path,
    env: dict[str, str],
    log: IO[bytes] | int | None = subprocess.DEVNULL,
    concurrency: int = 2,
    queues: str = "bulk,realtime",
    loglevel: str = "WARNING",
) -> subprocess.Popen[bytes]:
    """``crmsync --config PATH worker`` as a child process (``env`` should carry ``REDIS_URL`` and secrets)."""
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
    ]
    return subprocess.Popen(
        command, env={**env, "CRMSYNC_CONFIG": str(config_path)}, stdout=log, stderr=subprocess.STDOUT
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


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Terminate, then kill if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
