"""In-process fakes at the transport layer, cheap enough not to hide the handler's cost.

- :class:`FakeAws` answers botocore requests from a ``before-send`` hook with
  canned ``AWSResponse`` objects: ECS ``RunTask``, DynamoDB
  ``PutItem``/``GetItem``/``UpdateItem``/``DeleteItem`` (a tiny in-memory table
  that honours the idempotency record's condition), Secrets Manager
  ``GetSecretValue`` and SSM ``PutParameter``/``GetParameters`` (the profiles).
  botocore still builds, signs (SigV4) and parses every call: only the socket is
  skipped.
- :class:`FakeGitHubAdapter` serves the one GitHub model (``localdev.github_model``)
  as a ``requests`` transport adapter, mounted on the handler's shared session:
  ``requests`` still prepares, merges settings and decodes JSON; only the socket is
  skipped.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from bench.fixtures import ACCOUNT, PAT, REGION, WEBHOOK_SECRET
from localdev.github_model import Call, GitHubModel


class _RawBody(io.BytesIO):
    """What ``AWSResponse.raw`` must offer: a ``stream()`` of the body."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _aws_response(
    request: AWSPreparedRequest, status: int, payload: dict[str, Any], content_type: str
) -> AWSResponse:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": "00000000-0000-4000-8000-000000000001",
    }
    return AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), _RawBody(body))


