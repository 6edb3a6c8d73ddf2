"""What AWS hands a Lambda handler, built the same way for the tests, the benchmarks and the
local endpoint: the context object, an API Gateway REST proxy event, and a signed GitHub
webhook delivery as such an event.

One owner for these (issue 26): ``tests/kit``, ``bench/fixtures.py`` and
``localdev/endpoint.py`` import them from here.

Sources: the Lambda context object (AWS Lambda Developer Guide, "Using the Lambda context
object to retrieve Python function information"); the REST proxy event, payload format
1.0 (API Gateway Developer Guide, "Set up Lambda proxy integrations in API Gateway",
"Input format of a Lambda function for proxy integration"); the delivery headers
(``localdev.deliveries``).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localdev.deliveries import delivery_headers

STAGE = "local"


@dataclass
class LambdaContext:
    """Enough of the Lambda context object for Powertools (logger, idempotency)."""

    function_name: str = "runner-webhook-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:runner-webhook-local"
    )
    log_group_name: str = "/aws/lambda/runner-webhook-local"
    log_stream_name: str = "local"
    timeout_seconds: float = 28.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def api_gateway_event(
    method: str,
    raw_path: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    resource: str,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (payload 1.0) for one HTTP request.

    Repeated headers are kept in ``multiValueHeaders``; ``headers`` holds the
    last value, as API Gateway does. A body that is not UTF-8 is passed
    base64-encoded with ``isBase64Encoded``.
    """
    parts = urlsplit(raw_path)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query_single: dict[str, str] = {}
    query_multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query_single[name] = value
        query_multi.setdefault(name, []).append(value)
    try:
        text: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode("ascii")
        is_base64 = True
    request_id = request_id or str(uuid.uuid4())
    now = time.time()
    return {
        "resource": resource,
        "path": parts.path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": query_single or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "httpMethod": method,
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent", "")},
            "path": f"/{STAGE}{parts.path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "local",
            "resourcePath": resource,
            "stage": STAGE,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def webhook_event(
    body: bytes,
    secret: str | bytes | None,
    *,
    event: str = "workflow_job",
    delivery_id: str | None = None,
    signature: str | None = None,
    user_agent: str | None = None,
    hook_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
    request_id: str | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """The API Gateway event of one GitHub delivery of ``body`` to ``POST /webhook``.

    Headers as :func:`localdev.deliveries.delivery_headers` makes them (``signature``
    overrides the computed one; ``secret=None`` and no ``signature``: unsigned), then
    ``extra_headers``. ``base64_encoded``: the body as API Gateway passes a binary media
    type (base64 with ``isBase64Encoded``).
    """
    headers = delivery_headers(
        body,
        secret,
        event=event,
        delivery_id=delivery_id,
        signature=signature,
        user_agent=user_agent,
        hook_id=hook_id,
    )
    headers.update(extra_headers or {})
    built = api_gateway_event(
        "POST", "/webhook", headers.items(), body, resource="/webhook", request_id=request_id
    )
    if base64_encoded:
        built["body"] = base64.b64encode(body).decode()
        built["isBase64Encoded"] = True
    return built
