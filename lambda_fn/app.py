"""Lambda entry point: API Gateway REST proxy event -> HTTP answer.

Only routing and HTTP translation live here; ``deliveries.handle`` does the
work. Importing this module talks to neither AWS nor GitHub.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from lambda_fn import deliveries
from lambda_fn.observability import logger, metrics

app = APIGatewayRestResolver()


@app.post("/webhook")
def webhook() -> Response[Any]:
    event = app.current_event
    headers = dict(event.headers or {})
    delivery_id = deliveries.header(headers, "X-GitHub-Delivery")
    if delivery_id:
        logger.set_correlation_id(delivery_id[:64])
    logger.append_keys(github_event=(deliveries.header(headers, "X-GitHub-Event") or "")[:64])
    try:
        body = raw_body(event.body, bool(event.is_base64_encoded))
    except (binascii.Error, ValueError):
        return _response(deliveries.Answer(400, {"message": "body is not valid base64"}))
    return _response(deliveries.handle(headers, body, app.lambda_context))


def raw_body(body: str | None, is_base64: bool) -> bytes:
    """The exact bytes GitHub signed."""
    if not body:
        return b""
    if is_base64:
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8", "surrogateescape")


def _response(answer: deliveries.Answer) -> Response[Any]:
    return Response(
        status_code=answer.status, content_type=content_types.APPLICATION_JSON, body=answer.body
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway REST (payload 1.0) handler for ``POST /webhook``."""
    return app.resolve(event, context)
