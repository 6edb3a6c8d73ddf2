"""The CDK app under test: contexts, synths, and the synth cache shared by xdist workers.

The first synth in a process takes ~10 s (jsii starts node, loads aws-cdk-lib); each
configuration after that several more. :func:`cached_synth` makes each configuration
synthesize once per test run, whatever the number of workers: the first worker to ask
holds a file lock while it writes the cloud assembly under the run's shared temporary
directory, the others wait, then load the template from the written JSON (the pattern
of pytest-xdist's docs, "Making session-scoped fixtures execute only once").
"""

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
    stack_built: Any = field(default=None, repr=False)
    acknowledgments: list[tuple[str, str]] = field(default_factory=list)
    #: The context, to build the stack again in a process that loaded this synth.
    context: dict[str, Any] = field(default_factory=dict, repr=False)
    artifact_id: str = ""

    @property
    def stack(self) -> Any:
        """The ``RunnersStack`` object. A synth loaded from the cache (another worker wrote
        it) builds the construct tree again here, without bundling or synthesizing: the
        template tests read stays the one written."""
        if self.stack_built is None:
            import tempfile

            from cdk.app import build_app

            outdir = tempfile.mkdtemp(prefix="cdk-stack-", dir=self.outdir.parent)
            _, self.stack_built = build_app(context={**self.context, **NO_BUNDLING}, outdir=outdir)
        return self.stack_built

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.artifact_id}.template.json"

    @property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report

    def warnings(self) -> list[str]:
        """The stack's warnings, as ``Annotations.from_stack(stack).find_warning("*",
        Match.any_value())`` gives them: the stack artifact's messages of level warning, read
        from the cloud assembly this synth wrote. ``Annotations.from_stack`` reads the same
        messages after synthesizing the whole app again (``root.synth({force: true})`` in
        aws-cdk-lib's ``assertions/lib/annotations.ts``); a synth loaded from the cache would
        first build its construct tree again."""
        from aws_cdk import cx_api

        artifact = cx_api.CloudAssembly(str(self.outdir)).get_stack_artifact(self.artifact_id)
        warning = cx_api.SynthesisMessageLevel.WARNING
        return [str(m.entry.data) for m in artifact.messages if m.level == warning]

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
    return Synth(
        template=Template.from_json(raw),
        raw=raw,
        outdir=outdir,
        stack_built=stack,
        context=context,
        artifact_id=stack.artifact_id,
    )


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
        stack_built=stack,
        acknowledgments=recorded,
        context=context,
        artifact_id=stack.artifact_id,
    )


META = "synth.json"


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by every worker of this test run, and by nothing else: under
    xdist, the parent of the worker's base temp (``pytest-N/popen-gwK``); alone, the base
    temp itself (its parent is shared with other runs of the same user)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def cached_synth(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    context: dict[str, Any],
    *,
    audited: bool = False,
) -> Synth:
    """:func:`synth` (or :func:`audited_synth`) of ``context``, once per test run.

    The cloud assembly goes to ``<run dir>/cdk-<name>-<hash of the context>``; the worker
    that writes it then writes ``synth.json`` (artifact id, acknowledgments) last, under an
    exclusive ``fcntl`` lock, so a worker that finds ``synth.json`` finds a whole assembly.
    """
    import fcntl
    import hashlib

    key = hashlib.sha256(
        json.dumps({"audited": audited, "context": context}, sort_keys=True).encode()
    ).hexdigest()[:16]
    outdir = run_dir(tmp_path_factory) / f"cdk-{name}-{key}"
    lock_path = outdir.with_suffix(".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            meta_file = outdir / META
            if meta_file.exists():
                return load_synth(outdir, json.loads(meta_file.read_text()), context)
            outdir.mkdir(parents=True, exist_ok=True)
            made = audited_synth(context, outdir) if audited else synth(context, outdir)
            meta = {
                "artifact_id": made.artifact_id,
                "audited": audited,
                "acknowledgments": made.acknowledgments,
            }
            meta_file.write_text(json.dumps(meta))
            return made
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_synth(outdir: Path, meta: dict[str, Any], context: dict[str, Any]) -> Synth:
    """The :class:`Synth` another worker wrote to ``outdir``."""
    artifact_id = str(meta["artifact_id"])
    template_file = outdir / f"{artifact_id}.template.json"
    raw: dict[str, Any] = {} if meta["audited"] else json.loads(template_file.read_text())
    return Synth(
        template=Template.from_json(raw or {"Resources": {}}),
        raw=raw,
        outdir=outdir,
        acknowledgments=[(scope, rule) for scope, rule in meta["acknowledgments"]],
        context=context,
        artifact_id=artifact_id,
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
