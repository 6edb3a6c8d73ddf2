"""AWS JSON-protocol calls from a task, signed by ``curl --aws-sigv4``; standard library only.

Shared by ``jit_config.py`` (Secrets Manager), ``job_started.py`` (DynamoDB, the
admission record) and ``managed_steps.py`` (ECS, CloudWatch Logs) in the runner
task, whose stock image has python3 and curl 8 but no AWS SDK. The entrypoint
writes this file next to them; they load it by path, never through ``sys.path``.

* Credentials come from the ECS container credentials endpoint
  (``http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, or
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
  as the AWS SDKs accept; the local mode and the tests use the latter).
* Each call is one ``curl --aws-sigv4`` (curl's maintained SigV4 signer, not a
  hand-written one). URL, credentials and body go to curl on stdin as a config
  file (``--config -``), never on its command line (visible in /proc).
* Endpoints: ``AWS_ENDPOINT_URL_<SERVICE>`` as the SDKs honour it, else the
  regional ``https://<service>.<region>.amazonaws.com/``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ECS_CREDENTIALS_HOST = "http://169.254.170.2"

#: Signing name and endpoint prefix -> (X-Amz-Target prefix, SDK endpoint variable).
SERVICES: Mapping[str, tuple[str, str]] = {
    "secretsmanager": ("secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER"),
    "ecs": ("AmazonEC2ContainerServiceV20141113", "AWS_ENDPOINT_URL_ECS"),
    "logs": ("Logs_20140328", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"),
    "dynamodb": ("DynamoDB_20120810", "AWS_ENDPOINT_URL_DYNAMODB"),
}
#: DynamoDB speaks JSON 1.0 (botocore ``dynamodb/2012-08-10/service-2.json``:
#: ``"jsonVersion": "1.0"``); the others 1.1.
JSON_VERSIONS: Mapping[str, str] = {"dynamodb": "1.0"}


class ReasonError(Exception):
    """A one-line reason why no call can be made (no credentials, unsafe value)."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    token: str = ""


class AwsError(Exception):
    """An AWS JSON-protocol error answer (``__type`` + message) or a transport failure."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def container_credentials(env: Mapping[str, str], timeout: float = 5.0) -> Credentials:
    """The task role's temporary credentials, as the SDKs' container provider gets them."""
    relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    headers = {}
    if relative:
        url = ECS_CREDENTIALS_HOST + relative
    elif full:
        url = full
        token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
        if token:
            headers["Authorization"] = token
    else:
        raise ReasonError(
            "no container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not set "
            "(the task definition needs a task role)"
        )
    if not url.startswith(("http://", "https://")):
        raise ReasonError("the container credentials URI is not http(s)")
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data = json.load(answer)
        return Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReasonError(
            f"cannot read the task role's credentials: {type(exc).__name__}"
        ) from None


def endpoint(service: str, region: str, env: Mapping[str, str]) -> str:
    """The service's endpoint: ``AWS_ENDPOINT_URL_<SERVICE>`` or the regional default."""
    return env.get(SERVICES[service][1]) or f"https://{service}.{region}.amazonaws.com/"


def _quoted(value: str) -> str:
    """A curl config-file value: double-quoted, with \\ and " escaped."""
    if any(ch in value for ch in "\r\n\0"):
        raise ReasonError("refusing a value with a line break for curl's config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: One marker line after the body carries the HTTP status (``--write-out``).
_STATUS_MARK = "\n@@aws-call-status@@"


@dataclass(frozen=True)
class AwsJsonApi:
    """One AWS JSON-protocol API (``service`` is a key of :data:`SERVICES`)."""

    service: str
    url: str
    region: str
    credentials: Credentials
    curl: str = "curl"

    def curl_config(self, action: str, body: Mapping[str, Any]) -> str:
        """What curl reads on stdin: URL, signer, credentials, headers and body."""
        lines = {
            "url": self.url,
            "aws-sigv4": f"aws:amz:{self.region}:{self.service}",
            "user": f"{self.credentials.access_key_id}:{self.credentials.secret_access_key}",
            "request": "POST",
            "data-binary": json.dumps(body, separators=(",", ":")),
        }
        headers = [
            f"X-Amz-Target: {SERVICES[self.service][0]}.{action}",
            f"Content-Type: application/x-amz-json-{JSON_VERSIONS.get(self.service, '1.1')}",
        ]
        if self.credentials.token:
            headers.append(f"X-Amz-Security-Token: {self.credentials.token}")
        text = "".join(f"{key} = {_quoted(value)}\n" for key, value in lines.items())
        text += "".join(f"header = {_quoted(header)}\n" for header in headers)
        return text

    def call(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One call; raises ``AwsError`` on an error answer or a transport failure."""
        argv = [
            self.curl, "--config", "-", "--silent", "--show-error", "--max-time", "10",
            "--write-out", _STATUS_MARK + "%{http_code}",
        ]  # fmt: skip
        config = self.curl_config(action, body)
        try:
            # A fixed argv (no shell); everything variable, secrets included, is on stdin.
            done = subprocess.run(  # noqa: S603
                argv, input=config, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AwsError("CurlFailed", type(exc).__name__) from None
        payload, _, status_text = done.stdout.rpartition(_STATUS_MARK)
        if done.returncode != 0 or not status_text.isdigit():
            reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise AwsError("CurlFailed", reason[0][:200])
        status = int(status_text)
        try:
            answer = json.loads(payload) if payload.strip() else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status != 200:
            code = str(answer.get("__type", f"HTTP{status}")).rsplit("#", 1)[-1]
            message = str(answer.get("message") or answer.get("Message") or "")[:200]
            raise AwsError(code, message, status)
        return answer


def api(service: str, region: str, env: Mapping[str, str], curl: str = "curl") -> AwsJsonApi:
    """A client of ``service`` with the task role's credentials from ``env``."""
    credentials = container_credentials(env)
    return AwsJsonApi(service, endpoint(service, region, env), region, credentials, curl)
