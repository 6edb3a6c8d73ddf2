"""A moto server on 127.0.0.1 and a free port, in a background thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from localdev._background import Service

DEFAULT_HOST = "127.0.0.1"


@dataclass
class MotoServer(Service):
    """A running moto server. ``stop()`` is idempotent; also a context manager."""

    url: str
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if not self._stopped:
            self._stopped = True
            self._server.stop()

    def reset(self) -> None:
        """Forget every resource in the server (moto's ``/moto-api/reset``)."""
        import requests

        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def start(self) -> MotoServer:
        """Already started by :func:`start`; here for the context-manager protocol."""
        return self


def start(host: str = DEFAULT_HOST, port: int = 0) -> MotoServer:
    """Start a moto server (port 0 = any free port) and return once it accepts requests."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request to stderr; the demo's output must stay readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoServer(url=f"http://{bound_host}:{bound_port}", _server=server)
