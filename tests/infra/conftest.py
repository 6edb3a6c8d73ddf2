"""Session-scoped synths of the CDK app (first synth in a process takes ~10 s)."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # ``cdk`` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

aws_cdk = pytest.importorskip("aws_cdk")

from aws_cdk.assertions import Template  # noqa: E402

STACK_NAME = "RunnersTest"

DEPLOY_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy/token-AbC123"
DEPLOY_KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DEPLOY_REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr"
DEPLOY_STATEMENT = {
    "Effect": "Allow",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::deploy-bucket/*",
}

#: A restricted profile: policy, secret, one task role statement, ECR pull-through prefix.
DEPLOY_PROFILE: dict[str, Any] = {
    "name": "deploy",
    "labels": ["self-hosted", "linux", "deploy"],
    "allowed_repositories": ["octo-org/app"],
    "allowed_refs": ["refs/heads/main"],
    "allowed_events": ["push", "workflow_dispatch"],
    "required_env": ["DEPLOY_TOKEN"],
    "environment": {"DEPLOY_STAGE": "prod"},
    "secrets": {"DEPLOY_TOKEN": DEPLOY_SECRET_ARN},
    "secrets_kms_key_arns": [DEPLOY_KMS_KEY_ARN],
    "task_role_policies": [DEPLOY_STATEMENT],
    "capacity": "FARGATE_SPOT_THEN_FARGATE",
    "max_runners": 2,
    "registry_prefix": DEPLOY_REGISTRY,
}

#: Three profiles: ARM64 with defaults, X86_64 with custom cpu/memory/image/storage, and
#: the restricted ``deploy`` profile. Non-default values for every top-level key.
TEST_CONTEXT: dict[str, Any] = {
    "stack_name": STACK_NAME,
    "profiles": [
        {"name": "small", "labels": ["self-hosted", "linux", "arm64", "small"]},
        {
            "name": "big-x64",
            "labels": ["self-hosted", "Linux", "X64", "big"],
            "cpu": 4096,
            "memory": 16384,
            "architecture": "X86_64",
            "ephemeral_storage_gib": 100,
            "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/runner:custom",
        },
        DEPLOY_PROFILE,
    ],
    "runner_scope": "org",
    "runner_group_id": 7,
    "allowed_repositories": ["octo-org/*", "other/app"],
    "github_api_url": "https://ghe.example.com/api/v3",
    "log_retention_days": 14,
    "log_removal_policy": "retain",
    "api_gateway_logging": "create",
    "webhook_throttle_rate": 5,
    "webhook_throttle_burst": 10,
    "retry_max_attempts": 4,
    "runner_idle_timeout_seconds": 600,
    "reconcile_interval_minutes": 10,
    "github_hook_path": "orgs/octo-org/hooks/12345",
    "alarm_email": "ops@example.com",
    "webhook_source_cidrs": ["203.0.113.0/24", "198.51.100.7/32", "2001:db8:10::/48"],
    "webhook_rate_limit": 600,
    "detailed_tracing": True,
}

EXISTING_VPC_CONTEXT: dict[str, Any] = {
    "stack_name": "RunnersExisting",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "github_token_secret_arn": (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gh/pat-AbC123"
    ),
    "alarm_topic_arn": "arn:aws:sns:eu-west-1:123456789012:ops-alarms",
    "api_gateway_logging": "existing",
    "vpc_endpoints": True,
    "vpc_endpoint_route_table_ids": ["rtb-0123456789abcdef0"],
}

EDGE_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"

#: Watchdog off, no alarm topic, no web ACL; one profile with a managed task role policy, a
#: non-ECR registry mirror, its own subnets (in an existing VPC: the stack's own VPC has
#: no subnet to name yet) and a warm pool for working hours.
EDGE_CONTEXT: dict[str, Any] = {
    "stack_name": "RunnersEdge",
    "vpc_id": "vpc-0aaaaaaaaaaaaaaaa",
    "subnet_ids": ["subnet-0bbbbbbbbbbbbbbbb"],
    "runner_idle_timeout_seconds": 0,
    "webhook_firewall": False,
    "profiles": [
        {
            "name": "mirror",
            "labels": ["self-hosted", "linux", "mirror"],
            "capacity": "FARGATE_SPOT",
            "task_role_policies": [EDGE_MANAGED_POLICY],
            "registry_prefix": "mirror.example.com/hub",
            "subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa"],
            "assign_public_ip": False,
            "warm_runners": 2,
            "warm_scope": "octo-org/app",
            "warm_days": ["mon", "tue", "wed", "thu", "fri"],
            "warm_hours": "07-19",
        }
    ],
}

STEP_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/deploy@sha256:" + "ab" * 32
STEP_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:deploy/step-AbC123"
STEP_STATEMENT = {
    "Effect": "Allow",
    "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::deploy-bucket/releases/*",
}

#: One managed-steps profile: steps run as tasks of a step task definition.
STEPS_CONTEXT: dict[str, Any] = {
    "stack_name": "RunnersSteps",
    "alarm_email": "ops@example.com",
    "profiles": [
        {
            "name": "deploy",
            "labels": ["self-hosted", "linux", "deploy"],
            "allowed_repositories": ["octo-org/app"],
            "allowed_refs": ["refs/heads/main"],
            "steps": "managed",
            "step_image": STEP_IMAGE,
            "managed_commands": {
                "deploy": ["/usr/local/bin/trigger-deploy"],
                "migrate": ["/usr/local/bin/migrate", "up"],
            },
            "step_env": ["INPUT_DEPLOY_TARGET", "INPUT_SHA"],
            "step_role_policies": [STEP_STATEMENT],
            "step_secrets": {"DEPLOY_TOKEN": STEP_SECRET_ARN},
            "step_cpu": 512,
            "step_memory": 1024,
        }
    ],
}

#: Skip Lambda asset bundling (pip) where a synth does not look at the bundle.
NO_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


@dataclass
class Synth:
    template: Template
    raw: dict[str, Any]
    outdir: Path
    stack: Any
    acknowledgments: list[tuple[str, str]] = field(default_factory=list)

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack.artifact_id}.template.json"

    @property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == type_}

    def env_file(self, container: dict[str, Any]) -> dict[str, str]:
        """The variables of a container's one environment file, read from the asset CDK
        staged in the cloud assembly (``asset.<hash>.env``; the S3 key is ``<hash>.env``),
        as the ECS agent reads them: ``NAME=VALUE`` per line, ``#`` lines skipped."""
        (ref,) = container["EnvironmentFiles"]
        assert ref["Type"] == "s3"
        key = ref["Value"]["Fn::Join"][1][-1].rsplit("/", 1)[-1]
        text = (self.outdir / f"asset.{key}").read_text()
        pairs = (line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
        return dict(pairs)  # type: ignore[arg-type]


def synth(context: dict[str, Any], outdir: Path) -> Synth:
    """Synthesize with cdk-nag on.

    ``app.synth()`` raises when cdk-nag reports an unacknowledged error, after the
    template and the validation report are written. That one failure is tolerated
    here so the template can still be tested; ``test_quality`` compares the report
    with the known findings (``KNOWN_UNSUPPRESSED``), so nothing unexpected passes.
    """
    from cdk.app import build_app

    app, stack = build_app(context=context, outdir=str(outdir), nag=True)
    try:
        app.synth()
    except Exception as exc:
        if not re.search(r"Validation ?[Ff]ailed", str(exc)):
            raise
    raw: dict[str, Any] = json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
    return Synth(template=Template.from_json(raw), raw=raw, outdir=outdir, stack=stack)


@pytest.fixture(scope="session")
def main_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """New VPC, two profiles, with the real (pip-bundled) Lambda asset."""
    return synth(TEST_CONTEXT, tmp_path_factory.mktemp("cdk-main"))


@pytest.fixture(scope="session")
def existing_vpc_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Existing VPC and subnets, imported PAT secret, default profile."""
    return synth({**EXISTING_VPC_CONTEXT, **NO_BUNDLING}, tmp_path_factory.mktemp("cdk-vpc"))


@pytest.fixture(scope="session")
def edge_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Watchdog off, no alarms, managed task role policy, non-ECR mirror, profile subnets."""
    return synth({**EDGE_CONTEXT, **NO_BUNDLING}, tmp_path_factory.mktemp("cdk-edge"))


@pytest.fixture(scope="session")
def steps_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """One managed-steps profile: the step task definition and the runner role's grants."""
    return synth({**STEPS_CONTEXT, **NO_BUNDLING}, tmp_path_factory.mktemp("cdk-steps"))


@pytest.fixture(scope="session")
def audit_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A synth whose acknowledgments are recorded instead of applied.

    The report then lists every finding; the tests compare it with the
    acknowledgments one by one (none missing, none stale).
    """
    return audited_synth(TEST_CONTEXT, tmp_path_factory.mktemp("cdk-audit"))


@pytest.fixture(scope="session")
def steps_audit_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """:func:`audit_synth` of the managed-steps context."""
    return audited_synth(STEPS_CONTEXT, tmp_path_factory.mktemp("cdk-steps-audit"))


def audited_synth(context: dict[str, Any], outdir: Path) -> Synth:
    """Synthesize ``context`` recording acknowledgments instead of applying them."""
    from cdk.app import build_app

    # Every module of the app that imported ``Validations`` (to acknowledge findings).
    modules = [
        module
        for name, module in sorted(sys.modules.items())
        if name.startswith("fargate_runners.") and hasattr(module, "Validations")
    ]
    assert any(module.__name__ == "fargate_runners.nag" for module in modules)
    recorded: list[tuple[str, str]] = []
    real = [getattr(module, "Validations") for module in modules]  # noqa: B009

    class Recorder:
        def __init__(self, scope: Any) -> None:
            self.scope = scope

        def acknowledge(self, *rules: Any) -> None:
            recorded.extend((self.scope.node.path, rule.id) for rule in rules)

    class FakeValidations:
        @staticmethod
        def of(scope: Any) -> Recorder:
            return Recorder(scope)

    for module in modules:
        setattr(module, "Validations", FakeValidations)  # noqa: B010
    try:
        app, stack = build_app(context={**context, **NO_BUNDLING}, outdir=str(outdir))
        with pytest.raises(Exception, match=r"Validation ?[Ff]ailed"):
            app.synth()
    finally:
        for module, original in zip(modules, real, strict=True):
            setattr(module, "Validations", original)  # noqa: B010
    return Synth(
        template=Template.from_json({"Resources": {}}),
        raw={},
        outdir=outdir,
        stack=stack,
        acknowledgments=recorded,
    )


def findings(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(construct path, rule id, severity) of every finding in a validation report."""
    found: set[tuple[str, str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "ruleName" in node:
                for violating in node.get("violatingConstructs", []):
                    found.add((violating["constructPath"], node["ruleName"], node["severity"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found


#: The deploy profile's policy as the runner and the Lambda must see it.
DEPLOY_POLICY = {
    "profile": "deploy",
    "allowed_repositories": ["octo-org/app"],
    "allowed_refs": ["refs/heads/main"],
    "allowed_events": ["push", "workflow_dispatch"],
    "deny_fork_pull_requests": True,
    "required_env": ["DEPLOY_TOKEN"],
}
