"""Waiting on real processes in end-to-end tests: poll a condition with a deadline, find a task's pool process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def active_pid(app: Celery, task_id: str) -> int | None:
    """The pid of the pool process running ``task_id``, if a worker reports it active."""
    for tasks in (app.control.inspect(timeout=1.0).active() or {}).values():
        for task in tasks:
            if task.get("id") == task_id and task.get("worker_pid"):
                return int(task["worker_pid"])
    return None
