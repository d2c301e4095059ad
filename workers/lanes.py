"""The worker layout: webhook refreshes get worker processes bulk work cannot occupy.

One Celery node's pool takes tasks from every queue it consumes, whichever process is free: two pool processes busy
with ``write_plan`` chunks (each minutes long under PostHog's budget) left a refresh waiting in ``realtime`` for
52 s (issue 20). So ``crmsync worker`` consuming both queues runs two nodes:

- itself, consuming every queue but ``realtime``, with ``--concurrency`` pool processes;
- a child ``crmsync worker --queues realtime --concurrency <realtime processes>`` (default 1), its own Celery node
  (``crmsync-<pid>@<host>``, or ``<name>-realtime@<host>`` when ``-n`` names the parent), started after the
  parent's checks passed and stopped with it (``PR_SET_PDEATHSIG`` as well, should the parent be killed).

``--realtime-processes 0`` consumes every queue in one pool, as before. The PostHog side of the lane (a refresh is
first at the next free slot, and holds a reserved share while active) is ``sync/budget.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys

REALTIME = "realtime"
PR_SET_PDEATHSIG = 1


def split_queues(queues: str, realtime_processes: int) -> tuple[str, bool]:
    """The parent node's queues, and whether a realtime child node runs beside it: only when the worker was asked
    for ``realtime`` and something else, and for realtime processes of their own."""
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if realtime_processes < 1 or REALTIME not in names or names == [REALTIME]:
        return ",".join(names), False
    return ",".join(q for q in names if q != REALTIME), True


def realtime_node_name(hostname: str | None) -> str | None:
    """The child's node name when the parent's is given (``name@host`` → ``name-realtime@host``); else None: the
    child names itself ``crmsync-<its pid>@<host>``."""
    if not hostname:
        return None
    name, at, host = hostname.partition("@")
    return f"{name}-{REALTIME}{at}{host}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the parent dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_realtime_node(processes: int, loglevel: str, hostname: str | None) -> subprocess.Popen[bytes]:
    """``crmsync worker --queues realtime`` as a child (same config and environment, same stdout/stderr)."""
    command = [sys.executable, "-m", "workers.cli", "worker", "--queues", REALTIME, "--concurrency", str(processes)]
    command += ["--realtime-processes", "0", "--loglevel", loglevel, "--checked"]
    name = realtime_node_name(hostname)
    if name:
        command += ["--hostname", name]
    return subprocess.Popen(command, preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def stop_node(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Warm shutdown (SIGTERM: running tasks finish), then kill if it does not end in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
