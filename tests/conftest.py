"""Shared fixtures: fake AWS (moto), fake GitHub (responses), signed deliveries.

Everything the handler touches is real code talking through the real client
libraries: boto3 -> moto's in-process backend, requests -> ``responses``
intercepting at the HTTP adapter.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import responses

# moto must be imported before any boto3 client exists, and tests never use real AWS.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "FargateRunnersTest",
        "POWERTOOLS_SERVICE_NAME": "runner-webhook",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

from moto import mock_aws

from lambda_fn.aws import reset_caches
from localdev.github_app_double import GitHubAppDouble
from localdev.github_model import Call, GitHubModel

GITHUB_API = "https://api.github.test"
WEBHOOK_SECRET = "whsec-" + "a1b2c3d4" * 4
PAT = "ghp_" + "PATSHOULDNEVERLEAK" + "x" * 18


#: What the tests deploy: two profiles, as a cdk.json context (the local mode reads the same).
TEST_CONTEXT: dict[str, Any] = {
    "stack_name": "runners",
    "profiles": [
        {"name": "default", "labels": ["self-hosted", "linux", "arm64", "fargate"]},
        {
            "name": "big",
            "labels": ["self-hosted", "linux", "x64", "fargate", "big"],
            "architecture": "X86_64",
            "cpu": 4096,
            "memory": 8192,
        },
    ],
    # Private subnets behind a NAT (no public IP without a VPC of one's own is refused).
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0"],
    "assign_public_ip": False,
}


@dataclass
class FakeAws:
    """What the stack would have created, in moto (made by ``localdev.provision``)."""

    region: str
    cluster: str
    task_definitions: dict[str, str]
    subnet_id: str
    security_group_id: str
    table: str
    webhook_secret_arn: str
    token_secret_arn: str
    retry_queue_url: str
    dead_letter_queue_url: str
    task_role_ids: dict[str, str]
    base_env: dict[str, str] = field(repr=False)

    @property
    def jit_prefix(self) -> str:
        """``JIT_SECRET_PREFIX``: the sealed JIT configs are ``<prefix>/<runner name>``."""
        return self.base_env["JIT_SECRET_PREFIX"]

    def sealed_configs(self) -> dict[str, dict[str, Any]]:
        """Secret name -> {"value", "tags"} for every JIT config secret still stored."""
        sm = boto3.client("secretsmanager", region_name=self.region)
        found: dict[str, dict[str, Any]] = {}
        for entry in sm.list_secrets(Filters=[{"Key": "name", "Values": [self.jit_prefix]}])[
            "SecretList"
        ]:
            value = sm.get_secret_value(SecretId=entry["Name"])["SecretString"]
            tags = {t["Key"]: t["Value"] for t in entry.get("Tags", [])}
            found[entry["Name"]] = {"value": value, "tags": tags}
        return found

    def profiles(self) -> list[dict[str, Any]]:
        """The profiles as provisioned (read from their SSM parameters, like the Lambda)."""
        from localdev.profiles import read_profiles

        return read_profiles(boto3.client("ssm", region_name=self.region), self.base_env)

    def env(self, **overrides: str) -> dict[str, str]:
        """The handler's environment per docs/contract.md, without the retry path."""
        env = {
            key: value
            for key, value in self.base_env.items()
            if not key.startswith(("AWS_", "POWERTOOLS_"))
            and key not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL")
        }
        env.update({"RUNNER_NAME_PREFIX": "fgr", "ALLOWED_REPOSITORIES": ""})
        env.update(overrides)
        return env

    def queue_env(self) -> dict[str, str]:
        """The retry-path variables (docs/contract.md "Retry path"); unset in the base contract."""
        return {
            "RETRY_QUEUE_URL": self.retry_queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
        }

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        """Everything on a queue, delayed or not (moto: read its backend directly)."""
        from moto.sqs.models import sqs_backends

        name = queue_url.rsplit("/", 1)[-1]
        queue = sqs_backends["123456789012"][self.region].queues[name]
        return [json.loads(m.body) for m in queue._messages]

    def tasks(self) -> list[dict[str, Any]]:
        ecs = boto3.client("ecs", region_name=self.region)
        arns = ecs.list_tasks(cluster=self.cluster)["taskArns"]
        if not arns:
            return []
        return ecs.describe_tasks(cluster=self.cluster, tasks=arns, include=["TAGS"])["tasks"]


def create_stack_resources(region: str = "us-east-1") -> FakeAws:
    """Create in the active moto backend what ``cdk deploy`` would create."""
    from localdev.provision import provision

    stack = provision(
        None,
        TEST_CONTEXT,
        region,
        github_api_url=GITHUB_API,
        webhook_secret=WEBHOOK_SECRET,
        pat=PAT,
    )
    return FakeAws(
        region=region,
        cluster=stack.cluster,
        task_definitions=stack.task_definitions,
        subnet_id=stack.subnet_id,
        security_group_id=stack.security_group_id,
        table=stack.table,
        webhook_secret_arn=stack.webhook_secret_arn,
        token_secret_arn=stack.token_secret_arn,
        retry_queue_url=stack.retry_queue_url,
        dead_letter_queue_url=stack.dead_letter_queue_url,
        task_role_ids=stack.task_role_ids,
        base_env=stack.env,
    )


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    with mock_aws():
        resources = create_stack_resources()
        for key, value in resources.env().items():
            monkeypatch.setenv(key, value)
        reset_caches()
        yield resources
    reset_caches()


