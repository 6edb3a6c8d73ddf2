"""The cluster and one fixed Fargate task definition per profile, with its roles.

One part of :class:`~fargate_runners.construct.FargateRunners`: :class:`RunnerTasks`
builds its resources in the construct's own scope (``runners``), so logical ids do not
depend on how the code is split.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    Annotations,
    ArnFormat,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambda_fn import admission_record
from lambda_fn.jit_secret import BOUND_TAG

from .config import (
    CONTAINER_NAME,
    RunnerProfile,
)
from .lambdas import LogGroups
from .nag import Acknowledgment, acknowledge, nag_flatten
from .names import InstanceNames
from .network import Network
from .props import (
    METRICS_NAMESPACE,
    RUNNER_USER,
    FargateRunnersProps,
    runtime_platform,
)
from .role_policies import add_operator_policies
from .runner_files import (
    RUNNER_EVENT_METRICS,
    STOP_TIMEOUT_SECONDS,
    bootstrap_command,
    runner_environment,
    runner_version_environment,
    shared_environment,
    write_env_file,
)
from .steps import ManagedSteps


class RunnerTasks:
    """The cluster and, per profile, its task definition, task role and execution role.

    Inputs: the network (VPC, subnets, each profile's groups) and the table a restricted
    profile's task reads its admission records from. Outputs: :attr:`cluster`,
    :attr:`task_arns`, :attr:`runner_log_group`, :attr:`task_definitions`,
    :attr:`task_roles`, :attr:`execution_roles` and :attr:`step_security_groups`.
    """

    def __init__(
        self,
        runners: Construct,
        props: FargateRunnersProps,
        *,
        names: InstanceNames,
        network: Network,
        admission_table: dynamodb.ITable,
    ) -> None:
        self.runners = runners
        self.props = props
        self.names = names
        self.network = network
        self.admission_table = admission_table
        self.log_groups = LogGroups.of(props)
        self.cluster = self._cluster()
        #: Every task of this cluster (task ids are unknown before launch).
        self.task_arns: str = Stack.of(runners).format_arn(
            service="ecs",
            resource="task",
            resource_name=f"{self.cluster.cluster_name}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.task_definitions: dict[str, ecs.FargateTaskDefinition] = {}
        self.task_roles: dict[str, iam.Role] = {}
        self.execution_roles: dict[str, iam.Role] = {}
        #: Each managed-steps profile's step-task group.
        self.step_security_groups: dict[str, ec2.SecurityGroup] = {}
        self._runner_tasks(props.profiles, props)

    def step_security_group(self, profile: str) -> ec2.ISecurityGroup:
        """The security group of a managed-steps ``profile``'s step tasks (the ones holding
        ``step_role_policies`` and ``step_secrets``)."""
        try:
            return self.step_security_groups[profile]
        except KeyError:
            raise KeyError(f"profile {profile!r} has no managed steps") from None

    def _cluster(self) -> ecs.Cluster:
        # Container Insights writes to /aws/ecs/containerinsights/<cluster>/performance and
        # would create that group itself, outside the stack and without expiry
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-reference-performance-logs-ECS.html).
        # A named cluster lets the stack create the group first, with retention and removal.
        # Its name is fixed, so it is deleted with the stack whatever ``log_removal_policy``
        # says: a retained group would make the next deploy of the same stack fail
        # (CloudFormation cannot create a log group whose name exists). What it holds is
        # the raw data of the Container Insights metrics, which CloudWatch keeps on its own.
        cluster_name = self.names.cluster_name
        insights_logs = logs.LogGroup(
            self.runners,
            "ContainerInsightsLogs",
            log_group_name=f"/aws/ecs/containerinsights/{cluster_name}/performance",
            retention=self.log_groups.retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        cluster = ecs.Cluster(
            self.runners,
            "Cluster",
            cluster_name=cluster_name,
            vpc=self.network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        cluster.node.add_dependency(insights_logs)
        return cluster

    def _runner_event_metrics(self) -> None:
        """Count the entrypoint's ``runner_event`` JSON lines (a self-update at job start, a
        runner version GitHub refused) as metrics per ``profile``: a task has no CloudWatch
        permission of its own, and a metric filter needs none
        (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/MonitoringPolicyExamples.html,
        dimensions from JSON fields:
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html)."""
        for event, metric in RUNNER_EVENT_METRICS.items():
            logs.MetricFilter(
                self.runners,
                f"RunnerEvent-{metric}",
                log_group=self.runner_log_group,
                metric_namespace=METRICS_NAMESPACE,
                metric_name=metric,
                filter_pattern=logs.FilterPattern.string_value("$.runner_event", "=", event),
                metric_value="1",
                dimensions={"profile": "$.profile"},
            )

    def _runner_files(self) -> s3_assets.Asset:
        """The runner's files, once per deployment: one ECS environment file (an S3 asset).

        Every task definition names it (``environmentFiles``); ECS downloads it with the
        task's execution role before the container starts (Fargate platform 1.4.0+;
        https://docs.aws.amazon.com/AmazonECS/latest/developerguide/use-environment-file.html)
        and the inline bootstrap checks its values against the digest it was built with
        (runner_files.py, docs/runner.md "How the task gets its files"). An asset creates
        no CloudFormation resource: the template holds only its bucket and key.
        """
        return s3_assets.Asset(
            self.runners, "RunnerFiles", path=str(write_env_file(shared_environment()))
        )

    def _read_runner_files(self, files: s3_assets.Asset, execution_role: iam.Role) -> None:
        """Let ECS read the one environment file object, nothing else in the bucket.

        What the ECS docs ask of the execution role for an environment file: ``s3:GetObject``
        on the object and ``s3:GetBucketLocation`` on its bucket
        (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html,
        "Amazon S3 file permissions"). CDK's ``EnvironmentFile`` grants nothing itself, and
        ``Asset.grant_read`` would grant ``s3:GetObject*``/``s3:List*`` on the whole assets
        bucket. No KMS grant: the bootstrap bucket's default key (AWS managed ``aws/s3``, or
        the one ``--bootstrap-customer-key`` creates) lets any principal of the account
        decrypt through S3 (docs/runner.md).
        """
        execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRunnerFiles",
                actions=["s3:GetObject"],
                resources=[files.bucket.arn_for_objects(files.s3_object_key)],
            )
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(
                sid="LocateRunnerFiles",
                actions=["s3:GetBucketLocation"],
                resources=[files.bucket.bucket_arn],
            )
        )

    def _runner_tasks(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        self.runner_log_group = self.log_groups.create(self.runners, "RunnerLogs")
        self._runner_event_metrics()
        #: The runner's files: one environment file (S3 asset) every task definition names.
        self.runner_files = self._runner_files()
        environment_file = ecs.EnvironmentFile.from_bucket(
            self.runner_files.bucket, self.runner_files.s3_object_key
        )
        command = bootstrap_command()
        for profile in profiles:
            scope = Construct(self.runners, f"Profile-{profile.name}")
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
                description=(
                    f"Runner profile {profile.name}: ECS execution role (logs, runner files)"
                ),
            )
            task_definition = ecs.FargateTaskDefinition(
                scope,
                "TaskDefinition",
                family=self.names.family(profile),
                cpu=profile.cpu,
                memory_limit_mib=profile.memory,
                ephemeral_storage_gib=profile.ephemeral_storage_gib,
                runtime_platform=runtime_platform(profile.architecture),
                task_role=task_role,
                execution_role=execution_role,
            )
            steps = (
                self._managed_steps(scope, profile, task_role) if profile.managed_steps else None
            )
            if steps is not None:
                self.step_security_groups[profile.name] = steps.security_group
                self.network.admit_to_endpoints(
                    steps.security_group, f"HTTPS from step tasks of profile {profile.name}"
                )
            container = task_definition.add_container(
                CONTAINER_NAME,
                container_name=CONTAINER_NAME,
                image=ecs.ContainerImage.from_registry(profile.effective_image),
                # The bootstrap checks the shared files and runs the entrypoint, which
                # installs the policy hook and idle watchdog, then runs run.sh.
                command=command,
                environment_files=[environment_file],
                environment={
                    **runner_environment(
                        profile.policy,
                        props.runner_idle_timeout_seconds,
                        (self.admission_table.table_name, Stack.of(self.runners).region)
                        if profile.policy.restricted
                        else None,
                    ),
                    **runner_version_environment(profile.name, profile.effective_runner_version),
                    **profile.environment,
                    **(steps.runner_environment if steps else {}),
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
            if profile.policy.restricted:
                self._own_admissions(task_role, profile.name)
            if steps:
                steps.grant_runner(task_role)
            add_operator_policies(
                task_role,
                profile.task_role_policies,
                f"profiles[{profile.name}].task_role_policies for jobs of this profile",
            )
            if self._registry_access(profile, execution_role):
                # CDK warns that an ECR image needs pull permissions: granted just above.
                Annotations.of(container).acknowledge_warning(
                    "@aws-cdk/aws-ecs:ecrImageRequiresPolicy",
                    "the execution role may pull the profile's ECR image (_registry_access)",
                )
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
                                "kms:ViaService": f"secretsmanager.{Stack.of(self.runners).region}"
                                ".amazonaws.com"
                            }
                        },
                    )
                )
            self._read_runner_files(self.runner_files, execution_role)
            acknowledge(
                task_definition,
                Acknowledgment(
                    id="AwsSolutions-ECS2",
                    reason=(
                        "The environment (inline and the shared environment file) holds only "
                        "non-secret values: the profile's policy, the runner's code and the "
                        "idle limit. Secrets reach the task through ECS secrets (Secrets "
                        "Manager), never as plain environment."
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
                resources=[self.names.sealed_configs_arn],
                conditions={
                    "StringEquals": {f"secretsmanager:ResourceTag/{BOUND_TAG}": "${aws:userid}"}
                },
            )
        )
        stack = Stack.of(self.runners)
        acknowledge(
            task_role,
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::"
                f"{nag_flatten(stack.resolve(self.names.sealed_configs_arn))}]",
                reason=(
                    "Secret names are per runner and unknown at deploy; the statement only "
                    "matches a secret whose runner:task-userid tag equals the caller's own "
                    "aws:userid (this task's session), so each task reads only its own."
                ),
            ),
        )

    def _own_admissions(self, task_role: iam.Role, profile: str) -> None:
        """Read (never write) the admission records of this profile, no other's.

        Dispatch writes ``admitted#<profile>#<repository>#<run>#<attempt>`` into the
        idempotency table when it admits a job for a restricted profile; the job-started
        hook refuses a job without one (docs/admission.md). ``dynamodb:LeadingKeys`` is
        the partition key of the request (Service Authorization Reference, Amazon
        DynamoDB condition keys; DynamoDB Developer Guide, "Using IAM policy conditions
        for fine-grained access control"); ``ForAllValues`` because it is multivalued.
        """
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadOwnProfileAdmissions",
                actions=["dynamodb:GetItem"],
                resources=[self.admission_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [f"{admission_record.key_prefix(profile)}*"]
                    }
                },
            )
        )

    def _managed_steps(
        self, scope: Construct, profile: RunnerProfile, runner_role: iam.Role
    ) -> ManagedSteps:
        """The step task definition of a ``steps: managed`` profile (fargate_runners/steps.py)."""
        return ManagedSteps(
            scope,
            "Steps",
            profile=profile,
            family=self.names.step_family(profile),
            cluster=self.cluster,
            cluster_task_arns=self.task_arns,
            runner_role_id=runner_role.role_id,
            vpc=self.network.vpc,
            subnet_ids=list(profile.subnet_ids or self.network.subnet_ids),
            assign_public_ip=(
                profile.assign_public_ip
                if profile.assign_public_ip is not None
                else self.network.assign_public_ip
            ),
            log_retention=self.log_groups.retention,
            log_removal_policy=self.log_groups.removal_policy,
        )

    def _registry_access(self, profile: RunnerProfile, execution_role: iam.Role) -> bool:
        """Let ECS pull the profile's image when it is in a private ECR registry.

        Under an ECR ``registry_prefix`` (a pull-through cache) any repository below the
        prefix, which the cache creates on first pull; otherwise, for an ECR ``image``, that
        one repository. True when ECR permissions were granted.
        """
        cached = bool(profile.registry_prefix)
        source = (profile.registry_prefix or "").rstrip("/") if cached else profile.image
        host, _, path = source.partition("/")
        parts = host.split(".")
        if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"]:
            return False  # not ECR: public registries need no permissions
        account, region = parts[0], parts[3]
        if cached:
            resource_name = f"{path}/*" if path else "*"
            actions = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
            reason = "Pulls any image under the profile's registry_prefix (pull-through cache)."
        else:
            resource_name = path.split("@", 1)[0].rsplit(":", 1)[0]  # the repository only
            actions = []
            reason = ""
        stack = Stack.of(self.runners)
        repositories = stack.format_arn(
            service="ecr",
            region=region,
            account=account,
            resource="repository",
            resource_name=resource_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    *actions,
                ],
                resources=[repositories],
            )
        )
        execution_role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        acknowledgments = [
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions.",
            )
        ]
        if cached:
            acknowledgments.append(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(repositories))}]",
                    reason=reason,
                )
            )
        acknowledge(execution_role, *acknowledgments)
        return True
