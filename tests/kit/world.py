"""What the stack would have created, in moto: ``FakeAws`` and the helpers around it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

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


def create_stack_resources(
    region: str = "us-east-1", context: dict[str, Any] | None = None
) -> FakeAws:
    """Create in the active moto backend what ``cdk deploy`` would create (``context``:
    the ``cdk.json`` context, :data:`TEST_CONTEXT` by default)."""
    from localdev.provision import provision

    stack = provision(
        None,
        TEST_CONTEXT if context is None else context,
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
