"""The instance record: one stack output per :class:`FargateRunners`, read by the CLI.

Why one JSON output per instance rather than the fixed output names the repository's
stack adds (``WebhookUrl``...): fixed names collide when a stack holds two instances, and
a construct must not take names from the stack it is put in. The record's output key
comes from the construct's path (CDK's logical id, unique per instance), its value says
which instance it is and what the CLI needs (``lambda_fn/contract.py``: every name is
owned there). Outputs cost nothing and need no extra permission to read
(``cloudformation:DescribeStacks``, which the CLI calls anyway); an SSM parameter per
instance would need a fixed name prefix (collisions again, across stacks) and one more
call and permission. CloudFormation allows 200 outputs per template
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import CfnOutput, CfnResource, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from lambda_fn import contract

from .config import RunnerProfile
from .config_errors import ConfigError
from .dispatch_state import DispatchState
from .runner_files import bootstrap_command, runner_environment

#: CloudFormation's limits on one stack's template (the S3-uploaded body) and resources.
TEMPLATE_LIMIT_BYTES = 1_000_000
RESOURCE_LIMIT = 500
#: Measured on synthesized instances of 1, 2, 15 and 50 profiles (compact JSON, the runner
#: files in the shared environment file): what does not grow with profiles, and what each
#: profile adds besides its inline command and environment (roles, policies, the
#: dispatchers' statements naming it, its alarm, security group, dashboard metrics).
#: docs/performance.md, "Profiles per deployment".
FIXED_TEMPLATE_BYTES = 66_000
PER_PROFILE_BYTES = 8_500
#: CDK writes templates indented by one space per level, and that file is what
#: CloudFormation measures: with short values the indentation weighs (measured: 50
#: profiles, 569 KB compact, 874 KB as written).
PRETTY_PRINT_FACTOR = 1.6

#: CDK appends 8 hex characters of the path's hash to a nested element's logical id.
_HASH_LENGTH = 8


def instance_name(runners: Construct) -> str:
    """The construct's path inside its stack: what ``--instance`` takes."""
    stack_path = Stack.of(runners).node.path
    return runners.node.path.removeprefix(stack_path).lstrip("/")


def add_instance_record(
    runners: Construct,
    *,
    webhook_url: str,
    state: DispatchState,
    cluster: ecs.ICluster,
    dashboard: cloudwatch.Dashboard,
) -> CfnOutput:
    """Add the record output of instance ``runners`` (after every resource it names exists)."""
    stack = Stack.of(runners)
    values = {
        contract.OUTPUT_WEBHOOK_URL: webhook_url,
        contract.OUTPUT_WEBHOOK_SECRET_ARN: state.webhook_secret.secret_arn,
        contract.OUTPUT_GITHUB_TOKEN_SECRET_ARN: state.github_token_secret.secret_arn,
        contract.OUTPUT_CLUSTER_NAME: cluster.cluster_name,
        contract.OUTPUT_RETRY_QUEUE_URL: state.retry_queue.queue_url,
        contract.OUTPUT_DEAD_LETTER_QUEUE_URL: state.dead_letter_queue.queue_url,
        contract.OUTPUT_HOOK_PARAMETER: state.hook_parameter.parameter_name,
        contract.OUTPUT_DASHBOARD_NAME: dashboard.dashboard_name,
    }
    output = CfnOutput(
        runners,
        contract.OUTPUT_INSTANCE_RECORD,
        value="",  # set below, once the logical id (and with it the prefix) is known
        description=(
            f"fargate-runners instance {instance_name(runners)}: what the fargate-runners "
            "CLI reads (--instance)"
        ),
    )
    logical_id: str = stack.resolve(stack.get_logical_id(output))
    suffix = len(contract.OUTPUT_INSTANCE_RECORD) + _HASH_LENGTH
    prefix = (
        logical_id[:-suffix]
        if logical_id[:-_HASH_LENGTH].endswith(contract.OUTPUT_INSTANCE_RECORD)
        else ""
    )
    output.value = stack.to_json_string(
        {
            contract.INSTANCE_RECORD_MARKER: contract.INSTANCE_RECORD_VERSION,
            contract.INSTANCE_RECORD_NAME: instance_name(runners),
            contract.INSTANCE_RECORD_PREFIX: prefix,
            **values,
        }
    )
    return output


def check_template_size(
    runners: Construct,
    profiles: Sequence[RunnerProfile],
    *,
    admission_table: dynamodb.ITable,
    idle_timeout_seconds: int,
) -> None:
    """Fail at synth, in one line, when CloudFormation would refuse the template.

    CloudFormation takes at most 500 resources and a 1 MB template from S3
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html).
    The runner files are in one environment file per deployment, so a profile costs
    about 7 resources and 15 KB of template: the resource count (exact, counted
    here) binds first, at about 56 profiles; the size is an estimate (each profile's
    inline command and environment plus measured parts, times the pretty-printing).
    """
    stack = Stack.of(runners)
    command = json.dumps(bootstrap_command())
    size = FIXED_TEMPLATE_BYTES
    for profile in profiles:
        # As runner_tasks.py builds it: a restricted profile also names the admission table.
        admission = (
            (admission_table.table_name, stack.region) if profile.policy.restricted else None
        )
        environment = runner_environment(profile.policy, idle_timeout_seconds, admission)
        # ... and what the operator adds to it (environment, secrets, task role).
        extra = json.dumps([profile.environment, profile.secrets, profile.task_role_policies])
        size += len(command) + len(json.dumps(environment)) + len(extra) + PER_PROFILE_BYTES
    size = int(size * PRETTY_PRINT_FACTOR)
    resources = sum(isinstance(c, CfnResource) for c in stack.node.find_all())
    count = len(profiles)
    over = []
    if resources > RESOURCE_LIMIT:
        over.append(
            f"{resources} resources in stack {stack.stack_name}, over CloudFormation's "
            f"{RESOURCE_LIMIT}"
        )
    if size > TEMPLATE_LIMIT_BYTES:
        over.append(
            f"a template of about {size // 1000} KB (about {size // count // 1000} KB "
            f"per profile), over CloudFormation's {TEMPLATE_LIMIT_BYTES // 1000} KB"
        )
    if over:
        raise ConfigError(
            "profiles",
            f"{count} profiles make {' and '.join(over)}; split the profiles over "
            "FargateRunners instances in two stacks",
        )
