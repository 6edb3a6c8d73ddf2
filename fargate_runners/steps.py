"""Managed steps: the step task definition of a ``steps: managed`` profile and its grants.

Each accepted job step runs as one task of this task definition (started by the
runner's container hook, ``runner/managed_steps.py``): the profile's one
``step_image``, no volumes, a non-root user, its own task role
(``step_role_policies``) and secrets (``step_secrets``, as ECS secrets), and a
fixed entry point that maps the one allowed command override to a managed
command. The runner task's role gets exactly what the hook needs: run this
task definition in this cluster, tagged with its own session (``runner:step-owner``
= ``${aws:userid}``), pass its two roles, stop only the step tasks carrying that
tag, describe tasks of this cluster, read this log group (see :meth:`grant_runner`
and docs/managed-steps-iam.md). No ECS Exec: nothing grants ``ssmmessages:*`` and
the hook starts tasks with ``enableExecuteCommand: false``.
"""

from __future__ import annotations

import re

from aws_cdk import Annotations, ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambda_fn.contract import TAG_STEP_OWNER

from .config import RunnerProfile
from .nag import Acknowledgment, acknowledge, nag_flatten
from .props import runtime_platform
from .role_policies import add_operator_policies
from .runner_files import STEP_USER, step_entry_point, steps_environment

#: The step container's name in the step task definition (and in the hook's overrides).
STEP_CONTAINER = "step"
#: awslogs stream prefix: streams are ``step/step/<task id>``.
STEP_STREAM_PREFIX = "step"
ECS_TASKS = "ecs-tasks.amazonaws.com"
#: ``ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@sha256:...``: a private ECR image.
_ECR_IMAGE_RE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^@:]+)[@:]")


