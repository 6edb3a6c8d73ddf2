"""Alarms for what breaks silently: the reconciler, the retry queue, the webhook's answers.

They join the dashboard's alarms (``add_dashboard(extra_alarms=...)``), so they
notify the same topic under the same topic policy. Metrics (names and dimensions as
AWS documents them):

- Lambda ``Errors`` by ``FunctionName``
  (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html);
- SQS ``ApproximateAgeOfOldestMessage`` by ``QueueName``
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html);
- API Gateway ``4XXError``/``5XXError`` by ``ApiName`` and ``Stage``, whose ``Average``
  is the error *rate* (each request counts 0 or 1)
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-metrics-and-dimensions.html);
- the reconciler's own ``ReconcilerStepFailures`` by ``service`` (``lambda_fn/reconciler.py``).

The scheduled functions (reconciler, source-range refresh) are invoked asynchronously by
EventBridge, and Lambda retries a failed asynchronous invocation twice by default
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html): one
failed run would then count three ``Errors`` and trip "twice within three runs" alone.
Their asynchronous retries are off (``no_async_retries``): the next scheduled run is the
retry, and each run counts once.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .nag import Acknowledgment

__all__ = [
    "RECONCILER_STEP_FAILURES",
    "RETRY_AGE_THRESHOLD_SECONDS",
    "RUNNER_VERSION_DAYS_THRESHOLD",
    "WEBHOOK_4XX_RATE",
    "WEBHOOK_5XX_RATE",
    "no_async_retries",
    "operational_alarms",
    "reconciler_budget_alarm",
]

#: The metric ``lambda_fn/reconciler.py`` emits per failed step (and in total per run).
RECONCILER_STEP_FAILURES = "ReconcilerStepFailures"

#: Longer than the retry queue's longest delay (900 s, SQS's maximum) plus a consumer
#: run: a message this old is not waiting for its turn, nobody is consuming.
RETRY_AGE_THRESHOLD_SECONDS = 1800
#: Share of requests answered 4xx (401 wrong secret, 403 blocked, 429 throttled) in each
#: of two 5-minute periods.
WEBHOOK_4XX_RATE = 0.25
#: Share answered 5xx (the dispatcher could not launch or queue) in one 5-minute period.
WEBHOOK_5XX_RATE = 0.05
_FIVE_MINUTES = Duration.minutes(5)
#: Days before GitHub stops assigning jobs to a profile's runner version at which the alarm
#: fires: two weeks to build, test and roll out a new image.
RUNNER_VERSION_DAYS_THRESHOLD = 14


def operational_alarms(
    scope: Construct,
    *,
    reconciler: lambda_.IFunction,
    reconcile_interval: Duration,
    retry_queue: sqs.IQueue,
    api_name: str,
    stage_name: str,
    refresh_function: lambda_.IFunction | None,
    hook_filter_function: lambda_.IFunction | None = None,
    metrics_namespace: str,
    service_name: str,
) -> list[cloudwatch.Alarm]:
    """The alarms; ``refresh_function`` (the WAF source-list refresh) and
    ``hook_filter_function`` (the WAF's recorded-hook rule) add one more each."""
    alarms = [
        _failing(scope, "ReconcilerFailing", reconciler, reconcile_interval, "reconciler"),
        cloudwatch.Alarm(
            scope,
            "ReconcilerStepsFailing",
            alarm_description=(
                "Reconciler steps failed in two of its last three runs (a revoked or rotated "
                "GitHub token, a missing permission): the reconciler's log says which step "
                f"and why ({RECONCILER_STEP_FAILURES} by step on the dashboard)."
            ),
            # One data point per run with a failed step (its value: how many failed), so the
            # sample count is the number of such runs.
            metric=cloudwatch.Metric(
                namespace=metrics_namespace,
                metric_name=RECONCILER_STEP_FAILURES,
                dimensions_map={"service": service_name},
                statistic="SampleCount",
                period=Duration.minutes(3 * reconcile_interval.to_minutes()),
            ),
            threshold=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
        cloudwatch.Alarm(
            scope,
            "RetryQueueStuck",
            alarm_description=(
                f"A job has waited over {RETRY_AGE_THRESHOLD_SECONDS // 60} minutes on the retry "
                "queue: the retry consumer is not running or keeps failing (its Lambda's logs)."
            ),
            metric=retry_queue.metric_approximate_age_of_oldest_message(
                period=_FIVE_MINUTES, statistic="Maximum"
            ),
            threshold=RETRY_AGE_THRESHOLD_SECONDS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
        _error_rate(
            scope,
            "Webhook4xxRate",
            metric_name="4XXError",
            rate=WEBHOOK_4XX_RATE,
            periods=2,
            api_name=api_name,
            stage_name=stage_name,
            hint=(
                "401: the GitHub webhook's secret differs from the stack's; 429: the stage "
                "throttle (a flood, or webhook_throttle_* too low)."
            ),
        ),
        _error_rate(
            scope,
            "Webhook5xxRate",
            metric_name="5XXError",
            rate=WEBHOOK_5XX_RATE,
            periods=1,
            api_name=api_name,
            stage_name=stage_name,
            hint="The dispatcher answered 5xx: see the webhook Lambda's logs; the reconciler "
            "redelivers the failed deliveries.",
        ),
    ]
    if refresh_function is not None:
        alarms.append(
            _failing(
                scope,
                "SourceRangesRefreshFailing",
                refresh_function,
                Duration.hours(1),
                "refresh of GitHub's webhook source ranges (the WAF keeps the last good list)",
            )
        )
    if hook_filter_function is not None:
        alarms.append(
            _failing(
                scope,
                "HookFilterFailing",
                hook_filter_function,
                reconcile_interval,
                "update of the web ACL's recorded-hook rule (the WAF keeps the last good hook)",
            )
        )
    return alarms


def no_async_retries(function: lambda_.Function, interval: Duration) -> None:
    """A scheduled function: no asynchronous retries (module docstring), and an event
    older than one interval is dropped (the next run has started by then)."""
    function.configure_async_invoke(retry_attempts=0, max_event_age=interval)


def scheduled_function_acknowledgments(what: str) -> tuple[Acknowledgment, ...]:
    """cdk-nag Serverless findings of a scheduled function, and why they do not apply."""
    reason = (
        f"The scheduled {what} has no asynchronous retries and no failure destination on "
        "purpose: its event is a schedule tick with nothing in it to replay, the next "
        "scheduled run is the retry, and a failed run is counted as a Lambda error that "
        "the stack's 'failed twice within three runs' alarm reports to a person."
    )
    return (
        Acknowledgment(id="Serverless-LambdaDLQ", reason=reason),
        Acknowledgment(id="Serverless-LambdaAsyncFailureDestination", reason=reason),
    )


def scheduled_rule_acknowledgment() -> Acknowledgment:
    """A schedule's EventBridge target needs no DLQ (cdk-nag Serverless-EventBusDLQ)."""
    return Acknowledgment(
        id="Serverless-EventBusDLQ",
        reason=(
            "A rate schedule's target: an event EventBridge could not deliver is a tick "
            "with no content, replaced by the next one; a dead-letter queue would only "
            "hold timestamps. EventBridge retries delivery itself (retry_attempts), and "
            "runs that stop happening leave the queues and alarms of the work they do."
        ),
    )


def _failing(
    scope: Construct, construct_id: str, function: lambda_.IFunction, interval: Duration, what: str
) -> cloudwatch.Alarm:
    """Two failed runs within three scheduled runs (one failure may be a blip)."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=f"The {what} failed twice within three runs: see its Lambda's logs.",
        metric=function.metric_errors(
            period=Duration.minutes(3 * interval.to_minutes()), statistic="Sum"
        ),
        threshold=2,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def _error_rate(
    scope: Construct,
    construct_id: str,
    *,
    metric_name: str,
    rate: float,
    periods: int,
    api_name: str,
    stage_name: str,
    hint: str,
) -> cloudwatch.Alarm:
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=(
            f"More than {rate:.0%} of webhook requests answered {metric_name[:3]} "
            f"({periods} x 5 minutes). {hint}"
        ),
        metric=cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=metric_name,
            dimensions_map={"ApiName": api_name, "Stage": stage_name},
            statistic="Average",
            period=_FIVE_MINUTES,
        ),
        threshold=rate,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=periods,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def reconciler_budget_alarm(
    scope: Construct, *, namespace: str, service: str, reconcile_interval: Duration
) -> cloudwatch.Alarm:
    """The reconciler could not finish within its time budget on two of three runs.

    ``lambda_fn.reconciler`` emits ``ReconcilerOverBudget`` (dimension ``service``) on a run
    that left GitHub lookups for the next run or skipped steps; no data is a run that
    finished (``ReconcilerFailing`` covers a reconciler that does not run).
    """
    return cloudwatch.Alarm(
        scope,
        "ReconcilerOverBudget",
        alarm_description=(
            "The reconciler ran out of time on two of three runs: later steps (offline "
            "registrations, sealed-config cleanup) or lookups of stopped jobs are being "
            "left for later. Its log line 'reconciler ran out of time' says what was skipped "
            "(docs/performance.md, Reconciler)."
        ),
        metric=cloudwatch.Metric(
            namespace=namespace,
            metric_name="ReconcilerOverBudget",
            dimensions_map={"service": service},
            statistic="Sum",
            period=Duration.minutes(3 * reconcile_interval.to_minutes()),
        ),
        threshold=2,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def runner_version_alarms(
    scope: Construct, *, namespace: str, service: str, profiles: Sequence[str]
) -> list[cloudwatch.Alarm]:
    """Per profile: fewer than ``RUNNER_VERSION_DAYS_THRESHOLD`` days left before GitHub stops
    assigning jobs to its runner version, or a version nobody can watch.

    The reconciler emits, every run and per profile, ``RunnerVersionDaysLeft`` or
    ``RunnerVersionUnknown`` (``lambda_fn.runner_version``), each with ``profile`` and
    ``service``. The alarm reads ``IF(unknown > 0, 0, days)``: an unknown version counts as
    no days left. No data at all (the reconciler not running) is left to ``ReconcilerFailing``.
    """
    alarms: list[cloudwatch.Alarm] = []
    for index, profile in enumerate(profiles):

        def metric(name: str, statistic: str, profile: str = profile) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"profile": profile, "service": service},
                statistic=statistic,
                period=Duration.hours(1),
            )

        alarms.append(
            cloudwatch.Alarm(
                scope,
                f"RunnerVersionExpiring{index}",
                alarm_description=(
                    f"Profile {profile}: fewer than {RUNNER_VERSION_DAYS_THRESHOLD} days before "
                    "GitHub stops assigning jobs to its runner version, or the version is "
                    "unknown (0). Move the image to the newest runner release "
                    "(docs/lifecycle.md, Runner versions); `fargate-runners doctor` shows the "
                    "deadline."
                ),
                metric=cloudwatch.MathExpression(
                    expression="IF(FILL(unknown, 0) > 0, 0, days)",
                    using_metrics={
                        "days": metric("RunnerVersionDaysLeft", "Minimum"),
                        "unknown": metric("RunnerVersionUnknown", "Maximum"),
                    },
                    period=Duration.hours(1),
                    label=f"runner version days left ({profile})",
                ),
                threshold=RUNNER_VERSION_DAYS_THRESHOLD,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
    return alarms
