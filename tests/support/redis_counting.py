"""A Redis connection class that counts round trips (one per packed send) and commands, for asserting ledger costs."""

from __future__ import annotations

from typing import Any

import redis


class CountingConnection(redis.Connection):
    round_trips = 0
    commands = 0  # commands sent (a pipeline's each count; a script's own calls inside Redis do not)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).round_trips += 1
        super().send_packed_command(command, check_health)

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        type(self).commands += 1
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> Any:
        commands = list(commands)
        type(self).commands += len(commands)  # a pipeline's, MULTI and EXEC included
        return super().pack_commands(commands)


def counting_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection, decode_responses=True)
    return redis.Redis(connection_pool=pool)
