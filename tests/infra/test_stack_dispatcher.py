"""The synthesized template, the dispatcher: secrets and table, the Lambdas, teardown, their environment, queues and the reconciler.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import json
import re

import pytest

from lambda_fn.contract import RUNNER_VERSION
from tests.kit.infra import (
    DEPLOY_POLICY,
    STACK_NAME,
    Synth,
)
from tests.kit.stack import (
    ALL_SYNTHS,
    FUNCTIONS,
    PSEUDO,
    as_list,
    depends_on,
    enforce_ssl_statement,
    function_id,
    logical_id,
    only,
    queue_policy_statements,
    resolve_join,
    runner_profiles,
    statements,
    task_role_id,
    webhook_env,
)

pytestmark = pytest.mark.infra


def test_idempotency_table(main_synth: Synth) -> None:
    table = only(main_synth.resources("AWS::DynamoDB::Table"))["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_five_functions(main_synth: Synth) -> None:
    """Ours (the fifth: the web ACL's hook filter); the sixth is CDK's provider that strips
    the new VPC's default security group (@aws-cdk/aws-ec2:restrictDefaultSecurityGroup)."""
    functions = main_synth.resources("AWS::Lambda::Function")
    assert len([f for f in functions if not f.startswith("Custom")]) == 5
    assert len(functions) == 6


def test_teardown_function_stops_tasks_deletes_sealed_configs_and_reads_the_token_only(
    main_synth: Synth,
) -> None:
    function = main_synth.raw["Resources"][function_id(main_synth, "TeardownFunction")]
    assert function["Properties"]["Handler"] == "lambda_fn.teardown.handler"
    assert function["Properties"]["Timeout"] == 600
    # The dispatcher's settings (one builder), without the retry path and detailed tracing.
    assert function["Properties"]["Environment"]["Variables"] == {
        k: v
        for k, v in webhook_env(main_synth).items()
        if k not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "TRACE_REMOTE_CALLS")
    }
    found = statements(main_synth, "TeardownFunctionRole")
    actions = sorted(a for s in found for a in as_list(s["Action"]))
    assert actions == sorted(
        [
            "logs:CreateLogStream", "logs:PutLogEvents",
            "xray:PutTraceSegments", "xray:PutTelemetryRecords",
            "ecs:DescribeTasks", "ecs:StopTask", "ecs:ListTasks",
            "secretsmanager:ListSecrets", "secretsmanager:DeleteSecret",
            "secretsmanager:GetSecretValue", "ssm:GetParameters",
        ]
    )  # fmt: skip
    by_sid = {s.get("Sid"): s for s in found}
    token = logical_id(main_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")
    assert by_sid["ReadGitHubToken"]["Resource"] == {"Ref": token}  # not the webhook secret
    assert by_sid["ListJitConfigs"]["Resource"] == "*"  # ListSecrets has no resource level
    assert (
        resolve_join(by_sid["DeleteJitConfigs"]["Resource"], PSEUDO)
        == "arn:aws:secretsmanager:r:1:secret:RunnersTest/jit/*"
    )
    cluster = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    on_cluster = {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    by_action = {a: s for s in found for a in as_list(s["Action"])}
    assert by_action["ecs:StopTask"]["Condition"] == on_cluster
    assert by_action["ecs:ListTasks"]["Condition"] == on_cluster
    assert (
        resolve_join(by_action["ecs:StopTask"]["Resource"], {**PSEUDO, cluster: "C"})
        == "arn:aws:ecs:r:1:task/C/*"
    )


@pytest.mark.parametrize("fixture", ALL_SYNTHS)
def test_teardown_is_deleted_after_what_starts_tasks_and_before_what_tasks_hold(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """CloudFormation deletes dependents first: starters -> teardown -> cluster, SG, VPC."""
    synth: Synth = request.getfixturevalue(fixture)
    (teardown_id, teardown), *more = synth.resources("Custom::RunnerTeardown").items()
    assert more == []
    cluster = logical_id(synth, "AWS::ECS::Cluster", "Cluster")
    assert teardown["Properties"]["Cluster"] == {"Ref": cluster}
    assert teardown["Properties"]["ServiceTimeout"] == "660"  # the Lambda's 600 s + 60
    assert teardown["Properties"]["ServiceToken"] == {
        "Fn::GetAtt": [function_id(synth, "TeardownFunction"), "Arn"]
    }
    after = depends_on(synth, teardown_id)
    assert cluster in after
    assert logical_id(synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup") in after
    assert logical_id(synth, "AWS::IAM::Policy", "TeardownFunctionRoleDefaultPolicy") in after
    # the capacity provider association belongs to the cluster and goes after it too
    assert set(synth.resources("AWS::ECS::ClusterCapacityProviderAssociations")) <= after
    if fixture == "main_synth":  # the stack's own VPC: every part of it waits
        for kind in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway"):
            assert set(synth.resources(kind)) <= after, kind
    for name in FUNCTIONS:
        assert teardown_id in depends_on(synth, function_id(synth, name)), name


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_settings(main_synth: Synth, name: str) -> None:
    handler, timeout = FUNCTIONS[name]
    function = main_synth.raw["Resources"][function_id(main_synth, name)]["Properties"]
    assert function["Handler"] == handler
    assert function["Timeout"] == timeout
    assert re.fullmatch(r"python3\.(1[2-9]|[2-9]\d)", function["Runtime"])
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 1024
    assert function["TracingConfig"] == {"Mode": "Active"}
    log_group = logical_id(main_synth, "AWS::Logs::LogGroup", f"{name}Logs")
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}
    assert function["Role"] == {
        "Fn::GetAtt": [logical_id(main_synth, "AWS::IAM::Role", f"{name}Role"), "Arn"]
    }
    # detailed_tracing (on in TEST_CONTEXT): the X-Ray SDK layer, nothing else.
    layer = logical_id(main_synth, "AWS::Lambda::LayerVersion", "XRaySdk")
    assert function["Layers"] == [{"Ref": layer}]


def test_functions_share_one_asset_and_one_environment(main_synth: Synth) -> None:
    functions = [main_synth.raw["Resources"][function_id(main_synth, n)] for n in FUNCTIONS]
    assert len({json.dumps(f["Properties"]["Code"], sort_keys=True) for f in functions}) == 1
    envs = [f["Properties"]["Environment"]["Variables"] for f in functions]
    assert envs[0] == envs[1] == envs[2]
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions}
    assert len(roles) == 3  # each function has its own role


def test_webhook_environment(main_synth: Synth) -> None:
    env = webhook_env(main_synth)
    secrets = main_synth.resources("AWS::SecretsManager::Secret")
    webhook_secret = logical_id(main_synth, "AWS::SecretsManager::Secret", "WebhookSecret")
    token_secret = logical_id(main_synth, "AWS::SecretsManager::Secret", "GitHubTokenSecret")
    assert set(secrets) == {webhook_secret, token_secret}
    assert env["WEBHOOK_SECRET_ARN"] == {"Ref": webhook_secret}
    assert env["GITHUB_TOKEN_SECRET_ARN"] == {"Ref": token_secret}
    assert env["GITHUB_API_URL"] == "https://ghe.example.com/api/v3"
    assert env["ECS_CLUSTER"] == {"Ref": logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")}
    subnets = sorted(main_synth.resources("AWS::EC2::Subnet"))
    assert env["SUBNET_IDS"] == {"Fn::Join": ["", [{"Ref": subnets[0]}, ",", {"Ref": subnets[1]}]]}
    group = logical_id(main_synth, "AWS::EC2::SecurityGroup", "RunnerSecurityGroup")
    assert env["SECURITY_GROUP_IDS"] == {"Fn::GetAtt": [group, "GroupId"]}
    assert env["ASSIGN_PUBLIC_IP"] == "ENABLED"
    assert env["RUNNER_SCOPE"] == "org"
    assert env["RUNNER_GROUP_ID"] == "7"
    assert env["ALLOWED_REPOSITORIES"] == "octo-org/*,other/app"
    table = logical_id(main_synth, "AWS::DynamoDB::Table", "IdempotencyTable")
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": table}
    assert env["RETRY_QUEUE_URL"] == {"Ref": logical_id(main_synth, "AWS::SQS::Queue", "Retry")}
    assert env["DEAD_LETTER_QUEUE_URL"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "DeadLetter")
    }
    assert env["RETRY_MAX_ATTEMPTS"] == "4"
    assert env["RECONCILER_IDLE_TIMEOUT_SECONDS"] == "720"  # the task's 600 s + 120 s
    assert env["GITHUB_HOOK_PATH"] == "orgs/octo-org/hooks/12345"
    assert env["GITHUB_HOOK_PARAMETER"] == {
        "Ref": logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    }
    assert env["RUNNER_NAME_PREFIX"] == STACK_NAME.lower()
    assert env["JIT_SECRET_PREFIX"] == f"{STACK_NAME}/jit"
    # The first group of the stack id's UUID: unique per deployed stack (lambda_fn/naming.py).
    assert env["DEPLOYMENT_ID"] == {
        "Fn::Select": [
            0,
            {
                "Fn::Split": [
                    "-",
                    {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]},
                ]
            },
        ]
    }
    assert env["POWERTOOLS_SERVICE_NAME"] == "RunnersTest-webhook"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "FargateRunners"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    contract = {
        "WEBHOOK_SECRET_ARN", "GITHUB_TOKEN_SECRET_ARN", "GITHUB_API_URL", "ECS_CLUSTER",
        "SUBNET_IDS", "SECURITY_GROUP_IDS", "ASSIGN_PUBLIC_IP",
        "RUNNER_SCOPE", "RUNNER_GROUP_ID", "ALLOWED_REPOSITORIES", "IDEMPOTENCY_TABLE",
        "RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "RETRY_MAX_ATTEMPTS",
        "RECONCILER_IDLE_TIMEOUT_SECONDS", "GITHUB_HOOK_PATH",
    }  # fmt: skip
    extra = {
        "GITHUB_HOOK_PARAMETER", "RUNNER_PROFILES_PARAMETERS", "RUNNER_PROFILES_VERSION",
        "RUNNER_NAME_PREFIX", "DEPLOYMENT_ID", "JIT_SECRET_PREFIX", "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "TRACE_REMOTE_CALLS",
    }  # fmt: skip
    assert set(env) == contract | extra
    assert env["TRACE_REMOTE_CALLS"] == "true"  # detailed_tracing


def test_runner_profiles_json(main_synth: Synth) -> None:
    def group(name: str) -> str:
        return logical_id(main_synth, "AWS::EC2::SecurityGroup", name)

    assert runner_profiles(main_synth) == [
        {
            "name": "small",
            "labels": ["self-hosted", "linux", "arm64", "small"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-small:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-small"),
            "capacity": "FARGATE",
            "max_runners": 64,  # default: 64 vCPUs' worth of 1-vCPU tasks
            "runner_version": RUNNER_VERSION,  # the default image's tag
            # No profile named default: the first keeps the group that predates per-profile ones.
            "security_group_ids": [f"{group('RunnerSecurityGroup')}.GroupId"],
        },
        {
            "name": "big-x64",
            "labels": ["self-hosted", "Linux", "X64", "big"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-big-x64:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-big-x64"),
            "capacity": "FARGATE",
            "max_runners": 16,  # default: 64 vCPUs' worth of 4-vCPU tasks
            # runner:custom says no version: unknown to the version watch
            "security_group_ids": [f"{group('SecurityGroupbigx64')}.GroupId"],
        },
        {
            "name": "deploy",
            "labels": ["self-hosted", "linux", "deploy"],
            "task_definition": f"arn:task-definition/{STACK_NAME}-runner-deploy:1",
            "container_name": "runner",
            "task_role_id": task_role_id(main_synth, f"{STACK_NAME}-runner-deploy"),
            "capacity": "FARGATE_SPOT_THEN_FARGATE",
            "max_runners": 2,
            "policy": DEPLOY_POLICY,
            "runner_version": RUNNER_VERSION,  # <registry>/actions/actions-runner:<version>
            "security_group_ids": [f"{group('SecurityGroupdeploy')}.GroupId"],
        },
    ]


def test_queues_encrypted_ssl_only_with_redrive(main_synth: Synth) -> None:
    queues = main_synth.resources("AWS::SQS::Queue")
    assert len(queues) == 2
    retry_id = logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    dlq_id = logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    retry = queues[retry_id]["Properties"]
    dlq = queues[dlq_id]["Properties"]
    assert retry["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert retry["VisibilityTimeout"] == 360  # 6 x the retry function's 60 s
    assert retry["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq
    for queue_id in (retry_id, dlq_id):
        assert queue_policy_statements(main_synth, queue_id) == [enforce_ssl_statement(queue_id)]


def test_retry_function_consumes_only_the_retry_queue(main_synth: Synth) -> None:
    (mapping,) = main_synth.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    retry_queue = logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    assert props["FunctionName"] == {"Ref": function_id(main_synth, "RetryFunction")}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [retry_queue, "Arn"]}
    assert props["BatchSize"] == 5
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props.get("Enabled", True) is True


def test_reconciler_schedule(main_synth: Synth) -> None:
    rule = main_synth.resources("AWS::Events::Rule")[
        logical_id(main_synth, "AWS::Events::Rule", "ReconcileSchedule")
    ]
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(10 minutes)"
    assert props["State"] == "ENABLED"
    assert "EventPattern" not in props
    reconciler = function_id(main_synth, "ReconcilerFunction")
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [reconciler, "Arn"]}
    # EventBridge may invoke only the reconciler, only from this rule.
    rule_id = logical_id(main_synth, "AWS::Events::Rule", "ReconcileSchedule")
    (permission,) = [
        p["Properties"]
        for p in main_synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == {"Fn::GetAtt": [reconciler, "Arn"]}
    ]
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_default_reconcile_interval(existing_vpc_synth: Synth) -> None:
    (rule,) = [
        r
        for r in existing_vpc_synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["Description"] == "Runs the runner reconciler"
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
