"""Shared fixtures: fake AWS (moto), fake GitHub (responses), signed deliveries.

Everything the handler touches is real code talking through the real client
libraries: boto3 -> moto's in-process backend, requests -> ``responses``
intercepting at the HTTP adapter.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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

from localdev.github_app_double import GitHubAppDouble

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


def reset_lambda_caches() -> None:
    """The handler caches clients, secrets and launchers per process: start each test clean."""
    from lambda_fn import aws, dispatch, github_auth, secrets
    from lambda_fn.config import _parse_cached

    aws.reset()
    secrets.reset()
    dispatch.reset()
    github_auth.reset()
    _parse_cached.cache_clear()


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
        reset_lambda_caches()
        yield resources
    reset_lambda_caches()


def use_retry_queue(fake: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    """Turn the retry path on, with zero backoff so a test can drain the queue at once."""
    for key, value in fake.queue_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("lambda_fn.retry_queue.backoff_seconds", lambda attempt, base: 0)
    return fake


@dataclass
class FakeGitHub:
    """A GitHub REST stand-in at the HTTP layer; records what it was asked."""

    mock: responses.RequestsMock
    jit_requests: list[dict[str, Any]] = field(default_factory=list)
    deleted_runners: list[int] = field(default_factory=list)
    issued_configs: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    runners: dict[int, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    redelivered: list[int] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    job_status: dict[int, str] = field(default_factory=dict)
    job_status_code: int = 200
    #: What ``GET /meta`` answers (only ``hooks`` matters here); a status other than 200 fails it.
    meta: dict[str, Any] = field(
        default_factory=lambda: {"hooks": ["192.30.252.0/22", "2a0a:a440::/29"]}
    )
    meta_status: int = 200
    meta_requests: list[dict[str, str]] = field(default_factory=list)
    #: job id -> fields that differ from DEFAULT_JOB (labels, run_id, head_branch, head_sha).
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: git refs: "heads/main" / "tags/v1" -> {"type": "commit"|"tag", "sha"}.
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: annotated tag objects: sha -> {"tag", "object": {"type", "sha"}}.
    tag_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the commit graph for compare: sha -> parent shas.
    parents: dict[str, list[str]] = field(default_factory=dict)
    #: Answer every git ref/tag lookup with this status instead (5xx: GitHub failing).
    refs_status_code: int = 200
    #: GITHUB_AUTH=app: GitHub's side of the App (``use_github_app``). When set, every
    #: endpoint wants a live installation token allowed there, as GitHub does.
    app: GitHubAppDouble | None = None
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def app_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """The App endpoints (installations, access tokens, GET /app): JWT only."""
        if self.app is None:  # no App: GitHub cannot decode a PAT as a JWT
            return 401, {}, '{"message": "A JSON web token could not be decoded"}'
        path = urlsplit(request.url).path
        answer = self.app.answer(request.method, path, request.headers.get("Authorization", ""))
        status, body = answer if answer is not None else (404, {"message": "Not Found"})
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def guarded(self, callback: Any) -> Any:
        """``callback`` behind GitHub's token check when the App is in use."""

        def answer(request: Any) -> tuple[int, dict[str, str], str]:
            if self.app is not None:
                refusal = self.app.refusal(
                    request.method,
                    urlsplit(request.url).path,
                    request.headers.get("Authorization", ""),
                )
                if refusal is not None:
                    return refusal[0], {"Content-Type": "application/json"}, json.dumps(refusal[1])
            result: tuple[int, dict[str, str], str] = callback(request)
            return result

        return answer

    def job_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """GET /repos/{o}/{r}/actions/jobs/{id}: 'queued' unless a test says otherwise."""
        job_id = int(request.url.rstrip("/").rsplit("/", 1)[-1])
        if self.job_status_code != 200:
            return self.job_status_code, {}, '{"message": "unavailable"}'
        body = {**DEFAULT_JOB, **self.jobs.get(job_id, {}), "id": job_id}
        body["status"] = self.job_status.get(job_id, "queued")
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def git_ref_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """GET /repos/{o}/{r}/git/ref/{heads|tags}/{name} (shared answer: localdev.github_stub)."""
        from localdev.github_stub import git_ref_answer

        if self.refs_status_code != 200:
            return self.refs_status_code, {}, '{"message": "Server Error"}'
        ref = urlsplit(request.url).path.split("/git/ref/", 1)[1]
        status, body = git_ref_answer(self.refs, ref)
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def compare_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """GET /repos/{o}/{r}/compare/{base}...{head} over ``parents``."""
        from localdev.github_stub import compare_answer

        base, _, head = urlsplit(request.url).path.rsplit("/", 1)[1].partition("...")
        status, body = compare_answer(self.parents, base, head)
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def git_tag_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """GET /repos/{o}/{r}/git/tags/{sha}: annotated tag objects."""
        from localdev.github_stub import git_tag_answer

        if self.refs_status_code != 200:
            return self.refs_status_code, {}, '{"message": "Server Error"}'
        status, body = git_tag_answer(self.tag_objects, request.url.rsplit("/", 1)[-1])
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    def jit_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.authorizations.append(request.headers.get("Authorization", ""))
        body = json.loads(request.body)
        self.jit_requests.append({"url": request.url, "headers": dict(request.headers), **body})
        runner_id = next(self._ids)
        encoded = base64.b64encode(secrets.token_bytes(48)).decode()
        self.issued_configs.append(encoded)
        self.runners[runner_id] = {
            "id": runner_id,
            "name": body["name"],
            "status": "offline",
            "busy": False,
        }
        answer = {
            "runner": {"id": runner_id, "name": body["name"], "labels": body["labels"]},
            "encoded_jit_config": encoded,
        }
        return 201, {"Content-Type": "application/json"}, json.dumps(answer)

    def set_jit(self, callback: Any = None, **response: Any) -> None:
        """Change how generate-jitconfig answers: a callback, or a fixed status/json."""
        self.mock.remove(responses.POST, JIT_URL)
        if callback is not None:
            self.mock.add_callback(responses.POST, JIT_URL, callback=callback)
        else:
            self.mock.add(responses.POST, JIT_URL, **response)

    def delete_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """Like GitHub: 422 while the runner runs a job, 404 when it is gone."""
        runner_id = int(request.url.rstrip("/").rsplit("/", 1)[-1])
        runner = self.runners.get(runner_id)
        if runner is not None and runner["busy"]:
            return 422, {}, '{"message": "Bad request - Runner is still running a job"}'
        self.deleted_runners.append(runner_id)
        self.runners.pop(runner_id, None)
        return 204, {}, ""

    def run_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        run = self.runs.get(int(request.url.rstrip("/").rsplit("/", 1)[-1]))
        if run is None:
            return 404, {}, '{"message": "Not Found"}'
        return 200, {"Content-Type": "application/json"}, json.dumps(run)

    def list_runners_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = {"total_count": len(self.runners), "runners": list(self.runners.values())}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def deliveries_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps(self.deliveries)

    def meta_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        """GET /meta: public (GitHub answers it without a token)."""
        self.meta_requests.append(dict(request.headers))
        if self.meta_status != 200:
            return self.meta_status, {}, '{"message": "unavailable"}'
        return 200, {"Content-Type": "application/json"}, json.dumps(self.meta)

    def redeliver_callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.redelivered.append(int(request.url.rstrip("/").split("/")[-2]))
        return 202, {}, "{}"