@dataclass
class FakeAws:
    """Canned AWS answers; counts what it was asked."""

    secrets: dict[str, str] = field(default_factory=dict)
    cluster: str = "runners"
    calls: dict[str, int] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: SSM String parameters (name -> value): the runner profiles, as the construct stores them.
    parameters: dict[str, str] = field(default_factory=dict)
    _task_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def webhook_secret_arn(self) -> str:
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:runners/webhook-secret-AbCdEf"

    @property
    def token_secret_arn(self) -> str:
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:runners/github-token-GhIjKl"

    def __post_init__(self) -> None:
        self.secrets.setdefault(self.webhook_secret_arn, WEBHOOK_SECRET)
        self.secrets.setdefault(self.token_secret_arn, PAT)

    def install(self, client: Any) -> None:
        """Answer every call ``client`` makes from this fake."""
        client.meta.events.register("before-send", self.before_send)

    def before_send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
        raw = request.body if isinstance(request.body, (str, bytes, bytearray)) else b"{}"
        params = json.loads(raw or b"{}")
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            raise NotImplementedError(f"FakeAws does not answer {event_name}")
        status, payload, content_type = handler(params)
        return _aws_response(request, status, payload, content_type)

    # -- Secrets Manager ----------------------------------------------------------

    def _op_GetSecretValue(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        arn = params["SecretId"]
        return (
            200,
            {
                "ARN": arn,
                "Name": arn.rsplit(":", 1)[-1],
                "SecretString": self.secrets[arn],
                "VersionId": "v1",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_700_000_000.0,
            },
            "application/x-amz-json-1.1",
        )

    def _op_CreateSecret(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """The sealed JIT config's secret (after run_task), created without a value:
        ``lambda_fn.jit_secret`` sets its resource policy, then the value."""
        arn = self._secret_arn(params["Name"])
        with self._lock:
            self.secrets[arn] = params.get("SecretString", "")
        answer = {"ARN": arn, "Name": params["Name"], "VersionId": "v1"}
        return 200, answer, "application/x-amz-json-1.1"

    def _op_PutResourcePolicy(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        """Stored nowhere: the benchmark measures the calls, not IAM."""
        arn = self._secret_arn(params["SecretId"])
        return 200, {"ARN": arn, "Name": params["SecretId"]}, "application/x-amz-json-1.1"

    def _op_PutSecretValue(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        arn = self._secret_arn(params["SecretId"])
        with self._lock:
            self.secrets[arn] = params["SecretString"]
        answer = {"ARN": arn, "Name": params["SecretId"], "VersionId": "v2"}
        return 200, answer, "application/x-amz-json-1.1"

    @staticmethod
    def _secret_arn(name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name_or_arn}-XyZ123"

    # -- SSM (the runner profiles: lambda_fn/profile_store.py) ---------------------

    def _op_PutParameter(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        with self._lock:
            self.parameters[params["Name"]] = params["Value"]
        return 200, {"Version": 1, "Tier": "Standard"}, "application/x-amz-json-1.1"

    def _op_GetParameters(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        names = params["Names"]
        found = [
            {"Name": n, "Type": "String", "Value": self.parameters[n], "Version": 1}
            for n in names
            if n in self.parameters
        ]
        missing = [n for n in names if n not in self.parameters]
        answer = {"Parameters": found, "InvalidParameters": missing}
        return 200, answer, "application/x-amz-json-1.1"

    # -- ECS ----------------------------------------------------------------------

    def _op_RunTask(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        task_id = f"{next(self._task_ids):032x}"
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{self.cluster}/{task_id}"
        task = {
            "taskArn": arn,
            "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{self.cluster}",
            "taskDefinitionArn": params["taskDefinition"],
            "lastStatus": "PROVISIONING",
            "desiredStatus": "RUNNING",
            "launchType": params.get("launchType", "FARGATE"),
            "startedBy": params.get("startedBy", ""),
            "tags": params.get("tags", []),
            "containers": [],
        }
        return 200, {"tasks": [task], "failures": []}, "application/x-amz-json-1.1"

    # -- DynamoDB (the idempotency table) ------------------------------------------

    _DDB = "application/x-amz-json-1.0"

    def _op_PutItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        item = params["Item"]
        key = item["id"]["S"]
        with self._lock:
            old = self.items.get(key)
            if old is not None and _record_is_live(old):
                payload: dict[str, Any] = {
                    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                    "message": "The conditional request failed",
                }
                if params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                    payload["Item"] = old
                return 400, payload, self._DDB
            self.items[key] = item
        return 200, {}, self._DDB

    def _op_GetItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        key = params["Key"]["id"]["S"]
        with self._lock:
            item = self.items.get(key)
        return 200, ({"Item": item} if item is not None else {}), self._DDB

    def _op_UpdateItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        key = params["Key"]["id"]["S"]
        names: dict[str, str] = params.get("ExpressionAttributeNames", {})
        values: dict[str, Any] = params.get("ExpressionAttributeValues", {})
        expression: str = params.get("UpdateExpression", "")
        with self._lock:
            item = self.items.setdefault(key, {"id": {"S": key}})
            for assignment in expression.removeprefix("SET ").split(","):
                name, _, value = (part.strip() for part in assignment.partition("="))
                item[names.get(name, name)] = values[value]
        return 200, {}, self._DDB

    def _op_DeleteItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        with self._lock:
            self.items.pop(params["Key"]["id"]["S"], None)
        return 200, {}, self._DDB


def _record_is_live(item: dict[str, Any]) -> bool:
    """The idempotency record's own condition: not expired, or still in progress."""
    now = time.time()
    if float(item.get("expiration", {}).get("N", "0")) < now:
        return False
    if item.get("status", {}).get("S") == "INPROGRESS" and "in_progress_expiration" in item:
        return float(item["in_progress_expiration"]["N"]) >= now * 1000
    return True


class FakeGitHubAdapter(BaseAdapter):
    """The GitHub model (``localdev.github_model``) as a ``requests`` transport adapter.

    Mount it on the handler's shared session for ``https://`` and every GitHub call is
    answered by :attr:`model` with no socket; ``requests`` still prepares the request,
    merges settings and decodes JSON. JIT configs are cheap fixed-size strings so the fake
    does not add to the handler's measured cost.
    """

    def __init__(self, model: GitHubModel | None = None) -> None:
        super().__init__()
        self.model = model or GitHubModel(encode_jit=_cheap_jit_config)

    @property
    def jit_configs_issued(self) -> int:
        return len(self.model.issued_configs)

    @property
    def requests_seen(self) -> int:
        return len(self.model.requests)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url or "")
        raw = request.body or b""
        credentials = request.headers.get("Authorization", "")
        status, headers, body = self.model.handle(
            Call(
                method=request.method or "GET",
                path=parts.path,
                query=parse_qs(parts.query),
                body=json.loads(raw) if raw else None,
                token=credentials.partition(" ")[2].strip() or None,
                base_url=f"{parts.scheme}://{parts.netloc}",
            )
        )
        response = requests.Response()
        response.request = request
        response.url = request.url or ""
        response.encoding = "utf-8"
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response._content = b"" if body is None else json.dumps(body).encode()
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json; charset=utf-8", **headers}
        )
        return response

    def close(self) -> None:
        return None


def _cheap_jit_config(runner_name: str) -> str:
    return base64.b64encode(f"jit-{runner_name}".encode() * 8).decode()
