"""Create in an AWS endpoint (a moto server) what ``cdk deploy`` would create.

The shapes follow ``fargate_runners/construct.py``: two secrets, a VPC with DNS hostnames,
a subnet and security group, an ECS cluster, one Fargate task definition per
profile (family ``<stack_name>-runner-<profile>``, container ``runner``), the
DynamoDB idempotency table, the retry queue with its dead-letter queue and the
SSM parameter where ``fargate-runners setup`` records the webhook.
:attr:`LocalStack.env` is then the handler's environment, built by the construct's own
builder (``lambda_fn.contract.lambda_environment``), plus what points boto3 at the
endpoint; the profiles are in SSM parameters, as the construct stores them
(``localdev/profiles.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambda_fn.config import HOOK_NOT_RECORDED
from lambda_fn.naming import runner_name_prefix_from

if TYPE_CHECKING:
    from fargate_runners.config import RunnersConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_PAT = "ghp_localdemo" + "0" * 27  # a fake PAT: the stand-in only checks that one is sent
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "localdev",
    "AWS_SECRET_ACCESS_KEY": "localdev",
    "AWS_SESSION_TOKEN": "localdev",
}


def load_runners_config(context: Mapping[str, Any]) -> RunnersConfig:
    """The same validated configuration ``cdk synth`` builds from ``cdk.json``."""
    from fargate_runners.config import load_config

    return load_config(context)


def read_cdk_context(path: str | Path = REPO_ROOT / "cdk.json") -> dict[str, Any]:
    """The ``context`` object of a ``cdk.json`` file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{path}: 'context' is not an object")
    return context