#: A job as ``GET .../actions/jobs/{id}`` shows it, for the jobs ``queued_payload`` makes.
DEFAULT_JOB: dict[str, Any] = {
    "run_id": 777,
    "run_attempt": 1,
    "head_branch": "main",
    "head_sha": "0" * 40,
    "labels": ["self-hosted", "linux", "arm64"],
    "status": "queued",
}

JIT_URL = re.compile(
    re.escape(GITHUB_API) + r"/(repos/[^/]+/[^/]+|orgs/[^/]+)/actions/runners/generate-jitconfig"
)
RUN_URL = re.compile(re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/actions/runs/\d+")
JOB_URL = re.compile(re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/actions/jobs/\d+")
RUNNERS_URL = re.compile(
    re.escape(GITHUB_API) + r"/(repos/[^/]+/[^/]+|orgs/[^/]+)/actions/runners\?.*"
)
HOOK = r"/(repos/[^/]+/[^/]+|orgs/[^/]+)/hooks/\d+"
DELIVERIES_URL = re.compile(re.escape(GITHUB_API) + HOOK + r"/deliveries\?.*")
META_URL = f"{GITHUB_API}/meta"
REDELIVER_URL = re.compile(re.escape(GITHUB_API) + HOOK + r"/deliveries/\d+/attempts")
GIT_REF_URL = re.compile(re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/git/ref/.+")
COMPARE_URL = re.compile(re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/compare/[^/]+")
GIT_TAG_URL = re.compile(re.escape(GITHUB_API) + r"/repos/[^/]+/[^/]+/git/tags/[0-9a-f]+")
RUNNER_URL = re.compile(
    re.escape(GITHUB_API) + r"/(repos/[^/]+/[^/]+|orgs/[^/]+)/actions/runners/\d+"
)
INSTALLATION_URL = re.compile(
    re.escape(GITHUB_API) + r"/(repos/[^/]+/[^/]+|orgs/[^/]+)/installation"
)
ACCESS_TOKENS_URL = re.compile(re.escape(GITHUB_API) + r"/app/installations/\d+/access_tokens")
APP_URL = f"{GITHUB_API}/app"
APP_DELIVERIES_URL = re.compile(re.escape(GITHUB_API) + r"/app/hook/deliveries\?.*")
APP_REDELIVER_URL = re.compile(re.escape(GITHUB_API) + r"/app/hook/deliveries/\d+/attempts")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeGitHub(mock)
        for method, url, callback in (
            (responses.POST, JIT_URL, fake.jit_callback),
            (responses.DELETE, RUNNER_URL, fake.delete_callback),
            (responses.GET, JOB_URL, fake.job_callback),
            (responses.GET, RUN_URL, fake.run_callback),
            (responses.GET, RUNNERS_URL, fake.list_runners_callback),
            (responses.GET, DELIVERIES_URL, fake.deliveries_callback),
            (responses.POST, REDELIVER_URL, fake.redeliver_callback),
            (responses.GET, GIT_REF_URL, fake.git_ref_callback),
            (responses.GET, GIT_TAG_URL, fake.git_tag_callback),
            (responses.GET, COMPARE_URL, fake.compare_callback),
            (responses.GET, APP_DELIVERIES_URL, fake.deliveries_callback),
            (responses.POST, APP_REDELIVER_URL, fake.redeliver_callback),
        ):
            mock.add_callback(method, url, callback=fake.guarded(callback))
        mock.add_callback(responses.GET, META_URL, callback=fake.meta_callback)
        mock.add_callback(responses.GET, INSTALLATION_URL, callback=fake.app_callback)
        mock.add_callback(responses.POST, ACCESS_TOKENS_URL, callback=fake.app_callback)
        mock.add_callback(responses.GET, APP_URL, callback=fake.app_callback)
        yield fake


#: The App of the App-mode tests (a numeric App ID is the JWT's ``iss``).
APP_ID = "424242"


def use_github_app(
    fake: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, *, install: bool = True
) -> GitHubAppDouble:
    """Switch the handler to ``GITHUB_AUTH=app``: an RSA_2048 SIGN_VERIFY key in moto's KMS
    (moto makes the key material: its ImportKeyMaterial is missing, see tests/cli), and
    GitHub's side of the App knowing that key's public half. ``install``: on octo-org."""
    from localdev.github_app_double import GitHubAppDouble

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
