"""A moto server on 127.0.0.1 and a free port, in a background thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from localdev._background import POLL_SECONDS, Service

DEFAULT_HOST = "127.0.0.1"


@dataclass
class MotoServer(Service):
    """A running moto server. ``stop()`` is idempotent; also a context manager."""

    url: str
    _server: Any = field(repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Shut the server down, release its port and wait for its thread."""
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()  # werkzeug's serve_forever closes the socket on its way out
            if self._thread is not None:
                self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget every resource in the server (moto's ``/moto-api/reset``)."""
        import requests

        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def start(self) -> MotoServer:
        """Already started by :func:`start`; here for the context-manager protocol."""
        return self


def start(host: str = DEFAULT_HOST, port: int = 0) -> MotoServer:
    """Start a moto server (port 0 = any free port) and return once it accepts requests.

    The server is the one ``moto.server.ThreadedMotoServer`` builds (moto's WSGI app and
    request handler on werkzeug's threaded server), served here so that its loop polls for
    a stop every ``POLL_SECONDS``: ``ThreadedMotoServer`` keeps werkzeug's default of 0.5 s,
    which every stop waited for (0.25 s on average).
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # werkzeug logs every request to stderr; the demo's output must stay readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(
        host,
        port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_SECONDS},
        name="moto-server",
        daemon=True,
    )
    thread.start()  # the socket listens already: requests queue until the loop takes them
    bound_host, bound_port = server.server_address[:2]
    return MotoServer(url=f"http://{bound_host!s}:{bound_port}", _server=server, _thread=thread)
