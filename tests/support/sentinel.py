"""A Redis Sentinel group on loopback for tests: a master, one replica and three sentinels, each a real
``redis-server`` in a process group of its own (``redis-server CONF --sentinel`` for the sentinels), all killed
when the block ends, pass or fail."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

import redis

from tests.support.waiting import wait_for

MASTER_NAME = "crmsync-test"


class SentinelGroup:
    """``ports``: the master's and the replica's; ``sentinel_ports``: three sentinels'."""

    def __init__(self, workdir: Path, ports: tuple[int, int], sentinel_ports: tuple[int, int, int]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.binary = binary
        self.workdir = workdir
        self.ports = ports
        self.sentinel_ports = sentinel_ports
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Celery's form: one ``sentinel://`` URL per sentinel, separated by ``;``."""
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinel_ports)

    def _spawn(self, args: list[str], name: str) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def start(self) -> SentinelGroup:
        master, replica = self.ports
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self._spawn(["--port", str(master), *common], f"redis-{master}")
        self._spawn(["--port", str(replica), *common, "--replicaof", "127.0.0.1", str(master)], f"redis-{replica}")
        wait_for(lambda: self._answers(master) and self._answers(replica), 20, "master and replica to answer")
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._spawn([str(conf), "--sentinel"], f"sentinel-{port}")
        wait_for(self._ready, 60, "the sentinels to know the replica and each other")
        return self

    def _answers(self, port: int) -> bool:
        with contextlib.suppress(redis.RedisError, OSError):
            return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
        return False

    def sentinel(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.sentinel_ports[0], decode_responses=True, socket_connect_timeout=1)

    def _ready(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError, OSError):
                state = self.sentinel(port).execute_command("SENTINEL", "MASTER", MASTER_NAME)
                fields = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
                if int(fields["num-slaves"]) < 1 or int(fields["num-other-sentinels"]) < 2:
                    return False
                continue
            return False
        replica = redis.Redis(port=self.ports[1], decode_responses=True).info("replication")
        return replica.get("master_link_status") == "up"

    def master_port(self) -> int:
        _host, port = self.sentinel().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER``: promote the replica; returns the old master's port once the new one serves."""
        old = self.master_port()
        self.sentinel().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        wait_for(lambda: self.master_port() != old, 60, "the sentinels to name the new master")
        new = self.master_port()
        wait_for(
            lambda: redis.Redis(port=new, decode_responses=True).info("replication")["role"] == "master",
            60,
            "the new master to take writes",
        )
        return old

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> SentinelGroup:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
