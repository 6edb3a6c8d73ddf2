"""What the local services (webhook endpoint, GitHub stand-in, moto) have in common.

Each runs in a daemon thread on 127.0.0.1, starts and stops idempotently, and
is a context manager whose block ends with ``stop()``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar

S = TypeVar("S", bound="Service")


class Service:
    """``with service.start() as s:`` / ``with Service() as s:`` start it and stop it after."""

    def start(self: S) -> S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


#: How often the serving loop looks for a ``stop()``: ``shutdown()`` waits up to this long
#: (``socketserver``'s default, 0.5 s, made every stop of a stand-in cost 0.25 s on average;
#: a wake-up every 50 ms costs nothing measurable).
POLL_SECONDS = 0.05


class BackgroundHTTPServer:
    """A ``ThreadingHTTPServer`` serving from a daemon thread."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the bound socket."""
        if self._server is None:
            raise RuntimeError(f"{self.thread_name} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind (port 0 = any free port) and serve; a second call does nothing."""
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
