"""GitHub for the local mode: :class:`localdev.github_model.GitHubModel` served over HTTP.

The model holds GitHub's state, routes and status codes (see its docstring for the
endpoints and their sources); this module only adds the two things a real socket needs:

- the HTTP server (:meth:`GitHubStub.start` binds 127.0.0.1 on a free port; ``url`` is
  the ``GITHUB_API_URL``), turning each request into a :class:`~localdev.github_model.Call`;
- GitHub as the webhook *sender*: :meth:`GitHubStub.add_hook` registers a webhook (URL,
  secret) and :meth:`GitHubStub.deliver` POSTs a signed delivery to it *from*
  ``hook_source`` (a loopback address, the one ``/meta`` lists under ``hooks``), recording
  the answer as GitHub's delivery log does. GitHub never retries a failed delivery on its
  own; a redelivery is asked for through the API and sent asynchronously, as a new delivery
  with the same ``guid`` and ``redelivery: true``
  (https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks).

GitHub App mode (``GITHUB_AUTH=app``) is the model's too: set ``app`` (a
``localdev.github_app_double.GitHubAppDouble``) and GitHub's App endpoints are served, and
every other request needs a live installation token allowed there.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localdev._background import BackgroundHTTPServer, Service
from localdev.github_model import Call, GitHubModel, Hook, RecordedRequest

__all__ = ["GitHubStub", "Hook", "RecordedRequest"]


@dataclass
class GitHubStub(GitHubModel, Service):
    """The model behind a local HTTP server. ``start()`` binds 127.0.0.1 on a free port."""

    host: str = "127.0.0.1"
    port: int = 0
    #: Where this "GitHub" sends webhook deliveries from (listed in /meta ``hooks``).
    hook_source: str = "127.0.0.2"
    _http: BackgroundHTTPServer = field(
        default_factory=lambda: BackgroundHTTPServer("github-stub"), repr=False
    )
    _senders: list[threading.Thread] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.meta = {
            "verifiable_password_authentication": False,
            "hooks": [f"{self.hook_source}/32"],
        }

    @property
    def url(self) -> str:
        """Base URL to use as ``GITHUB_API_URL``."""
        return self._http.base_url

    def start(self) -> GitHubStub:
        """Start serving in a daemon thread; returns self."""
        if self._http.running:
            return self
        stub = self

        class Handler(_StubHandler):
            owner = stub

        self._http.start(self.host, self.port, Handler)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        self._http.stop()

    # -- GitHub as the webhook sender ------------------------------------------

    def deliver(self, hook: Hook, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Sign and POST one delivery from ``hook_source``; the delivery log entry."""
        body = json.dumps(payload).encode()
        return self._send(hook, event, body, str(uuid.uuid4()), redelivery=False)

    def wait_for_redeliveries(self, timeout: float = 30.0) -> None:
        """Block until the redeliveries asked for so far have been sent."""
        with self._lock:
            senders, self._senders = self._senders, []
        for sender in senders:
            sender.join(timeout)

    def on_redeliver(self, hook: Hook, delivery: dict[str, Any]) -> None:
        """Send it again, later (GitHub answers 202 first), with the same guid."""
        sender = threading.Thread(
            target=self._send,
            args=(hook, delivery["event"], delivery["_body"], delivery["guid"]),
            kwargs={"redelivery": True},
            name="github-stub-redelivery",
            daemon=True,
        )
        self._senders.append(sender)
        sender.start()

    def _send(
        self, hook: Hook, event: str, body: bytes, guid: str, *, redelivery: bool
    ) -> dict[str, Any]:
        from localdev.deliveries import USER_AGENT, sign

        target = urlsplit(hook.url)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1",
            target.port or 80,
            timeout=10,
            source_address=(self.hook_source, 0),
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-Hub-Signature-256": sign(hook.secret, body),
        }
        try:
            connection.request("POST", target.path or "/", body=body, headers=headers)
            status = connection.getresponse().status
        except OSError:  # GitHub logs a delivery it could not complete with no status
            status = 0
        finally:
            connection.close()
        with self._lock:
            entry = {
                "id": self.new_id(),
                "guid": guid,
                "delivered_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "redelivery": redelivery,
                "status_code": status,
                "status": "OK" if 200 <= status < 300 else "failed",
                "event": event,
                "action": json.loads(body).get("action"),
                "hook_id": hook.id,
                "_body": body,
            }
            self.deliveries.append(entry)
        return {k: v for k, v in entry.items() if not k.startswith("_")}


class _StubHandler(BaseHTTPRequestHandler):
    owner: GitHubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded, not logged."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = {"_unparsed": raw[:200].decode("utf-8", "replace")}
        credentials = self.headers.get("Authorization", "").strip()
        call = Call(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            body=body,
            token=credentials.partition(" ")[2].strip() or None,
            base_url=self.owner.url,
        )
        status, headers, answer = self.owner.handle(call)
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PATCH = _serve
    do_PUT = _serve
