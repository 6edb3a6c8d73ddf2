"""The dispatcher: the profiles' parameters, the webhook, retry, reconciler and teardown
Lambdas and their least-privilege IAM.

One part of :class:`~fargate_runners.construct.FargateRunners`: :class:`Dispatcher` builds
its resources in the construct's own scope (``runners``), so logical ids do not depend on
how the code is split. What it reads and writes (secrets, table, queues, the recorded
hook) is :class:`~fargate_runners.dispatch_state.DispatchState`'s.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from aws_cdk import (
    ArnFormat,
    CustomResource,
    Duration,
    Fn,
    Stack,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from lambda_fn.contract import lambda_environment
from lambda_fn.jit_secret import BOUND_TAG, TASK_TAG
from lambda_fn.profile_store import PARAMETER_VALUE_LIMIT, chunk_entries, compact_size

from .alarms import (
    no_async_retries,
    scheduled_function_acknowledgments,
    scheduled_rule_acknowledgment,
)
from .bundling import lambda_code
from .config import (
    CONTAINER_NAME,
    RunnerProfile,
    lambda_allowed_repositories,
)
from .config_errors import ConfigError
from .dispatch_state import DispatchState
from .env_size import check_environment_size
from .lambdas import LambdaFactory, LogGroups
from .nag import Acknowledgment, acknowledge, nag_flatten
from .names import InstanceNames
from .network import Network
from .props import (
    _SAMPLE_ROLE_ID,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    METRICS_NAMESPACE,
    RETRY_FUNCTION_TIMEOUT_SECONDS,
    TEARDOWN_TIMEOUT_SECONDS,
    FargateRunnersProps,
    lambda_profile_entry,
)
from .runner_tasks import RunnerTasks
from .tracing import TRACING_ENVIRONMENT, DetailedTracing

#: Head-room under a parameter's 4,096 characters for what the token samples cannot know.
PARAMETER_MARGIN = 96


class Dispatcher:
    """The webhook, retry, reconciler and teardown Lambdas, the profiles they read, their IAM.

    Inputs: the network, the runner tasks it launches and the state it keeps. Outputs:
    the functions and roles, :attr:`lambda_environment` (the one environment the
    dispatching Lambdas share) and :attr:`environment_samples` (worst-case samples of its
    tokens' values, ``env_size.check_environment_size``), :attr:`profile_parameters`,
    :attr:`lambdas` (the factory the webhook API's functions come from) and the grants
    other parts' functions need (:meth:`grant_profile_parameters`).
    """

    def __init__(
        self,
        runners: Construct,
        props: FargateRunnersProps,
        *,
        names: InstanceNames,
        network: Network,
        tasks: RunnerTasks,
        state: DispatchState,
    ) -> None:
        self.runners = runners
        self.names = names
        self.network = network
        self.tasks = tasks
        self.state = state
        self._functions(props.profiles, props)
        for role in (self.webhook_role, self.retry_role, self.reconciler_role):
            self._grant_dispatch(role)
            self.grant_profile_parameters(role)
            if state.github_app is not None:
                state.github_app.grant_sign(role)
        state.grant_hook_parameter(self.reconciler_role)
        state.grant_job_records(self.reconciler_role)
        # The teardown loads the same settings (profiles included).
        self.grant_profile_parameters(self.teardown_role)

    @property
    def settings_environment(self) -> dict[str, str]:
        """The dispatcher's environment for a function that reads the settings
        (``lambda_fn.config.get_settings``) but never queues a job: no retry path, so it
        does not depend on the queues, and no detailed tracing (it launches nothing)."""
        return {
            key: value
            for key, value in self.lambda_environment.items()
            if key not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", *TRACING_ENVIRONMENT)
        }

    def runner_profiles_json(self, profiles: Sequence[RunnerProfile]) -> str:
        """The profiles as one JSON string with ARN tokens (what the parameters hold together)."""
        return Stack.of(self.runners).to_json_string(self._profile_entries(profiles))

    def _profile_entries(self, profiles: Sequence[RunnerProfile]) -> list[dict[str, Any]]:
        return [
            lambda_profile_entry(
                p,
                self.tasks.task_definitions[p.name],
                self.tasks.task_roles[p.name],
                self.network.profile_security_groups[p.name],
            )
            for p in profiles
        ]

    def _profile_parameters(self, profiles: Sequence[RunnerProfile]) -> list[ssm.StringParameter]:
        """Store the profiles in SSM parameters (and set ``profiles_version``).

        Profiles go, in match order, into as few standard-tier parameters as hold them
        (each value at most 4,096 characters, sized with worst-case samples of the ARN
        and role id tokens), so their number is not bound by the 4 KB Lambda environment
        (``lambda_fn/profile_store.py`` explains the read side and the fingerprint).
        """
        stack = Stack.of(self.runners)
        entries = self._profile_entries(profiles)
        samples = {str(e["name"]): e for e in self.sample_entries(profiles)}
        try:
            groups = chunk_entries(
                [samples[str(e["name"])] for e in entries],
                compact_size,
                PARAMETER_VALUE_LIMIT - PARAMETER_MARGIN,
            )
        except ValueError as exc:
            raise ConfigError("profiles", str(exc).split(": ", 1)[-1]) from None
        self.profile_parameters: list[ssm.StringParameter] = []
        start = 0
        for index, group in enumerate(groups):
            chunk = entries[start : start + len(group)]
            start += len(group)
            self.profile_parameters.append(
                ssm.StringParameter(
                    self.runners,
                    f"RunnerProfiles{index}",
                    description=(
                        f"Runner profiles {start - len(group) + 1}-{start} of {len(entries)} "
                        "(JSON, match order) read by the webhook Lambdas; written by the stack"
                    ),
                    string_value=stack.to_json_string(chunk),
                    tier=ssm.ParameterTier.STANDARD,
                )
            )
        # What changes whenever a profile does: the synth-time parts (labels, policy, and
        # the references to task definitions and roles) hashed, and each task definition's
        # revision (a new revision on every change of it or of what it references).
        digest = hashlib.sha256(
            json.dumps(stack.resolve(entries), sort_keys=True).encode()
        ).hexdigest()[:16]
        revisions = Fn.join(
            ".",
            [
                Fn.select(6, Fn.split(":", self.tasks.task_definitions[p.name].task_definition_arn))
                for p in profiles
            ],
        )
        self.profiles_version = Fn.join("-", [digest, revisions])
        return self.profile_parameters

    def grant_profile_parameters(self, role: iam.Role) -> None:
        """Read the profiles' parameters (every function that loads the settings)."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRunnerProfiles",
                actions=["ssm:GetParameters"],
                resources=[p.parameter_arn for p in self.profile_parameters],
            )
        )

    def _functions(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        """The dispatching Lambdas (webhook, retry, reconciler) share one asset and one
        environment, each with its own role; the teardown, the source-range refresh and the
        hook filter reuse the asset (:attr:`lambdas`, ``webhook_api.py``)."""
        code = lambda_code(
            props.lambda_source_dir, runtime=LAMBDA_RUNTIME, architecture=LAMBDA_ARCHITECTURE
        )
        layers: list[lambda_.ILayerVersion] = []
        if props.detailed_tracing:
            tracing = DetailedTracing(
                self.runners,
                "DetailedTracing",
                runtime=LAMBDA_RUNTIME,
                architecture=LAMBDA_ARCHITECTURE,
            )
            layers.append(tracing.layer)
        #: Creates the construct's functions: one asset, the tracing layer, the log settings.
        self.lambdas = LambdaFactory(
            self.runners, code=code, layers=layers, log_groups=LogGroups.of(props)
        )
        state, network = self.state, self.network
        profile_parameters = self._profile_parameters(profiles)
        environment = lambda_environment(
            webhook_secret_arn=state.webhook_secret.secret_arn,
            github_token_secret_arn=state.github_token_secret.secret_arn,
            github_api_url=props.github_api_url,
            ecs_cluster=self.tasks.cluster.cluster_name,
            subnet_ids=network.subnet_ids,
            security_group_ids=[network.security_group.security_group_id],
            assign_public_ip=network.assign_public_ip,
            profiles_parameters=[p.parameter_name for p in profile_parameters],
            profiles_version=self.profiles_version,
            runner_scope=props.runner_scope,
            runner_group_id=props.runner_group_id,
            allowed_repositories=lambda_allowed_repositories(props.allowed_repositories),
            idempotency_table=state.idempotency_table.table_name,
            retry_queue_url=state.retry_queue.queue_url,
            dead_letter_queue_url=state.dead_letter_queue.queue_url,
            retry_max_attempts=props.retry_max_attempts,
            runner_name_prefix=self.names.runner_name_prefix,
            deployment_id=self.names.deployment_id,
            task_idle_timeout_seconds=props.runner_idle_timeout_seconds,
            github_hook_path=props.github_hook_path or "",
            jit_secret_prefix=self.names.jit_secret_prefix,
            github_hook_parameter=state.hook_parameter.parameter_name,
            service_name=self.names.service_name,
            metrics_namespace=METRICS_NAMESPACE,
            extra={
                **(TRACING_ENVIRONMENT if props.detailed_tracing else {}),
                **(state.github_app.environment() if state.github_app else {}),
            },
        )
        #: What the dispatching Lambdas get, and realistic samples of its tokens' values.
        self.lambda_environment: dict[str, str] = environment
        self.environment_samples = self._environment_samples(profiles)
        check_environment_size(environment, self.environment_samples)
        self.webhook_function, self.webhook_role = self.lambdas.create(
            "WebhookFunction",
            handler="lambda_fn.app.handler",
            description="GitHub workflow_job webhook: starts one JIT runner task per queued job",
            environment=environment,
            timeout=28,
        )
        self.retry_function, self.retry_role = self.lambdas.create(
            "RetryFunction",
            handler="lambda_fn.retry.handler",
            description="Retries launches that failed transiently (SQS retry queue consumer)",
            environment=environment,
            timeout=RETRY_FUNCTION_TIMEOUT_SECONDS,
        )
        self.retry_function.add_event_source(
            event_sources.SqsEventSource(
                state.retry_queue,
                batch_size=5,
                report_batch_item_failures=True,
                max_concurrency=5,
            )
        )
        self.reconciler_function, self.reconciler_role = self.lambdas.create(
            "ReconcilerFunction",
            handler="lambda_fn.reconciler.handler",
            description="Stops idle runners, replaces dead ones, removes stale registrations",
            environment=environment,
            timeout=120,
        )
        self._teardown()
        self.reconcile_rule = events.Rule(
            self.runners,
            "ReconcileSchedule",
            description="Runs the runner reconciler",
            schedule=events.Schedule.rate(props.reconcile_period),
            targets=[targets.LambdaFunction(self.reconciler_function, retry_attempts=0)],
        )
        no_async_retries(self.reconciler_function, props.reconcile_period)
        acknowledge(self.reconciler_function, *scheduled_function_acknowledgments("reconciler"))
        acknowledge(self.reconcile_rule, scheduled_rule_acknowledgment())
        acknowledge(
            self.webhook_function,
            Acknowledgment(
                id="Serverless-LambdaDLQ",
                reason=(
                    "Invoked synchronously by API Gateway only (a DLQ applies to asynchronous "
                    "invocations): a failed delivery is answered 5xx, GitHub records it and "
                    "the reconciler redelivers it; jobs that cannot be launched are parked "
                    "in the dead-letter queue by the function itself."
                ),
            ),
        )
        acknowledge(
            self.retry_function,
            Acknowledgment(
                id="Serverless-LambdaDLQ",
                reason=(
                    "Invoked by its SQS event source mapping only (synchronously; a function "
                    "DLQ applies to asynchronous invocations)."
                ),
            ),
            Acknowledgment(
                id="Serverless-LambdaEventSourceMappingDestination",
                reason=(
                    "A failed record goes back to the retry queue, whose redrive policy moves "
                    "it to the dead-letter queue (with its alarm) after 5 receives; the "
                    "consumer parks jobs it gives up on there itself, with the reason."
                ),
            ),
        )

    def _teardown(self) -> None:
        """A delete step that stops this stack's runner tasks, then deletes the sealed JIT
        configs and this deployment's runner registrations (``lambda_fn/teardown.py``).

        CloudFormation deletes a resource before what it depends on and after what
        depends on it: the Lambdas that start tasks depend on this resource (gone
        first), and this resource depends on the cluster, the security groups and the
        VPC (which stay until it has stopped every task). Its function has the
        dispatcher's settings (so it depends on the token secret or the App's key,
        which outlive it) and may list and delete secrets under the JIT prefix and
        read the token, nothing more.
        """
        self.teardown_function, self.teardown_role = self.lambdas.create(
            "TeardownFunction",
            handler="lambda_fn.teardown.handler",
            description=(
                "On stack delete: stops the runner tasks before the cluster and VPC go, "
                "deletes sealed JIT configs and this deployment's runner registrations"
            ),
            environment=self.settings_environment,
            timeout=TEARDOWN_TIMEOUT_SECONDS,
        )
        self._grant_task_control(self.teardown_role)
        stack = Stack.of(self.runners)
        sealed_configs = self.names.sealed_configs_arn
        self.teardown_role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteJitConfigs",
                actions=["secretsmanager:DeleteSecret"],
                resources=[sealed_configs],
            )
        )
        self.teardown_role.add_to_policy(
            iam.PolicyStatement(
                sid="ListJitConfigs",
                actions=["secretsmanager:ListSecrets"],
                resources=["*"],
            )
        )
        self.state.grant_github_token(self.teardown_role)
        acknowledge(
            self.teardown_role,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(sealed_configs))}]",
                reason=(
                    "On stack delete, every per-runner JIT config secret left under this "
                    "deployment's name prefix is deleted; the names are not known before."
                ),
            ),
        )
        acknowledge(
            self.teardown_function,
            Acknowledgment(
                id="Serverless-LambdaDLQ",
                reason=(
                    "Invoked by CloudFormation for the teardown custom resource only; it "
                    "answers CloudFormation in every case (FAILED with the reason), and a "
                    "lost answer is bounded by the resource's service timeout. A queued "
                    "copy of a delete request could not be answered later."
                ),
            ),
        )
        self.teardown = CustomResource(
            self.runners,
            "RunnerTeardown",
            service_token=self.teardown_function.function_arn,
            resource_type="Custom::RunnerTeardown",
            properties={"Cluster": self.tasks.cluster.cluster_name},
            # Bounds CloudFormation's wait if an answer is ever lost (default: an hour).
            service_timeout=Duration.seconds(TEARDOWN_TIMEOUT_SECONDS + 60),
        )
        self.teardown.node.add_dependency(
            self.tasks.cluster,
            *self.network.created_security_groups,
            *self.tasks.step_security_groups.values(),
            self.teardown_role,
        )
        if isinstance(self.network.vpc, ec2.Vpc):
            self.teardown.node.add_dependency(self.network.vpc)
        for function in (self.webhook_function, self.retry_function, self.reconciler_function):
            function.node.add_dependency(self.teardown)

    def _environment_samples(self, profiles: Sequence[RunnerProfile]) -> dict[str, str]:
        """Worst-case samples of what the environment's tokens resolve to at deploy.

        Longest region names are 14 characters (``ap-southeast-2``); CloudFormation
        names what it generates ``<stack>-<logical id><8 hex>-<12-13 random>``.
        """
        region, account = "ap-southeast-2", "123456789012"

        def generated(logical_id: str) -> str:
            return f"{self.names.name_prefix}-Runners{logical_id}{'A' * 8}-{'B' * 13}"

        def secret(logical_id: str) -> str:
            name = f"Runners{logical_id}{'A' * 8}-{'B' * 12}-XXXXXX"
            return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"

        def queue(logical_id: str) -> str:
            return f"https://sqs.{region}.amazonaws.com/{account}/{generated(logical_id)}"

        def parameter(index: int) -> str:
            # CloudFormation names a parameter CFN-<logical id>-<random>.
            return f"CFN-RunnersRunnerProfiles{index}{'A' * 8}-{'B' * 12}"

        return {
            "WEBHOOK_SECRET_ARN": secret("WebhookSecret"),
            "GITHUB_TOKEN_SECRET_ARN": secret("GitHubTokenSecret"),
            "ECS_CLUSTER": self.names.cluster_name,
            "SUBNET_IDS": ",".join(f"subnet-{'0' * 17}" for _ in self.network.subnet_ids),
            "SECURITY_GROUP_IDS": f"sg-{'0' * 17}",
            "RUNNER_PROFILES_PARAMETERS": ",".join(
                parameter(i) for i in range(len(self.profile_parameters))
            ),
            "RUNNER_PROFILES_VERSION": "0" * 16 + "-" + ".".join("9999" for _ in profiles),
            "IDEMPOTENCY_TABLE": generated("IdempotencyTable"),
            "RETRY_QUEUE_URL": queue("RetryQueue"),
            "DEAD_LETTER_QUEUE_URL": queue("DeadLetterQueue"),
            "DEPLOYMENT_ID": "0" * 8,
            # CloudFormation names a parameter CFN-<logical id>-<random>.
            "GITHUB_HOOK_PARAMETER": f"CFN-RunnersWebhookHookParameter{'A' * 8}-{'B' * 12}",
            "GITHUB_APP_KEY_ARN": f"arn:aws:kms:{region}:{account}:key/{uuid.UUID(int=0)}",
        }

    def sample_entries(self, profiles: Sequence[RunnerProfile]) -> list[dict[str, Any]]:
        """Each profile's entry with worst-case samples for its tokens (sizes only)."""
        region, account = "ap-southeast-2", "123456789012"
        sample_arn = "arn:aws:ecs:{}:{}:task-definition/{}:9999"
        return [
            p.lambda_entry(
                sample_arn.format(region, account, self.names.family(p)),
                CONTAINER_NAME,
                _SAMPLE_ROLE_ID,
                [f"sg-{'0' * 17}"] * len(self.network.profile_security_groups[p.name]),
            )
            for p in profiles
        ]

    # -- least-privilege IAM for the webhook -----------------------------------

    def _grant_dispatch(self, role: iam.Role) -> None:
        """What launching, retrying and cleaning up need, and nothing more."""
        stack = Stack.of(self.runners)
        run_task_resources = [
            stack.format_arn(
                service="ecs",
                resource="task-definition",
                resource_name=f"{task_definition.family}:*",
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for task_definition in self.tasks.task_definitions.values()
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RunRunnerTasks",
                actions=["ecs:RunTask"],
                resources=run_task_resources,
                conditions={"ArnEquals": {"ecs:cluster": self.tasks.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TagRunnerTasksAtLaunch",
                actions=["ecs:TagResource"],
                resources=[self.tasks.task_arns],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        pass_roles = [r.role_arn for r in self.tasks.task_roles.values()] + [
            r.role_arn for r in self.tasks.execution_roles.values()
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassRunnerTaskRoles",
                actions=["iam:PassRole"],
                resources=pass_roles,
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWebhookSecrets",
                actions=["secretsmanager:GetSecretValue"],
                # With a GitHub App the PAT secret stays empty and unreadable.
                resources=[self.state.webhook_secret.secret_arn]
                + ([] if self.state.github_app else [self.state.github_token_secret.secret_arn]),
            )
        )
        self._grant_task_control(role)
        sealed_configs = self.names.sealed_configs_arn
        our_tag_keys = {"ForAllValues:StringEquals": {"aws:TagKeys": [BOUND_TAG, TASK_TAG]}}
        role.add_to_policy(
            iam.PolicyStatement(
                # Only with both tags (the binding, the task) and no other key: an empty
                # tag set passes ForAllValues, hence the Null checks.
                sid="SealJitConfigs",
                actions=["secretsmanager:CreateSecret"],
                resources=[sealed_configs],
                conditions={
                    **our_tag_keys,
                    "Null": {
                        f"aws:RequestTag/{BOUND_TAG}": "false",
                        f"aws:RequestTag/{TASK_TAG}": "false",
                    },
                },
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # CreateSecret with Tags also checks TagResource. Only on a secret that has
                # no binding tag yet, i.e. the one being created: never re-tag a pending
                # config (its resource policy denies TagResource too, docs/jit-config.md).
                sid="TagJitConfigsAtCreation",
                actions=["secretsmanager:TagResource"],
                resources=[sealed_configs],
                conditions={
                    **our_tag_keys,
                    "Null": {f"secretsmanager:ResourceTag/{BOUND_TAG}": "true"},
                },
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # jit_secret.seal: the resource policy (deny every reader but the bound
                # task), then the config. Its FixedAtCreation denies a second policy.
                sid="LockAndFillJitConfigs",
                actions=["secretsmanager:PutResourcePolicy", "secretsmanager:PutSecretValue"],
                resources=[sealed_configs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteJitConfigs",
                actions=["secretsmanager:DeleteSecret"],
                resources=[sealed_configs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListJitConfigs",
                actions=["secretsmanager:ListSecrets"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="QueueJobs",
                actions=["sqs:SendMessage"],
                resources=[
                    self.state.retry_queue.queue_arn,
                    self.state.dead_letter_queue.queue_arn,
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="IdempotencyRecords",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                resources=[self.state.idempotency_table.table_arn],
            )
        )

        acks = [
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(arn))}]",
                reason=(
                    "RunTask is limited to this profile's task definition family; the ':*' "
                    "matches its revisions, which change on every deploy. The cluster is "
                    "pinned by an ecs:cluster condition."
                ),
            )
            for arn in run_task_resources
        ]
        acks.append(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_flatten(stack.resolve(sealed_configs))}]",
                reason=(
                    "Per-runner JIT config secrets are named when a job is launched; create "
                    "(with only the two binding tags) and delete are limited to this "
                    "deployment's name prefix. The Lambda never reads them."
                ),
            )
        )
        acknowledge(role, *acks)

    def _grant_task_control(self, role: iam.Role) -> None:
        """List, inspect and stop the tasks of this cluster, and nothing else."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InspectAndStopRunnerTasks",
                actions=["ecs:DescribeTasks", "ecs:StopTask"],
                resources=[self.tasks.task_arns],
                conditions={"ArnEquals": {"ecs:cluster": self.tasks.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRunnerTasks",
                actions=["ecs:ListTasks"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": self.tasks.cluster.cluster_arn}},
            )
        )
        task_arns = nag_flatten(Stack.of(self.runners).resolve(self.tasks.task_arns))
        acknowledge(
            role,
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{task_arns}]",
                reason=(
                    "Task ids are unknown before launch; every grant on tasks is limited to "
                    "tasks of this cluster (ecs:TagResource also to RunTask, by the "
                    "ecs:CreateAction condition)."
                ),
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "'*' is used only by the X-Ray statement added by active tracing (X-Ray has "
                    "no resource-level permissions), by ecs:ListTasks, which is pinned to "
                    "this cluster by an ecs:cluster condition, and, for the dispatch and "
                    "teardown roles, by secretsmanager:ListSecrets (no resource-level "
                    "permissions; returns names and tags, never values)."
                ),
            ),
        )