class ManagedSteps(Construct):
    """The step task definition, roles and log group of one managed-steps profile."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        profile: RunnerProfile,
        family: str,
        cluster: ecs.ICluster,
        cluster_task_arns: str,
        runner_role_id: str,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
        assign_public_ip: bool,
        log_retention: logs.RetentionDays,
        log_removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if not profile.managed_steps or profile.step_image is None:
            raise ValueError(f"profile {profile.name} has no managed steps")
        self.cluster = cluster
        #: Every task of the cluster (step task ids are unknown before RunTask).
        self._task_arns = cluster_task_arns
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=log_removal_policy
        )
        #: The step tasks' own group: they hold the deploy role and secrets, so a target
        #: admits them, and not the runner task (whose job code runs there) or any other.
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Managed step tasks of profile {profile.name}: egress only, "
            "no inbound access",
            allow_all_outbound=True,
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description=f"Managed steps of profile {profile.name}: the steps' own permissions",
        )
        add_operator_policies(
            self.task_role,
            profile.step_role_policies,
            f"profiles[{profile.name}].step_role_policies for the managed steps",
        )
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description=f"Managed steps of profile {profile.name}: ECS execution role",
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=family,
            cpu=profile.step_cpu,
            memory_limit_mib=profile.step_memory,
            runtime_platform=runtime_platform(profile.architecture),
            task_role=self.task_role,
            execution_role=self.execution_role,
        )
        container = self.task_definition.add_container(
            STEP_CONTAINER,
            container_name=STEP_CONTAINER,
            image=ecs.ContainerImage.from_registry(profile.step_image),
            # RunTask can override the command (the managed command's name), never this.
            entry_point=step_entry_point(profile.managed_commands),
            secrets={
                name: ecs.Secret.from_secrets_manager(
                    secretsmanager.Secret.from_secret_complete_arn(self, f"Secret-{name}", arn)
                )
                for name, arn in profile.step_secrets.items()
            },
            user=STEP_USER,
            essential=True,
            privileged=False,
            readonly_root_filesystem=False,
            cpu=profile.step_cpu,
            memory_limit_mib=profile.step_memory,
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=STEP_STREAM_PREFIX, log_group=self.log_group
            ),
        )
        if self._grant_image_pull(profile.step_image):
            # CDK warns that an ECR image needs pull permissions: granted just above.
            Annotations.of(container).acknowledge_warning(
                "@aws-cdk/aws-ecs:ecrImageRequiresPolicy",
                "the step execution role may pull the step image (_grant_image_pull)",
            )
        stack = Stack.of(self)
        self.runner_environment = steps_environment(
            stack.to_json_string(
                {
                    "profile": profile.name,
                    "image": profile.step_image,
                    "commands": list(profile.managed_commands),
                    "env": list(profile.step_env),
                    "cluster": cluster.cluster_name,
                    "task_definition": self.task_definition.task_definition_arn,
                    "container": STEP_CONTAINER,
                    "subnets": subnet_ids,
                    "security_groups": [self.security_group.security_group_id],
                    "assign_public_ip": assign_public_ip,
                    "log_group": self.log_group.log_group_name,
                    "log_stream_prefix": STEP_STREAM_PREFIX,
                    "region": stack.region,
                    # The hook tags each step task <runner_role_id>:<its own task id>,
                    # the aws:userid that grant_runner's conditions compare with.
                    "owner_tag": TAG_STEP_OWNER,
                    "owner_role_id": runner_role_id,
                }
            )
        )

    def _grant_image_pull(self, image: str) -> bool:
        """Let ECS pull a private ECR ``step_image`` (public registries need nothing).

        True when the image is in ECR and the pull permissions were granted.
        """
        match = _ECR_IMAGE_RE.match(image)
        if match is None:
            return False
        account, region, repository = match.groups()
        repository_arn = Stack.of(self).format_arn(
            service="ecr",
            region=region,
            account=account,
            resource="repository",
            resource_name=repository,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="PullStepImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                resources=[repository_arn],
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        acknowledge(
            self.execution_role,
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions.",
            ),
        )
        return True

    def grant_runner(self, runner_role: iam.Role) -> None:
        """What the runner task's hook needs to run, follow and stop its own step tasks.

        ECS names a task-role session after the task id, so ``${aws:userid}`` of the
        runner task is ``<runner role id>:<runner task id>`` (docs/jit-config.md: the
        same fact binds the JIT config). The hook tags every step task it starts
        ``runner:step-owner`` with exactly that value; RunTask (and the tagging that
        comes with it) is allowed only with that tag and no other, and StopTask only on
        a task whose tag equals the caller's own ``aws:userid``. ``ecs:TagResource`` is
        granted only as part of RunTask (``ecs:CreateAction``), so no existing task can
        be given the caller's tag. DescribeTasks stays on every task of the cluster:
        the ECS developer guide says Describe actions take no resource-level
        conditions, and StopTask deletes a task's tags, after which a tag condition
        could no longer let the hook read its stopped step's exit code
        (docs/managed-steps-iam.md).
        """
        stack = Stack.of(self)
        family_arn = stack.format_arn(
            service="ecs",
            resource="task-definition",
            resource_name=f"{self.task_definition.family}:*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        in_cluster = {"ecs:cluster": self.cluster.cluster_arn}
        requested_by_caller = {f"aws:RequestTag/{TAG_STEP_OWNER}": "${aws:userid}"}
        only_the_owner_tag = {"aws:TagKeys": [TAG_STEP_OWNER]}
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="RunOwnStepTasks",
                actions=["ecs:RunTask"],
                resources=[family_arn],
                conditions={
                    "ArnEquals": in_cluster,
                    "StringEquals": requested_by_caller,
                    "ForAllValues:StringEquals": only_the_owner_tag,
                },
            )
        )
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="TagOwnStepTasksAtLaunch",
                actions=["ecs:TagResource"],
                resources=[self._task_arns],
                conditions={
                    "StringEquals": {"ecs:CreateAction": "RunTask", **requested_by_caller},
                    "ForAllValues:StringEquals": only_the_owner_tag,
                },
            )
        )
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="StopOwnStepTasks",
                actions=["ecs:StopTask"],
                resources=[self._task_arns],
                conditions={
                    "ArnEquals": in_cluster,
                    "StringEquals": {f"aws:ResourceTag/{TAG_STEP_OWNER}": "${aws:userid}"},
                },
            )
        )
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="FollowStepTasks",
                actions=["ecs:DescribeTasks"],
                resources=[self._task_arns],
                conditions={"ArnEquals": in_cluster},
            )
        )
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="PassStepRoles",
                actions=["iam:PassRole"],
                resources=[self.task_role.role_arn, self.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": ECS_TASKS}},
            )
        )
        runner_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStepLogs",
                actions=["logs:GetLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        flat, resolve = nag_flatten, stack.resolve
        acknowledge(
            runner_role,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{flat(resolve(family_arn))}]",
                reason="RunTask on the step task definition family (':*' = its revisions), "
                "pinned to this cluster by ecs:cluster and to a runner:step-owner tag equal "
                "to the caller's own aws:userid.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{flat(resolve(self._task_arns))}]",
                reason="Step task ids are unknown before RunTask. StopTask and TagResource "
                "match only tasks tagged with the caller's own aws:userid (TagResource only "
                "within RunTask); DescribeTasks (read-only) is limited to this cluster.",
            ),
        )
