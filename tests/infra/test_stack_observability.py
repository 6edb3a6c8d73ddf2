"""The synthesized template, observability: log groups (retention, removal, order) and alarms.

Split from ``test_stack.py`` (issue 26); the helpers are in ``tests.kit.stack``."""

from __future__ import annotations

import pytest

from tests.kit.infra import (
    STACK_NAME,
    TEST_CONTEXT,
    Synth,
)
from tests.kit.stack import (
    alarm_actions,
    logical_id,
)

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("fixture", ["main_synth", "existing_vpc_synth", "edge_synth"])
def test_every_lambda_logs_to_a_group_of_the_stack(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """Lambda would otherwise create /aws/lambda/<name> itself, outside the stack, forever.

    That includes CDK's own provider that strips a new VPC's default security group.
    """
    synth: Synth = request.getfixturevalue(fixture)
    groups = synth.resources("AWS::Logs::LogGroup")
    functions = synth.resources("AWS::Lambda::Function")
    assert functions
    for logical, function in functions.items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(target, dict) and target.get("Ref") in groups, (logical, target)


def test_cdks_default_security_group_lambda_has_a_log_group_of_the_stack(
    main_synth: Synth,
) -> None:
    handler = logical_id(
        main_synth, "AWS::Lambda::Function", "CustomVpcRestrictDefaultSGCustomResourceProvider"
    )
    group = logical_id(
        main_synth, "AWS::Logs::LogGroup", "CustomVpcRestrictDefaultSGCustomResourceProvider"
    )
    logging = main_synth.raw["Resources"][handler]["Properties"]["LoggingConfig"]
    assert logging == {"LogGroup": {"Ref": group}}  # so the group outlives the handler's runs
    properties = main_synth.raw["Resources"][group]["Properties"]
    assert properties["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]
    assert "LogGroupName" not in properties


def test_container_insights_log_group_exists_before_the_cluster(main_synth: Synth) -> None:
    """ECS would create /aws/ecs/containerinsights/<cluster>/performance outside the stack."""
    cluster_id = logical_id(main_synth, "AWS::ECS::Cluster", "Cluster")
    cluster = main_synth.raw["Resources"][cluster_id]
    assert cluster["Properties"]["ClusterName"] == f"{STACK_NAME}-runners"
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ContainerInsightsLogs")
    group = main_synth.raw["Resources"][group_id]["Properties"]
    assert group["LogGroupName"] == f"/aws/ecs/containerinsights/{STACK_NAME}-runners/performance"
    assert group_id in cluster["DependsOn"]


def test_redeploy_after_destroy_meets_no_retained_name(main_synth: Synth) -> None:
    """With ``log_removal_policy: retain``, what a destroy leaves behind must not carry a
    name the next deploy of the same stack creates again (CloudFormation cannot create a
    resource whose name exists): a retained resource's name is generated or holds an id of
    this deployment (the API's, for its execution logs)."""
    assert TEST_CONTEXT["log_removal_policy"] == "retain"
    retained = {
        logical: resource
        for logical, resource in main_synth.raw["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    }
    assert any(r["Type"] == "AWS::Logs::LogGroup" for r in retained.values())
    fixed = {
        (logical, key): value
        for logical, resource in retained.items()
        for key, value in resource.get("Properties", {}).items()
        if key.endswith("Name") and isinstance(value, str)
    }
    assert fixed == {}
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ContainerInsightsLogs")
    group = main_synth.raw["Resources"][group_id]
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert group["Properties"]["RetentionInDays"] == TEST_CONTEXT["log_retention_days"]


def test_api_execution_log_group_exists_before_the_stage(main_synth: Synth) -> None:
    """API Gateway would create API-Gateway-Execution-Logs_<api id>/<stage> on its own."""
    api = logical_id(main_synth, "AWS::ApiGateway::RestApi", "Api")
    group_id = logical_id(main_synth, "AWS::Logs::LogGroup", "ApiExecutionLogs")
    group = main_synth.raw["Resources"][group_id]["Properties"]
    assert group["LogGroupName"] == {
        "Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api}, "/prod"]]
    }
    (stage_id,) = main_synth.resources("AWS::ApiGateway::Stage")
    assert group_id in main_synth.raw["Resources"][stage_id]["DependsOn"]


def test_alarm_email_creates_an_ssl_only_topic_with_an_email_subscription(
    main_synth: Synth,
) -> None:
    (topic_id,) = main_synth.resources("AWS::SNS::Topic")
    (subscription,) = main_synth.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Endpoint": "ops@example.com",
        "Protocol": "email",
        "TopicArn": {"Ref": topic_id},
    }
    (policy,) = main_synth.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    deny, allow = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] == "sns:Publish"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # A topic policy replaces the default one: without this, CloudWatch may not publish.
    alarm_ids = sorted(main_synth.resources("AWS::CloudWatch::Alarm"))
    sources = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    sources.sort(key=lambda arn: str(arn["Fn::GetAtt"][0]))  # created in the parts' order
    assert allow == {
        "Sid": "AllowThisStacksAlarmsToPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": {"Ref": topic_id},
        "Condition": {
            "ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in alarm_ids]},
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        },
    }
    main_synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    # Every alarm (dead-letter queue, launch failures, alarms.py's with the hook filter's and
    # the reconciler budget's, the runner version's
    # one per profile) notifies the topic.
    actions = alarm_actions(main_synth)
    assert len(actions) == 12
    assert all(a == ([{"Ref": topic_id}], [{"Ref": topic_id}]) for a in actions), actions
    dlq = logical_id(main_synth, "AWS::SQS::Queue", "DeadLetterQueue")
    main_synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
        },
    )


def test_alarm_topic_arn_is_used_as_is(existing_vpc_synth: Synth) -> None:
    synth = existing_vpc_synth
    arn = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"
    synth.template.resource_count_is("AWS::SNS::Topic", 0)
    synth.template.resource_count_is("AWS::SNS::Subscription", 0)
    actions = alarm_actions(synth)
    # two of the dashboard, eight of alarms.py (refresh, hook filter, budget), version
    assert len(actions) == 11
    assert all(a == ([arn], [arn]) for a in actions), actions


def test_no_alarm_topic(edge_synth: Synth) -> None:
    edge_synth.template.resource_count_is("AWS::SNS::Topic", 0)
    actions = alarm_actions(edge_synth)
    assert len(actions) == 9  # no web ACL, no refresh alarm
    assert all(a == (None, None) for a in actions), actions
