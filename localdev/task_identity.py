"""Task identities for the local mode: container credentials and the IAM check moto skips.

A real runner task gets temporary credentials of its profile's task role from
the ECS credentials endpoint, and IAM lets that session read a JIT config
secret only if the secret's ``runner:task-userid`` tag equals the session's
``aws:userid`` (``<role id>:<task id>``; see lambda_fn/jit_secret.py and the
task role statement in cdk/construct.py). moto stores secrets and tags but
evaluates no IAM condition, so this double does that part, in front of moto:

* ``GET /credentials/<id>`` answers like the container credentials endpoint
  (``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``, ``RoleArn``),
  with a distinct key per task identity; a task reaches it through
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
  (the SDKs' documented alternative to the fixed 169.254.170.2 address).
* ``POST /`` is Secrets Manager's JSON API. It verifies the SigV4 signature
  (botocore's signer over the headers the client signed), maps the access key
  to its identity, and applies the task role's one statement: only
  ``GetSecretValue`` and ``DeleteSecret``, only on ``<prefix>/*``, only when
  the tag matches; then the secret's own resource policy (its explicit denies:
  ``lambda_fn.jit_secret.resource_policy``), which moto stores but never
  evaluates. Anything else is answered ``AccessDeniedException`` (HTTP 400), as
  Secrets Manager does; allowed calls are forwarded to moto.

A secret that does not exist yet is also denied (the condition has no tag to
match); the task side retries both answers, so it does not depend on which
one AWS gives.

* ``POST /dynamodb/`` is DynamoDB's JSON API (``AWS_ENDPOINT_URL_DYNAMODB``), for
  a restricted profile's job-started hook reading its admission record. It applies
  the statement ``ReadOwnProfileAdmissions`` of ``fargate_runners/runner_tasks.py``:
  only ``GetItem``, only on the admission table, and only when the request's
  partition key (``dynamodb:LeadingKeys``) matches ``admitted#<profile>#*`` of the
  caller's role (:meth:`TaskIdentities.grant_admissions`). A role without that
  grant, or another key, is answered ``AccessDeniedException`` (HTTP 400, as
  DynamoDB does); allowed calls are forwarded to moto. No identity may write.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from lambda_fn import contract
from localdev._background import BackgroundHTTPServer, Service

#: The task role statement this double enforces (cdk/construct.py, _own_jit_config).
TASK_ROLE_ACTIONS = frozenset({"GetSecretValue", "DeleteSecret"})
BOUND_TAG = contract.TAG_TASK_USERID


@dataclass(frozen=True)
class Identity:
    """One task-role session: what IAM would see as ``aws:userid``."""

    userid: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    token: str = field(repr=False)
    authorization: str = field(repr=False)


@dataclass
class TaskIdentities(Service):
    """Credentials endpoint + Secrets Manager IAM check, forwarding to ``moto_url``."""

    moto_url: str
    jit_prefix: str
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    #: The admission records' table (DynamoDB calls name it; any other table is denied).
    admission_table: str = ""
    #: (userid, action, secret id or item key, outcome) for every call, in order.
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: Task role id -> the leading key its admission reads must start with.
    _admission_grants: dict[str, str] = field(default_factory=dict, repr=False)
    _by_key: dict[str, Identity] = field(default_factory=dict, repr=False)
    _by_credential_id: dict[str, Identity] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _http: BackgroundHTTPServer = field(
        default_factory=lambda: BackgroundHTTPServer("task-identities"), repr=False
    )

    @property
    def url(self) -> str:
        return self._http.base_url

    def start(self) -> TaskIdentities:
        owner = self

        class Handler(_Handler):
            identities = owner

        self._http.start(self.host, 0, Handler)
        return self

    def stop(self) -> None:
        self._http.stop()

    def session(self, role_id: str, task_arn: str) -> Identity:
        """A new task-role session named after the task id, as ECS names them."""
        return self.identity(f"{role_id}:{task_arn.rsplit('/', 1)[-1]}")

    def identity(self, userid: str) -> Identity:
        identity = Identity(
            userid=userid,
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            token=secrets.token_urlsafe(60),
            authorization=secrets.token_urlsafe(24),
        )
        with self._lock:
            self._by_key[identity.access_key_id] = identity
            self._by_credential_id[secrets.token_hex(8)] = identity
        return identity

    def grant_admissions(self, role_id: str, profile: str) -> None:
        """Give ``role_id`` the task role statement of a restricted ``profile``."""
        from lambda_fn.admission_record import key_prefix

        with self._lock:
            self._admission_grants[role_id] = key_prefix(profile)

    def task_environment(self, identity: Identity) -> dict[str, str]:
        """What a task's container would get: where its credentials and the API are."""
        with self._lock:
            credential_id = next(k for k, v in self._by_credential_id.items() if v is identity)
        return {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{self.url}/credentials/{credential_id}",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": identity.authorization,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"{self.url}/",
            "AWS_ENDPOINT_URL_DYNAMODB": f"{self.url}/dynamodb/",
        }

    # -- request handling ---------------------------------------------------------

    def credentials(self, credential_id: str, authorization: str) -> tuple[int, Any]:
        with self._lock:
            identity = self._by_credential_id.get(credential_id)
        if identity is None or authorization != identity.authorization:
            return 401, {"message": "unknown credential id or token"}
        return 200, {
            "AccessKeyId": identity.access_key_id,
            "SecretAccessKey": identity.secret_access_key,
            "Token": identity.token,
            "Expiration": (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": f"arn:aws:iam::123456789012:role/{identity.userid.split(':')[0]}",
        }

    def dynamodb(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One DynamoDB call under ``ReadOwnProfileAdmissions`` (see the module docstring)."""
        identity, code, problem = self._authenticate(url, headers, body, "dynamodb")
        action, request = _json_call(headers, body)
        key = request.get("Key", {}).get("id", {}).get("S", "") if isinstance(request, dict) else ""
        who = identity.userid if identity else "-"
        kind = "application/x-amz-json-1.0"
        if identity is None:
            return self._deny(who, action, str(key), code, problem, "dynamodb", kind)
        with self._lock:
            prefix = self._admission_grants.get(identity.userid.split(":", 1)[0])
        table = request.get("TableName") if isinstance(request, dict) else None
        if action != "GetItem" or prefix is None or table != self.admission_table:
            return self._deny(
                who, action, str(key), "AccessDeniedException", "no policy allows it",
                "dynamodb", kind,
            )  # fmt: skip
        if not isinstance(key, str) or not key.startswith(prefix):
            return self._deny(
                who, action, str(key), "AccessDeniedException",
                f"dynamodb:LeadingKeys is not like {prefix}*", "dynamodb", kind,
            )  # fmt: skip
        status, answer = self._forward(action, body, "dynamodb")
        self._record(who, action, key, f"forwarded {status}")
        return status, {"Content-Type": kind}, answer

    def secrets_manager(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        identity, code, problem = self._authenticate(url, headers, body, "secretsmanager")
        action, request = _json_call(headers, body)
        secret_id = str(request.get("SecretId", ""))
        who = identity.userid if identity else "-"
        if identity is None:
            return self._deny(who, action, secret_id, code, problem)
        if action not in TASK_ROLE_ACTIONS or not secret_id.startswith(f"{self.jit_prefix}/"):
            return self._deny(
                who, action, secret_id, "AccessDeniedException", "no policy allows it"
            )
        if self._bound_userid(secret_id) != identity.userid:
            return self._deny(
                who,
                action,
                secret_id,
                "AccessDeniedException",
                f"secretsmanager:ResourceTag/{BOUND_TAG} does not equal aws:userid",
            )
        refused = resource_policy_refusal(self._resource_policy(secret_id), action, identity.userid)
        if refused is not None:
            return self._deny(who, action, secret_id, "AccessDeniedException", refused)
        status, answer = self._forward(action, body)
        self._record(who, action, secret_id, f"forwarded {status}")
        return status, {"Content-Type": "application/x-amz-json-1.1"}, answer

    def _authenticate(
        self, url: str, headers: dict[str, str], body: bytes, expected: str
    ) -> tuple[Identity | None, str, str]:
        """The caller, if the SigV4 signature (for service ``expected``) is valid.

        Otherwise None, the error code the service would answer, and why.
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        auth = headers.get("authorization", "")
        try:
            scheme, rest = auth.split(" ", 1)
            parts = dict(item.strip().split("=", 1) for item in rest.split(","))
            key_id, date, region, service, terminator = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
        except (ValueError, KeyError):
            return None, "IncompleteSignature", "missing or malformed Authorization header"
        with self._lock:
            identity = self._by_key.get(key_id)
        if scheme != "AWS4-HMAC-SHA256" or identity is None:
            return None, "UnrecognizedClientException", "unknown access key"
        if (region, service, terminator) != (self.region, expected, "aws4_request"):
            return None, "InvalidSignatureException", f"wrong scope {region}/{service}"
        if headers.get("x-amz-security-token") != identity.token:
            return None, "UnrecognizedClientException", "missing or wrong security token"
        request = AWSRequest(
            method="POST", url=url, data=body, headers={h: headers.get(h, "") for h in signed}
        )
        request.context["timestamp"] = headers.get("x-amz-date", "")

        class Signer(SigV4Auth):
            def headers_to_sign(self, request: Any) -> Any:
                from botocore.awsrequest import HTTPHeaders

                names = HTTPHeaders()
                for name in signed:
                    names[name] = headers.get(name, "")
                return names

        signer = Signer(
            Credentials(identity.access_key_id, identity.secret_access_key, identity.token),
            expected,
            self.region,
        )
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not date or parts.get("Signature") != expected:
            return None, "InvalidSignatureException", "signature does not match"
        return identity, "", ""

    def _bound_userid(self, secret_id: str) -> str | None:
        import boto3

        sm = boto3.client(
            "secretsmanager",
            endpoint_url=self.moto_url,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
        )
        try:
            tags = sm.describe_secret(SecretId=secret_id).get("Tags", [])
        except sm.exceptions.ResourceNotFoundException:
            return None
        return next((t["Value"] for t in tags if t["Key"] == BOUND_TAG), None)

    def _resource_policy(self, secret_id: str) -> dict[str, Any] | None:
        """The secret's resource policy as moto stores it (moto evaluates none of it)."""
        import boto3

        sm = boto3.client(
            "secretsmanager",
            endpoint_url=self.moto_url,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
        )
        try:
            text = sm.get_resource_policy(SecretId=secret_id).get("ResourcePolicy")
        except sm.exceptions.ResourceNotFoundException:
            return None
        return json.loads(text) if text else None

    def _forward(
        self, action: str, body: bytes, service: str = "secretsmanager"
    ) -> tuple[int, bytes]:
        import requests

        target, version = {
            "secretsmanager": ("secretsmanager", "1.1"),
            "dynamodb": ("DynamoDB_20120810", "1.0"),
        }[service]
        answer = requests.post(
            f"{self.moto_url}/",
            data=body,
            headers={
                "X-Amz-Target": f"{target}.{action}",
                "Content-Type": f"application/x-amz-json-{version}",
                # moto reads the region from the credential scope; it checks no signature.
                "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/"
                f"{self.region}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            },
            timeout=10,
        )
        return answer.status_code, answer.content

    def _deny(  # noqa: PLR0917 - one positional per part of the answer, as before
        self,
        who: str,
        action: str,
        resource: str,
        code: str,
        why: str,
        service: str = "secretsmanager",
        content_type: str = "application/x-amz-json-1.1",
    ) -> tuple[int, dict[str, str], bytes]:
        self._record(who, action, resource, code)
        message = (
            f"User: {who} is not authorized to perform: {service}:{action} "
            f"on resource: {resource} ({why})"
        )
        payload = json.dumps({"__type": code, "message": message}).encode()
        return 400, {"Content-Type": content_type}, payload

    def _record(self, who: str, action: str, secret_id: str, outcome: str) -> None:
        with self._lock:
            self.calls.append((who, action, secret_id, outcome))


def resource_policy_refusal(
    document: Mapping[str, Any] | None, action: str, userid: str
) -> str | None:
    """Why the secret's resource policy denies ``secretsmanager:<action>`` to ``userid``.

    Only explicit denies matter here (the task role's identity policy is the allow): a
    ``Deny`` statement whose ``Action`` names the action (or ``secretsmanager:*``) denies
    unless its one condition, ``StringNotEquals`` on ``aws:userid``, is false (IAM
    policy evaluation logic: an explicit deny in any applicable policy wins). A statement
    of any other shape denies too: the double fails closed rather than guess.
    """
    for statement in (document or {}).get("Statement", []):
        if statement.get("Effect") != "Deny":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        if f"secretsmanager:{action}" not in actions and "secretsmanager:*" not in actions:
            continue
        condition = statement.get("Condition")
        if condition is None:
            return f"resource policy {statement.get('Sid', '')}: explicit deny"
        if set(condition) != {"StringNotEquals"} or set(condition["StringNotEquals"]) != {
            "aws:userid"
        }:
            return f"resource policy {statement.get('Sid', '')}: a condition the double cannot read"
        if userid != condition["StringNotEquals"]["aws:userid"]:
            return f"resource policy {statement.get('Sid', '')}: aws:userid is not the bound task"
    return None


class _Handler(BaseHTTPRequestHandler):
    identities: TaskIdentities
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: calls are recorded in ``TaskIdentities.calls``."""

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        prefix = "/credentials/"
        if not self.path.startswith(prefix):
            self._reply(404, {}, b"")
            return
        status, answer = self.identities.credentials(
            self.path[len(prefix) :], self.headers.get("Authorization", "")
        )
        self._reply(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        url = f"http://{headers.get('host', '')}{self.path}"
        if self.path.startswith("/dynamodb/"):
            self._reply(*self.identities.dynamodb(url, headers, body))
        else:
            self._reply(*self.identities.secrets_manager(url, headers, body))


def container_environment(ecs: Any, task: dict[str, Any], s3: Any = None) -> dict[str, str]:
    """The runner container's environment as ECS builds it: environment files (read from
    S3 with ``s3``), then the task definition's ``environment``, which takes precedence,
    then the ``run_task`` override (API_EnvironmentFile, API_ContainerOverride)."""
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
    (container,) = definition["taskDefinition"]["containerDefinitions"]
    env: dict[str, str] = {}
    for env_file in container.get("environmentFiles", []):
        if s3 is None:
            raise ValueError("the task definition names environment files: pass an S3 client")
        bucket, key = env_file["value"].split(":::", 1)[1].split("/", 1)
        env.update(read_env_file(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()))
    env.update({item["name"]: item["value"] for item in container.get("environment", [])})
    for override in task.get("overrides", {}).get("containerOverrides", []):
        if override.get("name") == container["name"]:
            env.update({item["name"]: item["value"] for item in override.get("environment", [])})
    return env


def read_env_file(text: str) -> dict[str, str]:
    """An environment file as the ECS agent reads it: each line as is, ``#`` lines skipped,
    split at the first ``=``, an empty name skipped (amazon-ecs-agent,
    agent/taskresource/envFiles/envfile.go, readEnvVarsFromFile)."""
    env = {}
    for line in text.split("\n"):
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        if name:
            env[name] = value
    return env


def fetch_jit_config(
    container_env: Mapping[str, str],
    identity_env: Mapping[str, str],
    runner_root: Path,
    *,
    wait_seconds: float = 5,
) -> subprocess.CompletedProcess[str]:
    """Run the task's own ``jit_config.py`` (the bytes shipped in its task definition)
    as entrypoint.sh does, with ``identity_env`` standing in for the ECS agent's."""
    script = runner_root / "_jit_config.py"
    script.write_bytes(gzip.decompress(base64.b64decode(container_env["RUNNER_JIT_PY_GZ_B64"])))
    # jit_config.py loads aws_call.py from its own directory, as the entrypoint lays them out.
    helper = runner_root / "aws_call.py"
    helper.write_bytes(gzip.decompress(base64.b64decode(container_env["RUNNER_AWS_PY_GZ_B64"])))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **{k: v for k, v in container_env.items() if k.startswith("RUNNER_JIT_SECRET_")},
        **identity_env,
    }
    argv = [
        sys.executable, str(script), "--runner-root", str(runner_root),
        "--wait-seconds", str(wait_seconds),
    ]  # fmt: skip
    try:
        # A fixed argv: this interpreter and the task's own script.
        return subprocess.run(  # noqa: S603
            argv, env=env, capture_output=True, text=True, timeout=wait_seconds + 30, check=False
        )
    finally:
        script.unlink()
        helper.unlink()


def _json_call(headers: dict[str, str], body: bytes) -> tuple[str, Any]:
    """The action (``X-Amz-Target``'s last part) and JSON body of an AWS JSON-protocol call;
    a body that is not JSON reads as ``{}`` (the call is then refused for what it lacks)."""
    action = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
    try:
        return action, json.loads(body or b"{}")
    except ValueError:
        return action, {}
