"""A Redis connection class that counts round trips (one per packed send), for asserting ledger costs."""

from __future__ import annotations

from typing import Any

import redis


class CountingConnection(redis.Connection):
    round_trips = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).round_trips += 1
        super().send_packed_command(command, check_health)


def counting_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection, decode_responses=True)
    return redis.Redis(connection_pool=pool)