@dataclass(frozen=True)
class LocalStack:
    """What :func:`provision` created, and the handler environment that uses it."""

    endpoint_url: str | None
    region: str
    config: RunnersConfig
    cluster: str
    task_definitions: dict[str, str]
    #: profile -> the task role's unique id (``RoleId``)
    task_role_ids: dict[str, str]
    vpc_id: str
    subnet_id: str
    security_group_id: str
    table: str
    webhook_secret_arn: str
    token_secret_arn: str
    webhook_secret: str = field(repr=False)
    retry_queue_url: str
    dead_letter_queue_url: str
    hook_parameter: str
    env: dict[str, str] = field(repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client for this endpoint (fake credentials)."""
        return make_client(service, self.endpoint_url, self.region)

    def with_github(self, github_api_url: str) -> dict[str, str]:
        """:attr:`env` with another ``GITHUB_API_URL`` (e.g. a stand-in started later)."""
        return {**self.env, "GITHUB_API_URL": github_api_url.rstrip("/")}

    def tasks(self) -> list[dict[str, Any]]:
        """Every task in the cluster (any status), with tags."""
        ecs = self.client("ecs")
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            for page in ecs.get_paginator("list_tasks").paginate(
                cluster=self.cluster, desiredStatus=status
            ):
                arns.extend(page.get("taskArns", []))
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            tasks.extend(
                ecs.describe_tasks(
                    cluster=self.cluster, tasks=arns[start : start + 100], include=["TAGS"]
                )["tasks"]
            )
        return tasks


_client_lock = threading.Lock()


def make_client(service: str, endpoint_url: str | None, region: str) -> Any:
    """A boto3 client with fake credentials for a local endpoint (cached, thread-safe)."""
    with _client_lock:  # boto3 sessions are not safe to create clients from concurrently
        return _cached_client(service, endpoint_url, region)


@functools.lru_cache(maxsize=64)
def _cached_client(service: str, endpoint_url: str | None, region: str) -> Any:
    return _session(region).client(service, endpoint_url=endpoint_url)


@functools.lru_cache(maxsize=8)
def _session(region: str) -> Any:
    """One session per region: a session loads each service model once."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )


def provision(
    endpoint_url: str | None,
    context: Mapping[str, Any],
    region: str = "us-east-1",
    *,
    github_api_url: str | None = None,
    webhook_secret: str | None = None,
    pat: str = DEMO_PAT,
) -> LocalStack:
    """Create the stack's resources at ``endpoint_url`` from ``cdk.json``-style ``context``.

    ``endpoint_url=None`` targets AWS's own endpoints: for an in-process
    ``moto.mock_aws`` (tests, benchmarks), never a real account.

    ``github_api_url`` defaults to the context's ``github_api_url``; pass the
    stand-in's URL (or use :meth:`LocalStack.with_github`) for offline use.
    """
    config = load_runners_config(context)  # also makes ``cdk`` importable from a checkout
    for profile in config.profiles:
        if profile.managed_steps:
            # Not modelled here: a runner task without its step task definition would
            # run the job's steps itself, which a managed-steps profile must never do.
            raise ValueError(
                f"profile {profile.name}: managed steps (steps: managed) are not supported "
                "by the local mode"
            )
    from fargate_runners.config import CONTAINER_NAME, lambda_allowed_repositories
    from fargate_runners.runner_files import (
        ENV_FILE_NAME,
        bootstrap_command,
        env_file_text,
        runner_environment,
        shared_environment,
    )

    prefix = config.stack_name
    # Every moto server in a process shares one set of backends (so does ``mock_aws``): a
    # suffix keeps repeated provisioning apart, as CDK's generated physical names do.
    # Task definition families keep the stack's naming: re-registering adds a revision.
    unique = f"{prefix}-{secrets.token_hex(3)}"
    webhook_secret = webhook_secret or secrets.token_hex(20)

    def client(service: str) -> Any:
        return make_client(service, endpoint_url, region)

    sm = client("secretsmanager")
    webhook_secret_arn = sm.create_secret(
        Name=f"{unique}/webhook-secret", SecretString=webhook_secret
    )["ARN"]
    token_secret_arn = sm.create_secret(Name=f"{unique}/github-token", SecretString=pat)["ARN"]

    ec2 = client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's run_task (awsvpc) needs DNS hostnames, as a real VPC for Fargate tasks does.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    security_group_id = ec2.create_security_group(
        GroupName=f"{unique}-runners", Description="runner tasks (egress only)", VpcId=vpc_id
    )["GroupId"]

    # The runner's files, once for every profile: an environment file in S3, as the
    # construct's asset (docs/runner.md, "How the task gets its files").
    s3 = client("s3")
    files_bucket = f"{unique}-assets".lower()
    if region == "us-east-1":
        s3.create_bucket(Bucket=files_bucket)
    else:
        s3.create_bucket(
            Bucket=files_bucket, CreateBucketConfiguration={"LocationConstraint": region}
        )
    files_text = env_file_text(shared_environment())
    files_key = f"{hashlib.sha256(files_text.encode()).hexdigest()}-{ENV_FILE_NAME}"
    s3.put_object(Bucket=files_bucket, Key=files_key, Body=files_text.encode())
    files_arn = f"arn:aws:s3:::{files_bucket}/{files_key}"

    ecs = client("ecs")
    cluster = ecs.create_cluster(
        clusterName=f"{unique}-cluster",
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        settings=[{"name": "containerInsights", "value": "enabled"}],
    )["cluster"]["clusterName"]
    # Named before the task definitions: a restricted profile's runners read their
    # admission records there (RUNNER_ADMISSION_TABLE; docs/admission.md).
    table = f"{unique}-idempotency"
    iam = client("iam")
    task_definitions: dict[str, str] = {}
    task_role_ids: dict[str, str] = {}
    for profile in config.profiles:
        # The task role: its unique id binds each JIT config to one task's session.
        task_role = iam.create_role(
            RoleName=f"{unique}-{profile.name}-task"[:64],
            AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST_POLICY),
        )["Role"]
        task_role_ids[profile.name] = task_role["RoleId"]
        task_definitions[profile.name] = ecs.register_task_definition(
            family=f"{prefix}-runner-{profile.name}",
            taskRoleArn=task_role["Arn"],
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu=str(profile.cpu),
            memory=str(profile.memory),
            runtimePlatform={
                "operatingSystemFamily": "LINUX",
                "cpuArchitecture": profile.architecture,
            },
            ephemeralStorage={"sizeInGiB": profile.ephemeral_storage_gib},
            containerDefinitions=[
                {
                    "name": CONTAINER_NAME,
                    "image": profile.image,
                    # The same bootstrap, files and policy as the deployed task definition.
                    "command": bootstrap_command(),
                    "environmentFiles": [{"type": "s3", "value": files_arn}],
                    "environment": [
                        {"name": name, "value": value}
                        for name, value in runner_environment(
                            profile.policy,
                            config.runner_idle_timeout_seconds,
                            (table, region) if profile.policy.restricted else None,
                        ).items()
                    ],
                    "user": "1001",
                    "essential": True,
                    # Container-level limits: moto's run_task needs them (so does the construct).
                    "cpu": profile.cpu,
                    "memory": profile.memory,
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]

    client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{unique}-retry-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    retry_url = sqs.create_queue(
        QueueName=f"{unique}-retry",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]

    hook_parameter = f"/{unique}/github-webhook"
    client("ssm").put_parameter(Name=hook_parameter, Value=HOOK_NOT_RECORDED, Type="String")

    profiles = [
        profile.lambda_entry(
            task_definitions[profile.name], CONTAINER_NAME, task_role_ids[profile.name]
        )
        for profile in config.profiles
    ]
    from lambda_fn.contract import lambda_environment
    from localdev.profiles import store_profiles

    profile_env = store_profiles(client("ssm"), unique, profiles)
    env = {
        **FAKE_CREDENTIALS,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **({"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {}),
        # The construct's builder, with what this endpoint holds (lambda_fn/contract.py).
        **lambda_environment(
            webhook_secret_arn=webhook_secret_arn,
            github_token_secret_arn=token_secret_arn,
            github_api_url=github_api_url or config.github_api_url,
            ecs_cluster=cluster,
            subnet_ids=[subnet_id],
            security_group_ids=[security_group_id],
            assign_public_ip=config.effective_assign_public_ip,
            profiles_parameters=profile_env["RUNNER_PROFILES_PARAMETERS"].split(","),
            profiles_version=profile_env["RUNNER_PROFILES_VERSION"],
            runner_scope=config.runner_scope,
            runner_group_id=config.runner_group_id,
            allowed_repositories=lambda_allowed_repositories(config.allowed_repositories),
            idempotency_table=table,
            retry_queue_url=retry_url,
            dead_letter_queue_url=dlq_url,
            runner_name_prefix=runner_name_prefix_from(prefix),
            task_idle_timeout_seconds=config.runner_idle_timeout_seconds,
            jit_secret_prefix=f"{unique}/jit",
            github_hook_parameter=hook_parameter,
            service_name="runner-webhook",
        ),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    return LocalStack(
        endpoint_url=endpoint_url,
        region=region,
        config=config,
        cluster=cluster,
        task_definitions=task_definitions,
        task_role_ids=task_role_ids,
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
        table=table,
        webhook_secret_arn=webhook_secret_arn,
        token_secret_arn=token_secret_arn,
        webhook_secret=webhook_secret,
        retry_queue_url=retry_url,
        dead_letter_queue_url=dlq_url,
        hook_parameter=hook_parameter,
        env=env,
    )


#: Trust policy of a runner task role (as the construct's ``ServicePrincipal``).
ECS_TASKS_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
