"""The cluster and one fixed Fargate task definition per profile, with its roles.

One part of :class:`~fargate_runners.construct.FargateRunners`: the methods here build
their resources in the construct's own scope, so logical ids do not depend on how the code
is split.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    ArnFormat,
    Duration,
    Stack,
)
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambda_fn.jit_secret import BOUND_TAG

from .base import RunnersBase
from .config import (
    CONTAINER_NAME,
    RunnerProfile,
)
from .nag import Acknowledgment, acknowledge, nag_flatten
from .props import (
    RUNNER_USER,
    FargateRunnersProps,
)
from .runner_files import STOP_TIMEOUT_SECONDS, entrypoint_command, runner_environment


class RunnerTasksPart(RunnersBase):
    # -- ECS -----------------------------------------------------------------

    def _cluster(self) -> None:
        # Container Insights writes to /aws/ecs/containerinsights/<cluster>/performance and
        # would create that group itself, outside the stack and without expiry
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-reference-performance-logs-ECS.html).
        # A named cluster lets the stack create the group first, with retention and removal.
        cluster_name = self.cluster_physical_name
        insights_logs = self._log_group(
            "ContainerInsightsLogs",
            log_group_name=f"/aws/ecs/containerinsights/{cluster_name}/performance",
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.cluster.node.add_dependency(insights_logs)

    def _runner_tasks(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        self.runner_log_group = self._log_group("RunnerLogs")
        self.task_definitions = {}
        self.task_roles = {}
        self.execution_roles = {}
        for profile in profiles:
            scope = Construct(self, f"Profile-{profile.name}")
            task_role = iam.Role(
                scope,
                "TaskRole",
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=f"Runner profile {profile.name}: task role, reads its own JIT config",
            )
            execution_role = iam.Role(
                scope,
                "ExecutionRole",
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=f"Runner profile {profile.name}: ECS execution role (logs only)",
            )
            task_definition = ecs.FargateTaskDefinition(
                scope,
                "TaskDefinition",
                family=self.family(profile),
                cpu=profile.cpu,
                memory_limit_mib=profile.memory,
                ephemeral_storage_gib=profile.ephemeral_storage_gib,
                runtime_platform=ecs.RuntimePlatform(
                    operating_system_family=ecs.OperatingSystemFamily.LINUX,
                    cpu_architecture=(
                        ecs.CpuArchitecture.ARM64
                        if profile.architecture == "ARM64"
                        else ecs.CpuArchitecture.X86_64
                    ),
                ),
                task_role=task_role,
                execution_role=execution_role,
            )
            task_definition.add_container(
                CONTAINER_NAME,
                container_name=CONTAINER_NAME,
                image=ecs.ContainerImage.from_registry(profile.effective_image),
                # The entrypoint installs the policy hook and idle watchdog, then runs run.sh.
                command=entrypoint_command(),
                environment={
                    **runner_environment(profile.policy, props.runner_idle_timeout_seconds),
                    **profile.environment,
                },
                secrets={
                    name: ecs.Secret.from_secrets_manager(
                        secretsmanager.Secret.from_secret_complete_arn(scope, f"Secret-{name}", arn)
                    )
                    for name, arn in profile.secrets.items()
                },
                user=RUNNER_USER,
                # SIGTERM reaches the Listener as SIGINT (entrypoint.sh); this is the time
                # ECS gives the runner before SIGKILL.
                stop_timeout=Duration.seconds(STOP_TIMEOUT_SECONDS),
                readonly_root_filesystem=False,
                essential=True,
                privileged=False,
                # Container-level limits equal to the task's (local emulators need them).
                cpu=profile.cpu,
                memory_limit_mib=profile.memory,
                logging=ecs.LogDrivers.aws_logs(
                    stream_prefix=profile.name, log_group=self.runner_log_group
                ),
            )
            self._own_jit_config(task_role)
            self._task_role_policies(profile, task_role)
            self._registry_access(profile, execution_role)
            if profile.secrets_kms_key_arns:
                # Secrets Manager decrypts with the caller's permissions: ECS needs
                # kms:Decrypt on a customer-managed key, and only through Secrets Manager
                # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html).
                execution_role.add_to_policy(
                    iam.PolicyStatement(
                        sid="DecryptProfileSecrets",
                        actions=["kms:Decrypt"],
                        resources=list(profile.secrets_kms_key_arns),
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"secretsmanager.{Stack.of(self).region}"
                                ".amazonaws.com"
                            }
                        },
                    )
                )
            acknowledge(
                task_definition,
                Acknowledgment(
                    id="AwsSolutions-ECS2",
                    reason=(
                        "The environment holds only non-secret values: the profile's policy, "
                        "the job-started hook code and the idle limit. Secrets reach the task "
                        "through ECS secrets (Secrets Manager), never as plain environment."
                    ),
                ),
            )
            self.task_definitions[profile.name] = task_definition
            self.task_roles[profile.name] = task_role
            self.execution_roles[profile.name] = execution_role

    def _own_jit_config(self, task_role: iam.Role) -> None:
        """Read and delete the JIT config secret bound to this very task, no other.

        The Lambda tags each secret ``runner:task-userid = <role id>:<task id>``;
        ``${aws:userid}`` of a task-role session is ``<role id>:<session name>``
        and ECS names the session after the task id (docs/jit-config.md), so a
        task of the same profile (same role, other session) matches nothing.
        """
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAndConsumeOwnJitConfig",
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
                resources=[self.sealed_configs_arn()],
                conditions={
                    "StringEquals": {f"secretsmanager:ResourceTag/{BOUND_TAG}": "${aws:userid}"}
                },
            )
        )
        stack = Stack.of(self)
        acknowledge(
            task_role,
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::"
                f"{nag_flatten(stack.resolve(self.sealed_configs_arn()))}]",
                reason=(
                    "Secret names are per runner and unknown at deploy; the statement only "
                    "matches a secret whose runner:task-userid tag equals the caller's own "
                    "aws:userid (this task's session), so each task reads only its own."
                ),
            ),
        )

    def _task_role_policies(self, profile: RunnerProfile, task_role: iam.Role) -> None:
        """Exactly the permissions the operator listed for this profile, nothing else."""
        for item in profile.task_role_policies:
            if isinstance(item, str):
                task_role.add_managed_policy(
                    iam.ManagedPolicy.from_managed_policy_arn(
                        task_role, f"Managed{len(task_role.node.children)}", item
                    )
                )
            else:
                task_role.add_to_policy(iam.PolicyStatement.from_json(dict(item)))
        # cdk-nag names each finding (IAM4[Policy::arn], IAM5[Resource::...]): acknowledge
        # exactly the findings the operator's own policies produce, nothing broader.
        finding_ids: dict[str, None] = {}
        for item in profile.task_role_policies:
            if isinstance(item, str):
                if ":iam::aws:" in item:
                    finding_ids[f"AwsSolutions-IAM4[Policy::{item}]"] = None
            elif item.get("Effect", "Allow") == "Allow":
                for kind in ("Action", "Resource"):
                    values = item[kind]
                    for value in [values] if isinstance(values, str) else values:
                        if "*" in value:
                            finding_ids[f"AwsSolutions-IAM5[{kind}::{value}]"] = None
        if finding_ids:
            reason = (
                f"Granted explicitly by the operator in cdk.json profiles[{profile.name}]."
                "task_role_policies for jobs of this profile; reviewed there."
            )
            acknowledge(
                task_role, *(Acknowledgment(id=finding, reason=reason) for finding in finding_ids)
            )

    def _registry_access(self, profile: RunnerProfile, execution_role: iam.Role) -> None:
        """Let ECS pull from a private ECR registry prefix (e.g. a pull-through cache)."""
        prefix = (profile.registry_prefix or "").rstrip("/")
        host, _, path = prefix.partition("/")
        parts = host.split(".")
        if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"]:
            return  # not ECR: public registries need no permissions
        account, region = parts[0], parts[3]
        stack = Stack.of(self)
        repositories = stack.format_arn(
            service="ecr",
            region=region,
            account=account,
            resource="repository",
            resource_name=f"{path}/*" if path else "*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    "ecr:BatchImportUpstreamImage",
                    "ecr:CreateRepository",
                ],
                resources=[repositories],
            )
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        acknowledge(
            execution_role,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(repositories))}]",
                reason="Pulls any image under the profile's registry_prefix (pull-through cache).",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions.",
            ),
        )
