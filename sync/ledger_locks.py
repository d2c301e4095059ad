"""Locks in the ledger's namespace: per account and per run (a run lock is a lease: ``sync/lease.py``), taken all
or nothing in one round trip, each holding its owner's token so a redelivered task takes over what its killed
first delivery held."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property

from redis.commands.core import Script

from sync.ledger_core import LedgerCore, LockNotAcquired

_RELEASE_MANY = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""

_ACQUIRE = """
local acquired = {}
for i, key in ipairs(KEYS) do
  local token = ARGV[i + 1]
  local holder = redis.call('GET', key)
  if holder == false or holder == token then
    redis.call('SET', key, token, 'PX', ARGV[1])
    acquired[i] = 1
  else
    acquired[i] = 0
  end
end
return acquired
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


lock_owner: ContextVar[str | None] = ContextVar("crmsync_lock_owner", default=None)
"""Who takes locks in this context: the Celery task id while a task runs (set by ``workers.tasks``)."""


class LedgerLocks(LedgerCore):
    """The ledger's locks (``<ns>:lock:<name>``)."""

    @cached_property
    def _release_many(self) -> Script:
        return self.redis.register_script(_RELEASE_MANY)

    @cached_property
    def _acquire(self) -> Script:
        return self.redis.register_script(_ACQUIRE)

    @cached_property
    def _extend(self) -> Script:
        return self.redis.register_script(_EXTEND)

    def try_lock(self, names: Sequence[str], ttl_ms: int) -> dict[str, str]:
        """Try to take several locks in one round trip; returns {name: token} for those acquired.

        The token is the current ``lock_owner`` (a Celery task id) when one is set: a redelivery of a task whose
        worker was killed then takes over the locks its dead first delivery still holds, instead of waiting for
        them to expire. Without an owner each lock gets a fresh random token.
        """
        if not names:
            return {}
        owner = lock_owner.get()
        tokens = {name: owner or uuid.uuid4().hex for name in names}
        keys = [self.keys.lock(name) for name in tokens]
        results = self._acquire(keys=keys, args=[ttl_ms, *tokens.values()])
        return {name: token for (name, token), ok in zip(tokens.items(), results, strict=True) if ok}

    def release(self, held: Mapping[str, str]) -> int:
        """Release locks still holding our tokens (one round trip); a lock that expired and was taken over by
        another worker is left alone."""
        if not held:
            return 0
        keys = [self.keys.lock(name) for name in held]
        return int(self._release_many(keys=keys, args=list(held.values())))

    def release_owned(self, owner: str) -> int:
        """Release every lock still holding ``owner``'s token: what a task's killed first delivery left in batches
        its redelivery did not repeat. One SCAN of the (few) lock keys, one compare-and-delete."""
        keys = [self.keys.lock(name) for name in self._suffixes(self.keys.prefix("lock"))]
        if not keys:
            return 0
        return int(self._release_many(keys=keys, args=[owner] * len(keys)))

    def extend(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(self._extend(keys=[self.keys.lock(name)], args=[token, ttl_ms]))

    def extend_many(self, names: Sequence[str], token: str, ttl_ms: int) -> int:
        """Extend every named lock still holding ``token`` (one round trip); returns how many."""
        if not names:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            self._extend(keys=[self.keys.lock(name)], args=[token, ttl_ms], client=pipe)
        return sum(int(r) for r in pipe.execute())

    @contextmanager
    def locks(self, names: Sequence[str], ttl_ms: int = 60_000, wait_s: float = 30.0) -> Iterator[None]:
        """Hold every named lock for the block, waiting (bounded) for ones held elsewhere.

        All or nothing: a partial set is released before waiting again, so two workers wanting overlapping sets
        can never hold one part each and wait for each other forever.
        """
        wanted = list(dict.fromkeys(names))
        held: dict[str, str] = {}
        deadline = time.monotonic() + wait_s
        delay = 0.005
        try:
            while True:
                held = self.try_lock(wanted, ttl_ms)
                if len(held) == len(wanted):
                    break
                missing = [n for n in wanted if n not in held]
                self.release(held)
                held = {}
                if time.monotonic() > deadline:
                    raise LockNotAcquired(f"locks busy: {', '.join(missing[:5])}")
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.2)
            yield
        finally:
            self.release(held)
