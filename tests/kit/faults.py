"""AWS faults injected on the handler's own clients (botocore ``before-call`` hooks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class AwsResponse:
    """What a botocore ``before-call`` handler returns to short-circuit a call."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


def aws_error(code: str, status: int = 400) -> tuple[AwsResponse, dict[str, Any]]:
    return AwsResponse(status), {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def inject(service: str, operation: str, fault: Callable[[dict[str, Any]], Any]) -> None:
    """Register ``fault(api_params)`` before every ``service.operation`` call of the handler.

    ``before-call`` receives the serialised request; the JSON protocols (ECS,
    DynamoDB, Secrets Manager) carry the API parameters in its body.
    """
    from lambda_fn import aws

    def handler(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body") or b"{}"
        return fault(json.loads(body))

    client = aws.client(service)
    event_name = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{event_name}.{operation}", handler)


class First:
    """A fault that hits the first ``n`` calls, then lets calls through; counts its hits."""

    def __init__(self, n: int, answer: Any) -> None:
        self.n = n
        self.answer = answer
        self.hits = 0

    def __call__(self, params: dict[str, Any]) -> Any:
        if self.hits < self.n:
            self.hits += 1
            return self.answer
        return None
