"""CloudWatch dashboard and alarms for the runner webhook.

Every widget plots a metric that exists for this stack (``tests/infra/test_dashboard.py``
checks each name and dimension set against what AWS documents and what the Lambda
emits). The metric names and dimensions match what ``lambda_fn/observability.py``
emits as EMF (checked by running deliveries through the local endpoint):

- ``Deliveries``, ``DeliveriesRejected``, ``DuplicateDeliveries``,
  ``JobsQueuedForRetry``, ``JobsDeadLettered`` and ``DispatchLatency`` (ms) come
  from the shared ``Metrics`` object: one dimension, ``service``.
- ``TimeToStart`` and the task phases ``TaskProvisioning``, ``ImagePull``,
  ``ContainerStart`` (seconds, ``profile``; ``lambda_fn/start_time.py``),
  ``RunnersLaunched`` and ``JobsWaitingForCapacity`` (``profile``), ``JobsIgnored``
  (``reason``) and ``LaunchFailures`` (``kind``) are ``single_metric`` s: their own dimension
  *plus* ``service`` (Powertools adds it from ``POWERTOOLS_SERVICE_NAME``).

CloudWatch matches dimensions exactly, so a widget that left ``service`` out
would show nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

__all__ = [
    "IGNORE_REASONS",
    "LAUNCH_FAILURE_KINDS",
    "LAUNCH_FAILURE_THRESHOLD",
    "TASK_PHASES",
    "add_dashboard",
]

IGNORE_REASONS = ("event", "action", "stale", "repository", "labels", "policy")
LAUNCH_FAILURE_KINDS = ("transient", "permanent", "config")
#: Where a task's start went, in order (``lambda_fn.start_time.PHASE_METRICS``).
TASK_PHASES = ("TaskProvisioning", "ImagePull", "ContainerStart")
#: Launch failures (all kinds) in five minutes that raise the alarm.
LAUNCH_FAILURE_THRESHOLD = 3

_MINUTE = Duration.minutes(1)
_FIVE_MINUTES = Duration.minutes(5)
_WIDTH = 8  # three widgets per 24-column row


def allow_alarms_to_publish(topic: sns.ITopic, alarms: Sequence[cloudwatch.IAlarm]) -> None:
    """Let CloudWatch publish to ``topic`` for exactly these alarms of this account.

    A topic policy replaces the topic's default policy, so once the TLS-only deny
    exists nothing else may publish; CloudWatch alarms publish as the service
    principal ``cloudwatch.amazonaws.com`` with the alarm's ARN as ``aws:SourceArn``
    (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger,
    https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
    For an imported topic this is a no-op: its owner writes its policy.
    """
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowThisStacksAlarmsToPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "ArnEquals": {"aws:SourceArn": [alarm.alarm_arn for alarm in alarms]},
                "StringEquals": {"aws:SourceAccount": Stack.of(topic).account},
            },
        )
    )


def add_dashboard(
    scope: Construct,
    id: str,
    *,
    namespace: str,
    service: str,
    function_names: Sequence[str],
    api_name: str,
    cluster_name: str,
    retry_queue: sqs.IQueue | None,
    dlq: sqs.IQueue | None,
    profiles: Sequence[str],
    alarm_topic: sns.ITopic | None,
    extra_alarms: Sequence[cloudwatch.IAlarm] = (),
) -> cloudwatch.Dashboard:
    """A dashboard of the webhook's deliveries, launches and queues, plus two alarms.

    Alarms (each notifies ``alarm_topic`` on ALARM and OK when given):
    dead-letter queue not empty (when ``dlq`` is given),
    ``LaunchFailures`` (all kinds) >= 3 in 5 minutes, and ``extra_alarms``
    (``fargate_runners/alarms.py``).
    """
    container = Construct(scope, id)

    def emf(name: str, label: str, statistic: str = "Sum", **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map={**dimensions, "service": service},
            statistic=statistic,
            period=_MINUTE,
            label=label,
        )

    alarms: list[cloudwatch.IAlarm] = []
    if dlq is not None:
        alarms.append(
            cloudwatch.Alarm(
                container,
                "DeadLetterQueueAlarm",
                alarm_description=(
                    "Jobs could not be launched and were parked in the dead-letter queue: read "
                    "the messages' reason, fix, replay (docs/operations.md)."
                ),
                metric=dlq.metric_approximate_number_of_messages_visible(
                    period=_MINUTE, statistic="Maximum"
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
    failures = {
        kind: emf("LaunchFailures", kind, kind=kind).with_(period=_FIVE_MINUTES)
        for kind in LAUNCH_FAILURE_KINDS
    }
    failure_total = cloudwatch.MathExpression(
        expression=" + ".join(f"FILL({kind}, 0)" for kind in LAUNCH_FAILURE_KINDS),
        using_metrics=dict(failures),
        label="launch failures (all kinds)",
        period=_FIVE_MINUTES,
    )
    alarms.append(
        cloudwatch.Alarm(
            container,
            "LaunchFailuresAlarm",
            alarm_description=(
                f"{LAUNCH_FAILURE_THRESHOLD} or more runner launches failed within 5 minutes "
                "(GitHub, ECS capacity or configuration): see the webhook Lambda's logs."
            ),
            metric=failure_total,
            threshold=LAUNCH_FAILURE_THRESHOLD,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    )
    alarms.extend(extra_alarms)
    if alarm_topic is not None:
        action = cw_actions.SnsAction(alarm_topic)
        for alarm in alarms:
            if isinstance(alarm, cloudwatch.Alarm):
                alarm.add_alarm_action(action)
                alarm.add_ok_action(action)
        allow_alarms_to_publish(alarm_topic, alarms)

    dashboard = cloudwatch.Dashboard(container, "Dashboard", default_interval=Duration.hours(3))
    api_metrics = [
        cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map={"ApiName": api_name},
            statistic="Sum",
            period=_MINUTE,
            label=f"API {label}",
        )
        for name, label in (("Count", "requests"), ("4XXError", "4xx"), ("5XXError", "5xx"))
    ]
    dashboard.add_widgets(
        cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms, width=24, height=3)
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Webhook deliveries",
            left=[
                emf("Deliveries", "deliveries"),
                emf("DeliveriesRejected", "rejected (400)"),
                emf("DuplicateDeliveries", "duplicates"),
            ],
            right=api_metrics,
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Runners launched per profile",
            left=[emf("RunnersLaunched", p, profile=p) for p in profiles],
            stacked=True,
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Jobs ignored by reason",
            left=[emf("JobsIgnored", r, reason=r) for r in IGNORE_REASONS],
            stacked=True,
            width=_WIDTH,
        ),
    )
    queue_metrics = [
        queue.metric_approximate_number_of_messages_visible(
            period=_MINUTE, statistic="Maximum", label=label
        )
        for queue, label in ((retry_queue, "retry queue"), (dlq, "dead-letter queue"))
        if queue is not None
    ]
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Launch failures by kind",
            left=[emf("LaunchFailures", k, kind=k) for k in LAUNCH_FAILURE_KINDS],
            left_annotations=[
                cloudwatch.HorizontalAnnotation(
                    value=LAUNCH_FAILURE_THRESHOLD, label="alarm (per 5 min)"
                )
            ],
            stacked=True,
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Dispatch latency (ms)",
            left=[
                emf("DispatchLatency", "p50", statistic="p50"),
                emf("DispatchLatency", "p99", statistic="p99"),
            ],
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Retry and dead-letter queue depth",
            left=[
                *queue_metrics,
                emf("JobsQueuedForRetry", "queued for retry"),
                *(
                    emf("JobsWaitingForCapacity", f"{p} at max_runners", profile=p)
                    for p in profiles
                ),
            ],
            width=_WIDTH,
        ),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Time to start per profile (s, queued -> runner took the job)",
            left=[
                emf("TimeToStart", f"{p} {stat}", statistic=stat, profile=p).with_(
                    period=_FIVE_MINUTES
                )
                for p in profiles
                for stat in ("p50", "p90")
            ],
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Task start phases p90 (s)",
            left=[
                emf(phase, f"{p} {phase}", statistic="p90", profile=p).with_(period=_FIVE_MINUTES)
                for p in profiles
                for phase in TASK_PHASES
            ],
            stacked=True,
            width=_WIDTH,
        ),
        cloudwatch.SingleValueWidget(
            title="Time to start p90, last 3 h (s)",
            metrics=[
                emf("TimeToStart", p, statistic="p90", profile=p).with_(period=Duration.hours(3))
                for p in profiles
            ],
            width=_WIDTH,
        ),
    )
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Running runner tasks",
            left=[
                # Container Insights publishes RunningTaskCount per *service* only; a
                # cluster of standalone tasks has TaskCount by ClusterName
                # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html).
                cloudwatch.Metric(
                    namespace="ECS/ContainerInsights",
                    metric_name="TaskCount",
                    dimensions_map={"ClusterName": cluster_name},
                    statistic="Maximum",
                    period=_MINUTE,
                    label="running tasks",
                )
            ],
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Webhook Lambda errors and throttles",
            left=[
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name=metric,
                    dimensions_map={"FunctionName": name},
                    statistic="Sum",
                    period=_MINUTE,
                    label=f"{name} {metric.lower()}",
                )
                for name in function_names
                for metric in ("Errors", "Throttles")
            ],
            width=_WIDTH,
        ),
        cloudwatch.GraphWidget(
            title="Webhook Lambda duration p99 (ms)",
            left=[
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name="Duration",
                    dimensions_map={"FunctionName": name},
                    statistic="p99",
                    period=_MINUTE,
                    label=name,
                )
                for name in function_names
            ],
            width=_WIDTH,
        ),
    )
    return dashboard
