"""``fargate_runners/dashboard.py``: widgets and alarms, in a bare stack (no app synth, fast)."""

from __future__ import annotations

import json
from typing import Any

import pytest

aws_cdk = pytest.importorskip("aws_cdk")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_sns as sns  # noqa: E402
from aws_cdk import aws_sqs as sqs  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

from fargate_runners.dashboard import (  # noqa: E402
    IGNORE_REASONS,
    LAUNCH_FAILURE_KINDS,
    TASK_PHASES,
    add_dashboard,
)
from tests.kit.metrics import AWS_PUBLISHED, NAMESPACE, STACK_HAS_NO, emitted_by_lambda  # noqa: E402

SERVICE = "runner-webhook"


def build(*, with_queues: bool = True, with_topic: bool = True) -> Template:
    stack = Stack(App(), "DashboardTest")
    retry = sqs.Queue(stack, "Retry") if with_queues else None
    dlq = sqs.Queue(stack, "Dlq") if with_queues else None
    topic = sns.Topic(stack, "Alarms") if with_topic else None
    add_dashboard(
        stack,
        "Ops",
        namespace=NAMESPACE,
        service=SERVICE,
        function_names=["runner-webhook-fn", "runner-retry-fn"],
        api_name="runners-api",
        cluster_name="runners-cluster",
        retry_queue=retry,
        dlq=dlq,
        profiles=["default", "big"],
        alarm_topic=topic,
    )
    return Template.from_stack(stack)


def dashboard_body(template: Template) -> dict[str, Any]:
    """The dashboard JSON with CloudFormation references replaced by ``<Ref>`` markers."""
    (resource,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        parts = body["Fn::Join"][1]
        body = "".join(part if isinstance(part, str) else "<Ref>" for part in parts)
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    for item in body["widgets"]:
        if item["properties"].get("title") == title:
            return dict(item["properties"])
    raise AssertionError(
        f"no widget titled {title!r}: {[w['properties'].get('title') for w in body['widgets']]}"
    )


@pytest.fixture(scope="module")
def template() -> Template:
    return build()


def test_one_dashboard_with_every_widget(template: Template) -> None:
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    titles = {w["properties"].get("title") for w in dashboard_body(template)["widgets"]}
    assert {
        "Alarms",
        "Webhook deliveries",
        "Runners launched per profile",
        "Jobs ignored by reason",
        "Launch failures by kind",
        "Dispatch latency (ms)",
        "Retry and dead-letter queue depth",
        "Running runner tasks",
    } <= titles


def test_runners_launched_per_profile_carries_profile_and_service(template: Template) -> None:
    metrics = widget(dashboard_body(template), "Runners launched per profile")["metrics"]
    assert [m[:6] for m in metrics] == [
        [NAMESPACE, "RunnersLaunched", "profile", p, "service", SERVICE] for p in ("default", "big")
    ]


def test_ignored_and_failures_by_dimension(template: Template) -> None:
    body = dashboard_body(template)
    ignored = widget(body, "Jobs ignored by reason")["metrics"]
    assert [m[3] for m in ignored] == list(IGNORE_REASONS)
    assert all(
        m[1] == "JobsIgnored" and m[2] == "reason" and m[4:6] == ["service", SERVICE]
        for m in ignored
    )
    failures = widget(body, "Launch failures by kind")["metrics"]
    assert [m[3] for m in failures] == list(LAUNCH_FAILURE_KINDS)
    assert all(m[1] == "LaunchFailures" and m[2] == "kind" for m in failures)


def test_dispatch_latency_percentiles(template: Template) -> None:
    metrics = widget(dashboard_body(template), "Dispatch latency (ms)")["metrics"]
    assert [m[:4] for m in metrics] == [[NAMESPACE, "DispatchLatency", "service", SERVICE]] * 2
    assert [m[4]["stat"] for m in metrics] == ["p50", "p99"]


def test_queue_depth_and_running_tasks(template: Template) -> None:
    body = dashboard_body(template)
    queues = widget(body, "Retry and dead-letter queue depth")["metrics"]
    sqs_metrics = [m for m in queues if m[0] == "AWS/SQS"]
    assert len(sqs_metrics) == 2
    assert all(m[1] == "ApproximateNumberOfMessagesVisible" for m in sqs_metrics)
    running = widget(body, "Running runner tasks")["metrics"]
    assert running[0][:4] == [
        "ECS/ContainerInsights",
        "TaskCount",
        "ClusterName",
        "runners-cluster",
    ]


# -- every widget plots a metric that exists -------------------------------------------


def test_every_widget_metric_is_published_with_that_dimension_set(template: Template) -> None:
    published = {**AWS_PUBLISHED, **emitted_by_lambda()}
    plotted: list[tuple[str, str, set[str]]] = []
    for item in dashboard_body(template)["widgets"]:
        for metric in item["properties"].get("metrics", []):
            fields = [f for f in metric if not isinstance(f, dict)]
            if fields[0] == ".":  # a continuation row: same namespace as the previous one
                continue
            namespace, name, *pairs = fields
            plotted.append((namespace, name, set(pairs[0::2])))
    assert plotted
    for namespace, name, dimensions in plotted:
        assert (namespace, name) in published, f"{namespace} {name} is never published"
        assert dimensions in published[(namespace, name)], (namespace, name, dimensions)
        assert not dimensions & STACK_HAS_NO, (namespace, name, dimensions)


def test_dlq_alarm_fires_on_any_message_and_notifies(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Statistic": "Maximum",
            "AlarmActions": [{"Ref": Match.string_like_regexp("Alarms")}],
            "OKActions": [{"Ref": Match.string_like_regexp("Alarms")}],
        },
    )


