"""The synthesized template, the webhook API: one POST /webhook, stage settings, API Gateway logging, outputs.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import json

import pytest

from tests.kit.infra import (
    STACK_NAME,
    TEST_CONTEXT,
    Synth,
)
from tests.kit.stack import (
    function_id,
    logical_id,
    only,
)

pytestmark = pytest.mark.infra


def test_api_has_only_post_webhook(main_synth: Synth) -> None:
    (resource,) = main_synth.resources("AWS::ApiGateway::Resource").values()
    assert resource["Properties"]["PathPart"] == "webhook"
    (method,) = main_synth.resources("AWS::ApiGateway::Method").values()
    assert method["Properties"]["HttpMethod"] == "POST"
    assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    assert method["Properties"]["ResourceId"] == {
        "Ref": logical_id(main_synth, "AWS::ApiGateway::Resource", "webhook")
    }
    assert method["Properties"]["Integration"]["Uri"]["Fn::Join"][1][-2] == {
        "Fn::GetAtt": [function_id(main_synth, "WebhookFunction"), "Arn"]
    }
    # API Gateway may invoke only the webhook function, only for POST /webhook of its stage;
    # the only other invoke permissions are EventBridge's: the reconciler schedule's and
    # the hook filter's two rules (issue 23).
    permissions = [
        p["Properties"] for p in main_synth.resources("AWS::Lambda::Permission").values()
    ]
    assert sorted(p["Principal"] for p in permissions) == [
        "apigateway.amazonaws.com",
        "events.amazonaws.com",
        "events.amazonaws.com",
        "events.amazonaws.com",
    ]
    (permission,) = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]
    assert permission["FunctionName"] == {
        "Fn::GetAtt": [function_id(main_synth, "WebhookFunction"), "Arn"]
    }
    source = permission["SourceArn"]["Fn::Join"][1]
    assert source[-1] == "/POST/webhook"


def test_api_stage_throttling_logging_tracing(main_synth: Synth) -> None:
    stage = only(main_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert stage["TracingEnabled"] is True
    access_logs = logical_id(main_synth, "AWS::Logs::LogGroup", "ApiAccessLogs")
    # @aws-cdk/aws-apigateway:logGroupDestinationArnWithoutWildcard: the group's ARN, no ':*'.
    destination = json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    assert f'{{"Ref": "{access_logs}"}}' in destination
    assert ":logs:" in destination
    assert ":*" not in destination
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "ip", "httpMethod", "status", "resourcePath"} <= set(log_format)
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == TEST_CONTEXT["webhook_throttle_rate"]
    assert settings["ThrottlingBurstLimit"] == TEST_CONTEXT["webhook_throttle_burst"]
    assert settings["MetricsEnabled"] is True
    assert settings["DataTraceEnabled"] is False
    assert settings["LoggingLevel"] == "ERROR"
    # api_gateway_logging=create: this stack sets the region-wide CloudWatch role, and keeps
    # the role on delete (the account setting would otherwise point at a deleted role).
    (account,) = main_synth.resources("AWS::ApiGateway::Account").values()
    role = logical_id(main_synth, "AWS::IAM::Role", "CloudWatchRole")
    assert account["Properties"] == {"CloudWatchRoleArn": {"Fn::GetAtt": [role, "Arn"]}}
    assert main_synth.raw["Resources"][role]["DeletionPolicy"] == "Retain"
    assert only(main_synth.resources("AWS::ApiGateway::RestApi"))["Properties"]["Name"] == (
        f"{STACK_NAME}-webhook"
    )


def test_existing_api_gateway_role_logs_without_touching_the_account(
    existing_vpc_synth: Synth,
) -> None:
    existing_vpc_synth.template.resource_count_is("AWS::ApiGateway::Account", 0)
    roles = existing_vpc_synth.resources("AWS::IAM::Role")
    assert not [role for role in roles if "CloudWatchRole" in role], sorted(roles)
    stage = only(existing_vpc_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert "AccessLogSetting" in stage
    assert stage["MethodSettings"][0]["LoggingLevel"] == "ERROR"


def test_api_gateway_logging_off_by_default(edge_synth: Synth) -> None:
    """Off: nothing account-wide, no API log groups; the Lambda logs every delivery."""
    edge_synth.template.resource_count_is("AWS::ApiGateway::Account", 0)
    stage = only(edge_synth.resources("AWS::ApiGateway::Stage"))["Properties"]
    assert "AccessLogSetting" not in stage
    assert "LoggingLevel" not in stage["MethodSettings"][0]
    assert only(edge_synth.resources("AWS::ApiGateway::RestApi"))["Properties"]["Name"] == (
        "RunnersEdge-webhook"
    )


def test_outputs(main_synth: Synth) -> None:
    outputs = main_synth.raw["Outputs"]
    records = {k for k in outputs if k.startswith("RunnersFargateRunnersInstance")}
    assert len(records) == 1  # the construct's own record (fargate_runners/discovery.py)
    assert set(outputs) - records == {
        "WebhookUrl", "WebhookSecretArn", "GitHubTokenSecretArn", "ClusterName",
        "RetryQueueUrl", "DeadLetterQueueUrl", "DashboardName", "WebhookHookParameter",
        "SecurityGroupSmall", "SecurityGroupBigX64", "SecurityGroupDeploy",
    }  # fmt: skip
    assert outputs["WebhookHookParameter"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    }
    url = outputs["WebhookUrl"]["Value"]["Fn::Join"][1]
    assert url[0] == "https://"
    assert url[-1] == "/webhook"
    assert outputs["ClusterName"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    }
    assert outputs["RetryQueueUrl"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "RetryQueue")
    }
    assert outputs["DeadLetterQueueUrl"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    }
    assert outputs["DashboardName"]["Value"] == {
        "Ref": logical_id(main_synth, "AWS::CloudWatch::Dashboard", "Dashboard")
    }
    assert main_synth.stack.stack_name == STACK_NAME
