"""Serving an ASGI app in a background thread on loopback, and finding a free port: what the status page, the worker
processes, the embedded Redis and the stand-ins all need, kept here so none of them imports another's package.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs an ASGI app under uvicorn in a background thread, on 127.0.0.1 and a free port by default.

    Used by tests, benchmarks and ``crmsync sandbox up``; ``url`` is known once ``start()`` returns.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.host = host
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then (else ~40 ms a request)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.scheme = "https" if ssl_certfile else "http"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"sandbox-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"stand-in on {self.url} did not start")
            # past the deadline, look once more: this thread may have been held up elsewhere (a finaliser run by the
            # garbage collector, say) while the server started
            if time.monotonic() > deadline and not self._server.started:
                raise RuntimeError(f"stand-in on {self.url} did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def request_stop(self) -> None:
        """Ask the server to stop (it finishes within ``timeout_graceful_shutdown``); returns at once."""
        self._server.should_exit = True

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the server to have stopped, then close its socket."""
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, timeout))
        self._sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        self.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
