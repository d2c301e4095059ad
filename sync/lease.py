"""Leases, not long locks: what a worker holds lapses within ``LEASE_MS`` of its death, not hours later.

A lease is a Redis key with a short expiry (``PX``) that its holder keeps alive while its work runs. The holder
renews it from a ``Heartbeat``: a daemon thread beside the work, so a page that waits a minute for PostHog's budget
(or a slow CRM) keeps its lease, and a holder that is SIGKILLed stops renewing at once. Renewal is a
compare-and-extend (``Ledger.extend_many``: only while the key still holds the holder's token), so a lease that
lapsed and was taken by another worker is never extended by the first; the heartbeat then reports it ``lost``.

Who holds what (``docs/reliability.md``):
- a ``run:<source>:<stream>`` lock, held by ``SyncEngine.run`` (token: the Celery task id);
- a plan's run locks (token: the plan id), renewed while it stages and while each of its chunks is written;
- a task's lease (``workers/leases.py``), which lets any live worker take the task up when its holder died.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

import redis

log = logging.getLogger(__name__)

LEASE_MS = 30_000
"""Default lease: a dead holder's leases lapse within 30 s (renewed every third of it while the holder lives)."""


class Heartbeat:
    """Calls ``renew`` every third of ``ttl_ms`` from a daemon thread for the length of a ``with`` block.

    ``renew`` returns how many leases it extended (or a bool); 0/False means the lease is no longer ours, which
    sets ``lost``. A Redis error is logged and tried again at the next beat: the lease outlives a short outage.
    """

    def __init__(self, renew: Callable[[], int | bool], ttl_ms: int, what: str = "lease") -> None:
        self.renew = renew
        self.every_s = max(ttl_ms / 3000, 0.05)
        self.what = what
        self.lost = False
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat:{what}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                renewed = self.renew()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("lease renewal failed (%s): %s; trying again", self.what, type(exc).__name__)
                continue
            self.beats += 1
            if not renewed and not self.lost:
                self.lost = True
                log.warning("lease lost (%s): it lapsed and is held elsewhere", self.what)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (before handing the lease on, e.g. to a retry); also what leaving the block does."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.every_s + 5)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