def current_profiles() -> list[dict[str, Any]]:
    """The profiles the handler reads now (the parameters the environment names)."""
    from localdev.profiles import read_profiles

    return read_profiles(boto3.client("ssm"), dict(os.environ))


def set_profiles(monkeypatch: pytest.MonkeyPatch, profiles: list[dict[str, Any]]) -> None:
    """Give the handler ``profiles`` the way the deployed Lambda gets them: new SSM
    parameters (``localdev/profiles.py``) named by the environment, with a new
    ``RUNNER_PROFILES_VERSION`` (as a deploy does). The provisioned ones stay untouched."""
    import secrets

    from localdev.profiles import store_profiles

    written = store_profiles(boto3.client("ssm"), f"tests/{secrets.token_hex(4)}", profiles)
    for key, value in written.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RUNNER_PROFILES", raising=False)


def add_deploy_profile(
    fake: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    labels: list[str],
    policy: dict[str, Any],
) -> FakeAws:
    """Put a restricted ``deploy`` profile with ``policy`` first, on the default task
    definition, in the provisioned subnet without a public IP."""
    profiles = fake.profiles()
    profiles.insert(
        0,
        {
            "name": "deploy",
            "labels": labels,
            "task_definition": fake.task_definitions["default"],
            "container_name": "runner",
            "task_role_id": profiles[0]["task_role_id"],
            "policy": {"profile": "deploy", **policy},
            "subnet_ids": [fake.subnet_id],
            "assign_public_ip": False,
        },
    )
    set_profiles(monkeypatch, profiles)
    return fake


