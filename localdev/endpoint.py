"""A Lambda handler behind a local HTTP endpoint, as API Gateway (REST) runs it.

Each HTTP request becomes an API Gateway REST proxy event (payload format
1.0), the handler's answer becomes the HTTP response. Only the routes given
(default ``POST /webhook``) reach the handler; anything else gets API
Gateway's own ``403 Missing Authentication Token``.

In front of the handler, optionally, the local models of what AWS puts there
(``localdev.firewall``): the WAF web ACL's source filter, recorded-hook rule and
per-hook limit (403), then the stage throttle (429). The source address is the TCP peer's, so a
test can send "from" another loopback address (``127.0.0.2``...).

What the handler prints (Powertools JSON logs and EMF metrics) is captured
per request into :attr:`WebhookServer.output` instead of cluttering the
terminal; :meth:`WebhookServer.emf_records` parses the metrics back.

One Lambda execution environment runs one invocation at a time, and the
handler's Powertools logger and metrics are process-wide state, so by default
invocations are serialised (``concurrent=False``); HTTP connections are still
accepted concurrently.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, TextIO
from urllib.parse import urlsplit

from localdev._background import BackgroundHTTPServer, Service
from localdev.firewall import THROTTLED, WAF_BLOCKED, SourceFilter, StageThrottle
from localdev.lambda_events import LambdaContext, api_gateway_event

__all__ = ["LambdaContext", "WebhookServer", "api_gateway_event"]

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class _ThreadRoutedStdout(io.TextIOBase):
    """``sys.stdout`` replacement: writes from handler threads go to that thread's buffer."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(self.local, "buffer", None)
        if buffer is None:
            return self.fallback.write(text)
        return buffer.write(text)

    def flush(self) -> None:
        self.fallback.flush()


@dataclass
class Invocation:
    """One handler call: the event's request id, answer status, duration and printed lines."""

    request_id: str
    status: int
    duration_ms: float
    output: list[str]
    body: str = ""


