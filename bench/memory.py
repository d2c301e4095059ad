"""The ledger's size: bytes of Redis's ``used_memory_dataset`` per record, after scenario 2 (a full and an
incremental sync), measured exactly.

Redis's dataset figure holds the keys and also allocations that are no key's (buffers it keeps after large
pipelines, a few hundred KB, and here the Celery broker's queues). So the ledger's keys are copied (``COPY ... DB``)
into an empty database of the same server, and the figure's growth is what they hold; the copy is then dropped.
A copy keeps each key's encoding (a listpack hash stays a listpack).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import redis

from sync.ledger import Ledger, owner_of

SPARE_DB = 15


def _dataset(client: redis.Redis) -> int:
    info = cast(dict[str, Any], client.info("memory"))
    return int(info["used_memory_dataset"])


def ledger_memory(client: redis.Redis, ledger: Ledger, records: int) -> dict[str, Any]:
    """Bytes the ledger's keys hold in ``used_memory_dataset`` (per record, and by family), and the server's
    listpack limits. ``client`` talks to database 0 of the ledger's server."""
    spare = redis.Redis(
        connection_pool=redis.ConnectionPool(**{**client.connection_pool.connection_kwargs, "db": SPARE_DB})
    )
    try:
        if spare.dbsize():
            raise RuntimeError(f"database {SPARE_DB} of the bench's Redis is not empty")
        keys = list(client.scan_iter(match=f"{ledger.ns}:*", count=1000))
        by_family: Counter[str] = Counter()
        before = _dataset(client)
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.copy(key, key, destination_db=str(SPARE_DB))
            pipe.execute()
        total = _dataset(client) - before
        for key in keys:  # by family: MEMORY USAGE, Redis's own estimate per key (the total above is exact)
            by_family[owner_of(str(key)[len(ledger.ns) + 1 :])[1]] += int(
                cast(int | None, client.memory_usage(key, samples=0)) or 0
            )
        spare.flushdb()
        config = cast(dict[str, str], client.config_get("hash-max-listpack-*"))
        return {
            "records": records,
            "keys": len(keys),
            "dataset_bytes": total,
            "bytes_per_record": round(total / records, 1) if records else None,
            "memory_usage_by_family": dict(by_family.most_common()),
            "server": {k: int(v) for k, v in config.items()},
        }
    finally:
        spare.close()
