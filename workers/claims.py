"""Record ids a webhook refresh has taken from the coalescing set, held until applied, whatever happens to the task.

Webhooks gather ids in ``<ns>:pending:<source>:<object>``. A ``crmsync.refresh`` task used to ``SPOP`` them and
work from memory, so a retry (Celery re-sends the task's arguments, not what it popped), a final failure or a
killed worker lost them. Now each batch is moved atomically (one Lua script: ``SPOP`` + ``SADD``) into a claim set
of the task, ``<ns>:claim:<source>:<object>:<task id>``, and leaves it only once the engine has committed it:

- a **retry** or an ``acks_late`` **redelivery** carries the same task id, so it finds its claim and applies it;
- a task that ends without applying (a fatal error, retries exhausted) puts its claim back into the pending set;
- a claim whose task is gone for good is **orphaned**: each claim has a lease (``<claim>:lease``, renewed per
  batch); any refresh of the same (source, object) that finds a claim without a lease puts it back
  into the pending set first, and then takes it like any other id.

An id may so be applied twice (a lease that lapsed while its task was still working), never lost; applying a
record twice is harmless (the ledger skips an unchanged fingerprint). ``<ns>:claim:<source>:<object>`` lists the
task ids holding claims, so finding orphans costs one ``SMEMBERS``, not a SCAN. Claims are part of the source's
state (``sync.keys``): dropping it (``sync.state``) drops them too.
"""

from __future__ import annotations

from typing import cast

import redis

from sync.keys import claim_key, claim_lease_key

_TAKE = """
local ids = redis.call('SPOP', KEYS[1], ARGV[1])
if #ids > 0 then
  redis.call('SADD', KEYS[2], unpack(ids))
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
return ids
"""

_GIVE_BACK = """
if ARGV[2] == '0' and redis.call('EXISTS', KEYS[4]) == 1 then
  return -1
end
local n = redis.call('SCARD', KEYS[2])
if n > 0 then
  redis.call('SUNIONSTORE', KEYS[1], KEYS[1], KEYS[2])
end
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('SREM', KEYS[3], ARGV[1])
return n
"""

DEFAULT_LEASE_MS = 300_000
"""How long a claim outlives its last renewal before another refresh may put its ids back (a killed worker)."""


class RefreshClaims:
    """The claim of one refresh task (``task_id``) on the ids of the ``pending`` set; ``claims`` is the prefix of
    that set's claims (``<ns>:claim:<source>:<object>``)."""

    def __init__(
        self, client: redis.Redis, pending: str, claims: str, task_id: str, lease_ms: int = DEFAULT_LEASE_MS
    ) -> None:
        self.redis = client
        self.pending = pending
        self.task_id = task_id
        self.lease_ms = lease_ms
        self.registry = claims
        self.prefix = claims
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)

    def claim_key(self, task_id: str) -> str:
        return claim_key(self.prefix, task_id)

    def lease_key(self, task_id: str) -> str:
        return claim_lease_key(self.prefix, task_id)

    def _keys(self, task_id: str) -> list[str]:
        return [self.pending, self.claim_key(task_id), self.registry, self.lease_key(task_id)]

    def rescue_orphans(self) -> int:
        """Put back into the pending set the ids of every other task's claim whose lease has lapsed; how many."""
        rescued = 0
        for other in cast(set[str], self.redis.smembers(self.registry)):
            if other != self.task_id:
                rescued += max(0, int(self._give_back(keys=self._keys(other), args=[other, "0"])))
        return rescued

    def held(self) -> list[str]:
        """What this task already holds: the claim of an earlier attempt (a retry, a redelivery)."""
        return sorted(cast(set[str], self.redis.smembers(self.claim_key(self.task_id))))

    def take(self, batch: int) -> list[str]:
        """Move up to ``batch`` pending ids into this task's claim (atomically) and renew the lease."""
        taken = self._take(keys=self._keys(self.task_id), args=[batch, self.task_id, self.lease_ms])
        return [str(i) for i in taken]

    def take_all(self, batch: int) -> list[str]:
        ids: list[str] = []
        while chunk := self.take(batch):
            ids.extend(chunk)
        return ids

    def renew(self) -> None:
        self.redis.set(self.lease_key(self.task_id), "1", px=self.lease_ms)

    def applied(self, ids: list[str]) -> None:
        """Drop ids the engine has committed from the claim, and renew the lease for the rest."""
        pipe = self.redis.pipeline(transaction=True)
        if ids:
            pipe.srem(self.claim_key(self.task_id), *ids)
        pipe.set(self.lease_key(self.task_id), "1", px=self.lease_ms)
        pipe.execute()

    def give_back(self) -> int:
        """End this task's claim: whatever it still holds goes back into the pending set; how many ids."""
        return int(self._give_back(keys=self._keys(self.task_id), args=[self.task_id, "1"]))
