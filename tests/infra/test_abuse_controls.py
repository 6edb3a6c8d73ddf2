"""The webhook under abuse (issue 14): web ACL, source-list refresh, alarms, hook record, cap."""

from __future__ import annotations

from typing import Any

import pytest

from fargate_runners.config import ConfigError, default_max_runners, load_config
from lambda_fn.source_ranges import GITHUB_HOOKS_SNAPSHOT, SourceRanges
from tests.kit.infra import EDGE_CONTEXT, NO_BUNDLING, TEST_CONTEXT, Synth
from tests.kit.metrics import AWS_PUBLISHED, NAMESPACE, emitted_by_lambda
from tests.kit.stack import (
    as_list,
    logical_id,
    only,
    runner_profiles,
    statements,
    webhook_env,
)

PSEUDO_STAGE_ARN = ["arn:", ":apigateway:", "::/restapis/", "/stages/"]


def ip_set_addresses(synth: Synth) -> dict[str, list[str]]:
    return {
        s["Properties"]["IPAddressVersion"]: s["Properties"]["Addresses"]
        for s in synth.resources("AWS::WAFv2::IPSet").values()
    }


# -- the web ACL -------------------------------------------------------------------------


def test_web_acl_admits_only_the_configured_sources_then_rate_limits(main_synth: Synth) -> None:
    assert ip_set_addresses(main_synth) == {
        "IPV4": ["198.51.100.7/32", "203.0.113.0/24"],
        "IPV6": ["2001:db8:10::/48"],
    }
    ipv4 = logical_id(main_synth, "AWS::WAFv2::IPSet", "SourcesIpv4")
    ipv6 = logical_id(main_synth, "AWS::WAFv2::IPSet", "SourcesIpv6")
    acl = only(main_synth.resources("AWS::WAFv2::WebACL"))["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    outside, hooks, rate = acl["Rules"]
    assert (outside["Name"], outside["Priority"], outside["Action"]) == (
        "BlockOutsideWebhookSources", 0, {"Block": {}},
    )  # fmt: skip
    assert outside["Statement"] == {
        "NotStatement": {
            "Statement": {
                "OrStatement": {
                    "Statements": [
                        {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": [ipv4, "Arn"]}}},
                        {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": [ipv6, "Arn"]}}},
                    ]
                }
            }
        }
    }
    # Issue 23: only our recorded hook, by GitHub's agent; blocked before the rate rule, which
    # never sees a request without the header (custom keys missing = not rate-limited).
    pattern_set = logical_id(main_synth, "AWS::WAFv2::RegexPatternSet", "RecordedHooks")
    no_change = [{"Priority": 0, "Type": "NONE"}]
    assert (hooks["Name"], hooks["Priority"], hooks["Action"]) == (
        "BlockOtherHooks", 1, {"Block": {}},
    )  # fmt: skip
    assert hooks["Statement"] == {
        "NotStatement": {
            "Statement": {
                "AndStatement": {
                    "Statements": [
                        {
                            "ByteMatchStatement": {
                                "FieldToMatch": {"SingleHeader": {"Name": "user-agent"}},
                                "PositionalConstraint": "STARTS_WITH",
                                "SearchString": "GitHub-Hookshot/",
                                "TextTransformations": no_change,
                            }
                        },
                        {
                            "RegexPatternSetReferenceStatement": {
                                "Arn": {"Fn::GetAtt": [pattern_set, "Arn"]},
                                "FieldToMatch": {"SingleHeader": {"Name": "x-github-hook-id"}},
                                "TextTransformations": no_change,
                            }
                        },
                    ]
                }
            }
        }
    }
    # Seeded from github_hook_path (orgs/octo-org/hooks/12345); the hook filter owns it after.
    patterns = only(main_synth.resources("AWS::WAFv2::RegexPatternSet"))["Properties"]
    assert patterns["RegularExpressionList"] == ["^12345$"]
    assert (rate["Name"], rate["Priority"], rate["Action"]) == (
        "RateLimitPerHook", 2, {"Block": {}},
    )  # fmt: skip
    assert rate["Statement"] == {
        "RateBasedStatement": {
            "AggregateKeyType": "CUSTOM_KEYS",
            "CustomKeys": [
                {"Header": {"Name": "x-github-hook-id", "TextTransformations": no_change}}
            ],
            "EvaluationWindowSec": 300,
            "Limit": 600,
        }
    }
    for item in (acl, outside, hooks, rate):
        assert item["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True


def test_web_acl_is_associated_with_the_stage(main_synth: Synth) -> None:
    association = only(main_synth.resources("AWS::WAFv2::WebACLAssociation"))
    acl = logical_id(main_synth, "AWS::WAFv2::WebACL", "WebAcl")
    api = logical_id(main_synth, "AWS::ApiGateway::RestApi", "Api")
    stage = logical_id(main_synth, "AWS::ApiGateway::Stage", "Stage")
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl, "Arn"]}
    parts = association["Properties"]["ResourceArn"]["Fn::Join"][1]
    assert [p for p in parts if isinstance(p, str)] == PSEUDO_STAGE_ARN
    assert {"Ref": api} in parts and {"Ref": stage} in parts
    assert stage in association["DependsOn"]


def test_the_hook_filter_may_change_only_its_pattern_set_and_read_only_the_record(
    main_synth: Synth,
) -> None:
    """Issue 23: the Lambda that follows ``setup``'s record, on its change and on a schedule."""
    functions = main_synth.resources("AWS::Lambda::Function")
    fn_id, fn = next(
        (k, f) for k, f in functions.items()
        if f["Properties"]["Handler"] == "lambda_fn.hook_filter.handler"
    )  # fmt: skip
    pattern_set = logical_id(main_synth, "AWS::WAFv2::RegexPatternSet", "RecordedHooks")
    parameter = logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["HOOK_PATTERN_SET_ARN"] == {"Fn::GetAtt": [pattern_set, "Arn"]}
    assert env["GITHUB_HOOK_PARAMETER"] == {"Ref": parameter}
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    own_logs = logical_id(main_synth, "AWS::Logs::LogGroup", "HookFilterFunctionLogs")
    granted = {
        tuple(as_list(s["Action"])): s["Resource"]
        for s in statements(main_synth, role)
        if not any(str(a).startswith("xray:") for a in as_list(s["Action"]))
    }
    assert granted.pop(("logs:CreateLogStream", "logs:PutLogEvents")) == {
        "Fn::GetAtt": [own_logs, "Arn"]
    }
    assert granted == {
        ("wafv2:GetRegexPatternSet", "wafv2:UpdateRegexPatternSet"): {
            "Fn::GetAtt": [pattern_set, "Arn"]
        },
        ("ssm:GetParameter",): granted[("ssm:GetParameter",)],
    }
    assert parameter in str(granted[("ssm:GetParameter",)])
    rules = [
        r["Properties"] for r in main_synth.resources("AWS::Events::Rule").values()
        if fn_id in str(r["Properties"]["Targets"])
    ]  # fmt: skip
    patterns = [r.get("EventPattern") for r in rules]
    assert {
        "source": ["aws.ssm"],
        "detail-type": ["Parameter Store Change"],
        "detail": {"name": [{"Ref": parameter}]},
    } in patterns
    assert any(r.get("ScheduleExpression") == "rate(10 minutes)" for r in rules)


def test_fixed_sources_need_no_refresh(main_synth: Synth) -> None:
    handlers = [
        f["Properties"]["Handler"] for f in main_synth.resources("AWS::Lambda::Function").values()
    ]
    assert "lambda_fn.refresh_sources.handler" not in handlers


def test_github_com_starts_from_the_snapshot_and_refreshes_hourly(
    existing_vpc_synth: Synth,
) -> None:
    synth = existing_vpc_synth
    snapshot = SourceRanges.parse(GITHUB_HOOKS_SNAPSHOT)
    assert ip_set_addresses(synth) == {"IPV4": list(snapshot.ipv4), "IPV6": list(snapshot.ipv6)}
    only(synth.resources("AWS::WAFv2::WebACLAssociation"))
    function_id = logical_id(synth, "AWS::Lambda::Function", "SourceRangesFunction")
    function = synth.raw["Resources"][function_id]["Properties"]
    assert function["Handler"] == "lambda_fn.refresh_sources.handler"
    ipv4 = logical_id(synth, "AWS::WAFv2::IPSet", "SourcesIpv4")
    ipv6 = logical_id(synth, "AWS::WAFv2::IPSet", "SourcesIpv6")
    env = function["Environment"]["Variables"]
    assert env["SOURCE_IPV4_SET_ARN"] == {"Fn::GetAtt": [ipv4, "Arn"]}
    assert env["SOURCE_IPV6_SET_ARN"] == {"Fn::GetAtt": [ipv6, "Arn"]}
    assert env["GITHUB_API_URL"] == "https://api.github.com"
    # The dispatcher's settings (one builder), to read /meta with its token; no retry path.
    dispatcher = webhook_env(synth)
    assert {k: v for k, v in env.items() if not k.startswith("SOURCE_")} == {
        k: v
        for k, v in dispatcher.items()
        if k not in ("RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "TRACE_REMOTE_CALLS")
    }
    token_secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gh/pat-AbC123"
    assert env["GITHUB_TOKEN_SECRET_ARN"] == token_secret
    (rule,) = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    # Least privilege: read and replace exactly the two IP sets; logs; X-Ray.
    found = statements(synth, "SourceRangesFunctionRole")
    waf = [s for s in found if any(a.startswith("wafv2:") for a in as_list(s["Action"]))]
    assert waf == [
        {
            "Sid": "ReplaceWebhookSourceRanges",
            "Effect": "Allow",
            "Action": ["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
            "Resource": [{"Fn::GetAtt": [ipv4, "Arn"]}, {"Fn::GetAtt": [ipv6, "Arn"]}],
        }
    ]
    # ... and read the PAT, that secret only (the webhook secret is not readable).
    (read,) = [s for s in found if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert (read["Action"], read["Resource"]) == ("secretsmanager:GetSecretValue", token_secret)
    actions = sorted(a for s in found for a in as_list(s["Action"]))
    assert actions == sorted(
        [
            "logs:CreateLogStream", "logs:PutLogEvents",
            "xray:PutTraceSegments", "xray:PutTelemetryRecords",
            "wafv2:GetIPSet", "wafv2:UpdateIPSet", "secretsmanager:GetSecretValue",
            "ssm:GetParameters",
        ]
    )  # fmt: skip
    # ... and the profiles' parameters (the settings it loads), those only.
    (profiles,) = [s for s in found if s.get("Sid") == "ReadRunnerProfiles"]
    parameters = synth.resources("AWS::SSM::Parameter")
    for resource in as_list(profiles["Resource"]):
        assert any(name in str(resource) for name in parameters), resource


def acknowledged(context: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """rule id -> reason of every cdk-nag acknowledgment the construct makes for ``context``."""
    import fargate_runners.nag
    from cdk.app import build_app

    recorded: dict[str, str] = {}

    class Recorder:
        def __init__(self, scope: Any) -> None:
            pass

        def acknowledge(self, *rules: Any) -> None:
            recorded.update({rule.id: rule.reason for rule in rules})

    monkeypatch.setattr(fargate_runners.nag, "Validations", type("V", (), {"of": Recorder}))
    build_app({**context, **NO_BUNDLING}, nag=False)
    return recorded


def test_firewall_off_means_no_waf_and_an_honest_acknowledgement(
    edge_synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    for type_ in ("AWS::WAFv2::WebACL", "AWS::WAFv2::IPSet", "AWS::WAFv2::WebACLAssociation"):
        assert edge_synth.resources(type_) == {}
    reason = acknowledged(EDGE_CONTEXT, monkeypatch)["AwsSolutions-APIG3"]
    assert "webhook_firewall: false" in reason
    assert "429" in reason


def test_firewall_on_needs_no_waf_acknowledgement(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "AwsSolutions-APIG3" not in acknowledged(TEST_CONTEXT, monkeypatch)


# -- the recorded webhook -------------------------------------------------------------------


def test_only_the_reconciler_reads_the_recorded_webhook(main_synth: Synth) -> None:
    parameter_id = logical_id(main_synth, "AWS::SSM::Parameter", "WebhookHookParameter")
    parameter = main_synth.resources("AWS::SSM::Parameter")[parameter_id]["Properties"]
    assert (parameter["Type"], parameter["Value"]) == ("String", "not-recorded")
    (statement,) = [
        s
        for s in statements(main_synth, "ReconcilerFunctionRole")
        if s.get("Sid") == "ReadRecordedWebhook"
    ]
    assert statement["Action"] == "ssm:GetParameter"
    parts = statement["Resource"]["Fn::Join"][1]
    assert ":parameter" in "".join(p for p in parts if isinstance(p, str))
    assert {"Ref": parameter_id} in parts
    for role in ("WebhookFunctionRole", "RetryFunctionRole"):
        assert not [
            s for s in statements(main_synth, role) if "ssm:GetParameter" in as_list(s["Action"])
        ]


# -- alarms ----------------------------------------------------------------------------------


def alarm(synth: Synth, contains: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.raw["Resources"][
        logical_id(synth, "AWS::CloudWatch::Alarm", contains)
    ]["Properties"]
    return props


def test_operational_alarms(main_synth: Synth) -> None:
    topic = {"Ref": logical_id(main_synth, "AWS::SNS::Topic", "AlarmTopic")}
    reconciler = alarm(main_synth, "ReconcilerFailing")
    assert (reconciler["Namespace"], reconciler["MetricName"]) == ("AWS/Lambda", "Errors")
    assert reconciler["Dimensions"] == [
        {
            "Name": "FunctionName",
            "Value": {"Ref": logical_id(main_synth, "AWS::Lambda::Function", "ReconcilerFunction")},
        }
    ]
    assert (reconciler["Period"], reconciler["Statistic"], reconciler["Threshold"]) == (
        1800,
        "Sum",
        2,
    )
    steps = alarm(main_synth, "ReconcilerStepsFailing")
    assert (steps["Namespace"], steps["MetricName"]) == ("FargateRunners", "ReconcilerStepFailures")
    assert steps["Dimensions"] == [{"Name": "service", "Value": "RunnersTest-webhook"}]
    # One sample per run with a failed step: two such runs within three runs.
    assert (steps["Period"], steps["Statistic"], steps["Threshold"]) == (1800, "SampleCount", 2)
    stuck = alarm(main_synth, "RetryQueueStuck")
    assert (stuck["Namespace"], stuck["MetricName"], stuck["Statistic"]) == (
        "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
    )  # fmt: skip
    assert stuck["Threshold"] == 1800
    stage = {"Ref": logical_id(main_synth, "AWS::ApiGateway::Stage", "Stage")}
    for name, metric, threshold, periods in (
        ("Webhook4xxRate", "4XXError", 0.25, 2),
        ("Webhook5xxRate", "5XXError", 0.05, 1),
    ):
        rate = alarm(main_synth, name)
        assert (rate["Namespace"], rate["MetricName"], rate["Statistic"]) == (
            "AWS/ApiGateway", metric, "Average",
        )  # fmt: skip
        assert {d["Name"]: d["Value"] for d in rate["Dimensions"]} == {
            "ApiName": main_synth.raw["Resources"][
                logical_id(main_synth, "AWS::ApiGateway::RestApi", "Api")
            ]["Properties"]["Name"],
            "Stage": stage,
        }
        assert (rate["Threshold"], rate["EvaluationPeriods"]) == (threshold, periods)
    for name in (
        "ReconcilerFailing",
        "ReconcilerStepsFailing",
        "RetryQueueStuck",
        "Webhook4xxRate",
        "Webhook5xxRate",
    ):
        props = alarm(main_synth, name)
        assert props["AlarmActions"] == props["OKActions"] == [topic]
        assert props["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("fixture", ["main_synth", "existing_vpc_synth", "edge_synth"])
def test_every_alarm_watches_a_metric_that_is_published(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    """An alarm on a metric or dimension set nobody publishes stays OK for ever: each one
    watches what AWS documents for the resource or what the Lambda emits (as the widgets)."""
    from lambda_fn.contract import METRICS_NAMESPACE

    assert METRICS_NAMESPACE == NAMESPACE
    synth: Synth = request.getfixturevalue(fixture)
    published = {**AWS_PUBLISHED, **emitted_by_lambda()}
    alarms = synth.resources("AWS::CloudWatch::Alarm").values()
    assert alarms
    for props in (alarm["Properties"] for alarm in alarms):
        watched = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        watched += [props] if "MetricName" in props else []
        assert watched, props
        for metric in watched:
            key = (metric["Namespace"], metric["MetricName"])
            dimensions = {d["Name"] for d in metric.get("Dimensions", [])}
            assert key in published, f"{key} is never published"
            assert dimensions in published[key], (key, dimensions)


@pytest.mark.parametrize(
    ("fixture", "function", "max_age"),
    [
        ("main_synth", "ReconcilerFunction", 600),
        ("existing_vpc_synth", "SourceRangesFunction", 3600),
    ],
)
def test_a_failed_scheduled_run_counts_once(
    request: pytest.FixtureRequest, fixture: str, function: str, max_age: int
) -> None:
    """Lambda retries a failed asynchronous invocation twice by default: one failed run
    would count three Errors and trip "failed twice within three runs" on its own."""
    synth: Synth = request.getfixturevalue(fixture)
    target = {"Ref": logical_id(synth, "AWS::Lambda::Function", function)}
    (config,) = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == target
    ]
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == max_age


def test_refresh_failures_alarm(existing_vpc_synth: Synth) -> None:
    refresh = alarm(existing_vpc_synth, "SourceRangesRefreshFailing")
    assert (refresh["MetricName"], refresh["Period"], refresh["Threshold"]) == ("Errors", 10800, 2)


def test_synth_warns_loudly_without_an_alarm_destination(edge_synth: Synth) -> None:
    assert any(w.startswith("NO ALARM REACHES A PERSON") for w in edge_synth.warnings())


def test_no_warning_with_an_alarm_destination(main_synth: Synth) -> None:
    assert not any("NO ALARM REACHES A PERSON" in w for w in main_synth.warnings())


def test_synth_warns_that_repository_runners_of_a_restricted_profile_can_be_taken(
    steps_synth: Synth,
) -> None:
    (warning,) = [w for w in steps_synth.warnings() if "WITH REPOSITORY RUNNERS" in w]
    assert warning.startswith("RESTRICTED PROFILE(S) deploy WITH REPOSITORY RUNNERS")
    assert '"runner_scope": "org"' in warning and '"match": "exact"' in warning


def test_no_repository_scope_warning_with_organisation_runners(main_synth: Synth) -> None:
    """main_synth has a restricted profile too, with organisation runners."""
    assert not any("WITH REPOSITORY RUNNERS" in w for w in main_synth.warnings())


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"github_api_url": "https://ghe.example.com/api/v3"},
            "webhook_source_cidrs: is required with a GitHub Enterprise Server",
        ),
        (
            {"webhook_source_cidrs": ["0.0.0.0/0"]},
            "webhook_source_cidrs[0]: '0.0.0.0/0' is broader",
        ),
        ({"webhook_source_cidrs": []}, "webhook_source_cidrs: is empty"),
        ({"webhook_rate_limit": 5}, "webhook_rate_limit: 5 is outside 10..2000000000"),
        ({"webhook_firewall": "maybe"}, "webhook_firewall: 'maybe' is not a boolean"),
    ],
)
def test_bad_firewall_configuration_is_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    assert str(caught.value).startswith(message), str(caught.value)


def test_ghes_without_firewall_needs_no_cidrs() -> None:
    config = load_config(
        {"github_api_url": "https://ghe.example.com/api/v3", "webhook_firewall": "false"}
    )
    assert (config.webhook_firewall, config.webhook_source_cidrs) == (False, None)


def test_firewall_defaults() -> None:
    config = load_config({})
    assert (config.webhook_firewall, config.webhook_source_cidrs, config.webhook_rate_limit) == (
        True, None, 2000,
    )  # fmt: skip
    assert load_config(TEST_CONTEXT).webhook_source_cidrs == (
        "198.51.100.7/32", "203.0.113.0/24", "2001:db8:10::/48",
    )  # fmt: skip


@pytest.mark.parametrize(("cpu", "cap"), [(256, 256), (1024, 64), (4096, 16), (16384, 4)])
def test_default_max_runners_is_64_vcpus_worth(cpu: int, cap: int) -> None:
    assert default_max_runners(cpu) == cap
    memory = {256: 512, 1024: 2048, 4096: 8192, 16384: 32768}[cpu]
    config = load_config(
        {"profiles": [{"name": "p", "labels": ["x"], "cpu": cpu, "memory": memory}]}
    )
    assert config.profiles[0].lambda_entry("arn", "runner", "AROAEXAMPLE")["max_runners"] == cap


def test_explicit_max_runners_wins() -> None:
    config = load_config({"profiles": [{"name": "p", "labels": ["x"], "max_runners": 3}]})
    assert config.profiles[0].lambda_entry("arn", "runner", "AROAEXAMPLE")["max_runners"] == 3


def test_runner_version_alarm_per_profile(main_synth: Synth) -> None:
    """docs/lifecycle.md, "Runner versions": below 14 days left, or an unknown version, notifies."""
    names = [p["name"] for p in runner_profiles(main_synth)]
    alarms = [
        props
        for props in (
            a["Properties"] for a in main_synth.resources("AWS::CloudWatch::Alarm").values()
        )
        if any(m.get("Id") == "days" for m in props.get("Metrics", []))
    ]
    assert len(alarms) == len(names) >= 2
    topic = {"Ref": logical_id(main_synth, "AWS::SNS::Topic", "AlarmTopic")}
    seen = set()
    for props in alarms:
        assert (props["Threshold"], props["ComparisonOperator"]) == (14, "LessThanThreshold")
        assert props["AlarmActions"] == props["OKActions"] == [topic]
        (expression,) = [m for m in props["Metrics"] if "Expression" in m]
        assert expression["Expression"] == "IF(FILL(unknown, 0) > 0, 0, days)"
        stats = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
        assert {k: (v["Metric"]["MetricName"], v["Stat"]) for k, v in stats.items()} == {
            "days": ("RunnerVersionDaysLeft", "Minimum"),
            "unknown": ("RunnerVersionUnknown", "Maximum"),
        }
        profiles = {
            d["Value"] for s in stats.values() for d in s["Metric"]["Dimensions"]
            if d["Name"] == "profile"
        }  # fmt: skip
        assert len(profiles) == 1
        seen |= profiles
    assert seen == set(names)


def test_runner_events_are_counted_from_the_runner_logs(main_synth: Synth) -> None:
    filters = main_synth.resources("AWS::Logs::MetricFilter").values()
    counted = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"] for f in filters
    }
    for metric, event in (
        ("RunnerSelfUpdates", "self_update"),
        ("RunnerVersionRefused", "version_refused"),
    ):
        props = counted[metric]
        assert props["FilterPattern"] == f'{{ $.runner_event = "{event}" }}'
        (transform,) = props["MetricTransformations"]
        assert transform["Dimensions"] == [{"Key": "profile", "Value": "$.profile"}]
        assert transform["MetricNamespace"] == NAMESPACE
        assert props["LogGroupName"] == {
            "Ref": logical_id(main_synth, "AWS::Logs::LogGroup", "RunnerLogs")
        }