def use_retry_queue(fake: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    """Turn the retry path on, with zero backoff so a test can drain the queue at once."""
    for key, value in fake.queue_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("lambda_fn.retry_queue.backoff_seconds", lambda attempt, base: 0)
    return fake


class FakeGitHub(GitHubModel):
    """The GitHub model (``localdev.github_model``) served through ``responses``: every
    request ``requests`` sends to ``base_url`` reaches :meth:`GitHubModel.handle`.

    What the tests read besides the model's state is derived from what was sent
    (``mock.calls``), so it cannot disagree with it.
    """

    def __init__(self, mock: responses.RequestsMock, base_url: str = GITHUB_API, **state: Any):
        super().__init__(**state)
        self.mock = mock
        self.base_url = base_url
        self._jit_override: Callable[[Any], Any] | None = None
        for method in (
            responses.GET,
            responses.POST,
            responses.PATCH,
            responses.PUT,
            responses.DELETE,
        ):
            mock.add_callback(
                method, re.compile(re.escape(base_url) + r"/.*"), callback=self._callback
            )

    def _callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self._jit_override is not None and JIT_PATH.search(urlsplit(request.url).path):
            return self._jit_override(request)  # type: ignore[no-any-return]
        return self.jit_callback(request)

    def jit_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """The model's own answer to ``request`` (a ``set_jit`` callback can fall back to it)."""
        parts = urlsplit(request.url)
        raw = request.body or b""
        credentials = request.headers.get("Authorization", "")
        call = Call(
            method=request.method,
            path=parts.path.removeprefix(urlsplit(self.base_url).path),
            query=parse_qs(parts.query),
            body=json.loads(raw) if raw else None,
            token=credentials.partition(" ")[2].strip() or None,
            base_url=self.base_url,
        )
        status, headers, body = self.handle(call)
        headers = {**headers, "Content-Type": "application/json; charset=utf-8"}
        return status, headers, "" if body is None else json.dumps(body)

    def set_jit(self, callback: Any = None, **response: Any) -> None:
        """How generate-jitconfig answers from now on: a ``responses`` callback, or a fixed
        ``status``/``json`` (a fault without end); ``set_jit(github.jit_callback)`` restores
        the model's answer."""
        self.clear_faults("POST", JIT_PATH.pattern)
        self._jit_override = None
        if callback is not None and callback != self.jit_callback:
            self._jit_override = callback
        elif callback is None:
            body = response.get("json", {"message": "injected failure"})
            self.fail("POST", JIT_PATH.pattern, response["status"], times=None, body=body)

    def _sent(self, method: str, path: re.Pattern[str], status: int | None = None) -> list[Any]:
        return [
            c.request
            for c in self.mock.calls
            if c.request.method == method
            and path.search(urlsplit(c.request.url).path)
            and (status is None or getattr(c.response, "status_code", None) == status)
        ]

    @property
    def jit_requests(self) -> list[dict[str, Any]]:
        """The generate-jitconfig requests GitHub granted: body, ``url`` and ``headers``."""
        return [
            {"url": r.url, "headers": dict(r.headers), **json.loads(r.body)}
            for r in self._sent("POST", JIT_PATH, 201)
        ]

    @property
    def authorizations(self) -> list[str]:
        """The ``Authorization`` headers of the granted generate-jitconfig requests."""
        return [r.headers.get("Authorization", "") for r in self._sent("POST", JIT_PATH, 201)]

    @property
    def deleted_runners(self) -> list[int]:
        """Runner ids GitHub deleted (answered 204)."""
        return [int(r.url.rsplit("/", 1)[-1]) for r in self._sent("DELETE", RUNNER_PATH, 204)]

    @property
    def meta_requests(self) -> list[dict[str, str]]:
        """The headers of every ``GET /meta``."""
        return [dict(r.headers) for r in self._sent("GET", re.compile(r"/meta$"))]


JIT_PATH = re.compile(r"/actions/runners/generate-jitconfig$")
RUNNER_PATH = re.compile(r"/actions/runners/\d+$")
#: The webhooks the tests' stacks were set up with (``GITHUB_HOOK_PATH`` / the SSM parameter).
TEST_HOOKS = {12: "repos/octo-org/app", 99: "orgs/octo-org"}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeGitHub(mock)
        for hook_id, scope in TEST_HOOKS.items():
            fake.add_hook(scope, "https://abc123.execute-api.test/prod/webhook", hook_id=hook_id)
        yield fake


#: The App of the App-mode tests (a numeric App ID is the JWT's ``iss``).
APP_ID = "424242"


def use_github_app(
    fake: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, *, install: bool = True
) -> GitHubAppDouble:
    """Switch the handler to ``GITHUB_AUTH=app``: an RSA_2048 SIGN_VERIFY key in moto's KMS
    (moto makes the key material: its ImportKeyMaterial is missing, see tests/cli), and
    GitHub's side of the App knowing that key's public half. ``install``: on octo-org."""
    kms = boto3.client("kms", region_name=fake.region)
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    public = kms.get_public_key(KeyId=key["Arn"])["PublicKey"]
    github.app = GitHubAppDouble(APP_ID, public)
    if install:
        github.app.install("octo-org")
    for name, value in (
        ("GITHUB_AUTH", "app"),
        ("GITHUB_APP_ID", APP_ID),
        ("GITHUB_APP_KEY_ARN", key["Arn"]),
    ):
        monkeypatch.setenv(name, value)
    return github.app


@pytest.fixture
def lambda_logs() -> Iterator[io.StringIO]:
    """The handler's structured log lines, exactly as Lambda would ship them."""
    from lambda_fn.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits are recorded, not slept."""
    slept: list[float] = []
    monkeypatch.setattr("lambda_fn.github.time.sleep", slept.append)
    return slept


class LambdaContext:
    function_name = "runner-webhook"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:runner-webhook"
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def queued_payload(
    job_id: int = 4242,
    labels: list[str] | None = None,
    repo: str = "octo-org/app",
    action: str = "queued",
    run_id: int = 777,
) -> dict[str, Any]:
    owner, name = repo.split("/")
    return {
        "action": action,
        "workflow_job": {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": 1,
            "name": "integration-tests",
            "workflow_name": "CI",
            "head_branch": "main",
            "head_sha": "0" * 40,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": "queued" if action == "queued" else "completed",
            "labels": labels if labels is not None else ["self-hosted", "linux", "arm64"],
            "runner_name": None,
        },
        "repository": {"id": 1, "name": name, "full_name": repo, "owner": {"login": owner}},
        "sender": {"login": "octocat"},
    }


def waiting_payload(
    job_id: int = 4242,
    environment: str = "prod",
    *,
    labels: list[str] | None = None,
    action: str = "queued",
    status: str | None = "waiting",
    run_id: int = 777,
    deployment_id: int = 875096709,
) -> dict[str, Any]:
    """A job that names ``environment:``: ``queued`` while a protection rule holds it
    (``status="waiting"``), after approval (``status="queued"``), or the ``waiting`` action."""
    from localdev.deliveries import with_deployment

    payload = queued_payload(job_id, labels, run_id=run_id)
    payload["action"] = action
    return with_deployment(payload, environment, deployment_id=deployment_id, status=status)


def api_event(
    body: bytes | str,
    *,
    event: str = "workflow_job",
    secret: str | None = WEBHOOK_SECRET,
    signature: str | None = None,
    delivery: str = "d-1",
    base64_encoded: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (payload format 1.0) as GitHub's delivery makes it."""
    from lambda_fn.signature import sign

    raw = body.encode() if isinstance(body, str) else body
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret.encode(), raw)
    headers.update(extra_headers or {})
    from localdev.endpoint import api_gateway_event

    event = api_gateway_event(
        "POST", "/webhook", headers.items(), raw, resource="/webhook", request_id="req-1"
    )
    if base64_encoded:  # API Gateway does this for binary media types
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    return event


def deliver(payload: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Send one delivery through the real Lambda handler; return (status, JSON body)."""
    from lambda_fn.app import handler

    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    response = handler(api_event(body, **kwargs), LambdaContext())
    return response["statusCode"], json.loads(response["body"] or "{}")