class WebhookServer(Service):
    """Serve ``handler`` at ``POST /webhook`` (and any other ``routes``) on 127.0.0.1."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Iterable[tuple[str, str]] = (("POST", "/webhook"),),
        capture_output: bool = True,
        concurrent: bool = False,
        context_factory: Callable[[str], Any] | None = None,
        on_invocation: Callable[[Invocation], None] | None = None,
        source_filter: SourceFilter | None = None,
        throttle: StageThrottle | None = None,
    ) -> None:
        self.handler = handler
        self.source_filter = source_filter
        self.throttle = throttle
        self.host = host
        self.port = port
        self.routes = frozenset((method.upper(), path) for method, path in routes)
        self.capture_output = capture_output
        self.concurrent = concurrent
        self.context_factory = context_factory or (lambda rid: LambdaContext(aws_request_id=rid))
        self.on_invocation = on_invocation
        self.invocations: list[Invocation] = []
        self._invoke_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._http = BackgroundHTTPServer("webhook-endpoint")
        self._stdout: _ThreadRoutedStdout | None = None
        self._logger_stream: Any = None

    @property
    def url(self) -> str:
        """The full webhook URL (``http://127.0.0.1:PORT/webhook``)."""
        return f"{self.base_url}/webhook"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def output(self) -> list[str]:
        """Every line the handler printed (JSON logs, EMF), in invocation order."""
        with self._record_lock:
            return [line for inv in self.invocations for line in inv.output]

    def emf_records(self) -> list[dict[str, Any]]:
        """The CloudWatch EMF documents the handler emitted."""
        records = []
        for line in self.output:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "_aws" in data:
                records.append(data)
        return records

    def start(self) -> WebhookServer:
        if self._http.running:
            return self
        if self.capture_output:
            self._install_capture()
        owner = self

        class RequestHandler(_EndpointHandler):
            server_owner = owner

        self._http.start(self.host, self.port, RequestHandler)
        return self

    def stop(self) -> None:
        self._http.stop()
        self._remove_capture()

    # -- output capture ------------------------------------------------------

    def _install_capture(self) -> None:
        self._stdout = _ThreadRoutedStdout(sys.stdout)
        sys.stdout = self._stdout
        # The Powertools logger holds the stream it was created with; route it too.
        handler = _powertools_log_handler()
        if handler is not None:
            self._logger_stream = handler.setStream(self._stdout)

    def _remove_capture(self) -> None:
        if self._stdout is None:
            return
        if sys.stdout is self._stdout:
            sys.stdout = self._stdout.fallback
        handler = _powertools_log_handler()
        if handler is not None and self._logger_stream is not None:
            handler.setStream(self._logger_stream)
        self._stdout = None
        self._logger_stream = None

    # -- invocation --------------------------------------------------------------

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the handler for one event (serialised unless ``concurrent``)."""
        request_id = str(event.get("requestContext", {}).get("requestId") or uuid.uuid4())
        buffer = io.StringIO()
        started = time.perf_counter()
        if self._stdout is not None:
            # Someone (a test runner's capture, another server) may have replaced sys.stdout
            # since start(): route again, keeping theirs as the fallback.
            if sys.stdout is not self._stdout:
                self._stdout.fallback = sys.stdout
                sys.stdout = self._stdout
            self._stdout.local.buffer = buffer
        try:
            if self.concurrent:
                answer = self.handler(event, self.context_factory(request_id))
            else:
                with self._invoke_lock:
                    answer = self.handler(event, self.context_factory(request_id))
        except Exception as exc:  # what Lambda + API Gateway turn into a 502
            buffer.write(json.dumps({"level": "ERROR", "message": f"handler raised {exc!r}"}))
            answer = {
                "statusCode": 502,
                "body": json.dumps({"message": "Internal server error"}),
            }
        finally:
            if self._stdout is not None:
                self._stdout.local.buffer = None
        duration = (time.perf_counter() - started) * 1000
        invocation = Invocation(
            request_id=request_id,
            status=int(answer.get("statusCode", 502)),
            duration_ms=duration,
            output=[line for line in buffer.getvalue().splitlines() if line.strip()],
            body=str(answer.get("body") or "")[:500],
        )
        with self._record_lock:
            self.invocations.append(invocation)
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        return answer


def _powertools_log_handler() -> Any:
    """The handler's Powertools log handler, if ``lambda_fn`` is loaded."""
    module = sys.modules.get("lambda_fn.observability")
    logger = getattr(module, "logger", None)
    handler = getattr(logger, "registered_handler", None)
    return handler if hasattr(handler, "setStream") else None


class _EndpointHandler(BaseHTTPRequestHandler):
    server_owner: WebhookServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: invocations are recorded on the server object."""

    def _serve(self) -> None:
        owner = self.server_owner
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self._reply(413, {}, b'{"message":"Request Too Long"}')
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        request_id = str(uuid.uuid4())
        source_ip = self.client_address[0]
        if owner.source_filter is not None and not owner.source_filter.admits(
            source_ip, dict(self.headers.items())
        ):
            self._reply(WAF_BLOCKED[0], {}, WAF_BLOCKED[1])
            return
        if owner.throttle is not None and not owner.throttle.admits():
            self._reply(
                THROTTLED[0], {"x-amzn-ErrorType": "TooManyRequestsException"}, THROTTLED[1]
            )
            return
        if (self.command, path) not in owner.routes:
            self._reply(
                403,
                {"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
                b'{"message":"Missing Authentication Token"}',
                request_id,
            )
            return
        event = api_gateway_event(
            self.command,
            self.path,
            self.headers.items(),
            body,
            resource=path,
            source_ip=source_ip,
            request_id=request_id,
        )
        answer = owner.invoke(event)
        headers: dict[str, str] = {}
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(v) for v in values)
        for name, value in (answer.get("headers") or {}).items():
            headers[name] = str(value)
        raw = answer.get("body") or ""
        payload = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        self._reply(int(answer.get("statusCode", 502)), headers, payload, request_id)

    def _reply(
        self, status: int, headers: dict[str, str], payload: bytes, request_id: str = ""
    ) -> None:
        self.send_response(status)
        lowered = {name.lower() for name in headers}
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in lowered:
            self.send_header("Content-Type", "application/json")
        if request_id:
            self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