def test_launch_failure_alarm_sums_kinds_over_five_minutes(template: Template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm", {"Properties": {"Threshold": 3}})
    (alarm,) = alarms.values()
    props = alarm["Properties"]
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    expression = next(m for m in props["Metrics"] if "Expression" in m)
    assert all(f"FILL({kind}, 0)" in expression["Expression"] for kind in LAUNCH_FAILURE_KINDS)
    stats = [m for m in props["Metrics"] if "MetricStat" in m]
    assert {m["Id"] for m in stats} == set(LAUNCH_FAILURE_KINDS)
    for m in stats:
        assert m["MetricStat"]["Period"] == 300
        dims = {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
        assert dims == {"kind": m["Id"], "service": SERVICE}
    assert props["AlarmActions"]


def test_without_queues_or_topic() -> None:
    template = build(with_queues=False, with_topic=False)
    template.resource_count_is("AWS::CloudWatch::Alarm", 1)  # launch failures only
    alarm = next(iter(template.find_resources("AWS::CloudWatch::Alarm").values()))
    assert "AlarmActions" not in alarm["Properties"]
    queues = widget(dashboard_body(template), "Retry and dead-letter queue depth")["metrics"]
    assert all(m[0] != "AWS/SQS" for m in queues)


def test_time_to_start_percentiles_per_profile(template: Template) -> None:
    body = dashboard_body(template)
    waits = widget(body, "Time to start per profile (s, queued -> runner took the job)")["metrics"]
    assert [(m[:6], m[6]["stat"]) for m in waits] == [
        ([NAMESPACE, "TimeToStart", "profile", p, "service", SERVICE], stat)
        for p in ("default", "big")
        for stat in ("p50", "p90")
    ]
    phases = widget(body, "Task start phases p90 (s)")["metrics"]
    assert [m[1] for m in phases] == list(TASK_PHASES) * 2
    assert all(m[6]["stat"] == "p90" for m in phases)


def test_task_phase_names_are_the_lambdas() -> None:
    from lambda_fn.start_time import PHASE_METRICS

    assert PHASE_METRICS == TASK_PHASES
