"""The dashboard, the alarms and where they notify.

One part of :class:`~fargate_runners.construct.FargateRunners`: :func:`add_observability`
builds its resources in the construct's own scope (``runners``), so logical ids do not
depend on how the code is split.
"""

from __future__ import annotations

from aws_cdk import Annotations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from .alarms import operational_alarms, reconciler_budget_alarm, runner_version_alarms
from .dashboard import add_dashboard
from .dispatch_state import DispatchState
from .dispatcher import Dispatcher
from .names import InstanceNames
from .props import (
    METRICS_NAMESPACE,
    FargateRunnersProps,
)
from .webhook_api import WebhookApi


def add_observability(
    runners: Construct,
    props: FargateRunnersProps,
    *,
    names: InstanceNames,
    cluster: ecs.ICluster,
    state: DispatchState,
    dispatcher: Dispatcher,
    webhook_api: WebhookApi,
) -> cloudwatch.Dashboard:
    """The dashboard of this instance's metrics, with every alarm on it (one topic)."""
    profiles = [p.name for p in props.profiles]
    api = webhook_api.api
    dashboard = add_dashboard(
        runners,
        "Dashboard",
        namespace=METRICS_NAMESPACE,
        service=names.service_name,
        function_names=[
            f.function_name
            for f in (
                dispatcher.webhook_function,
                dispatcher.retry_function,
                dispatcher.reconciler_function,
            )
        ],
        api_name=api.rest_api_name,
        cluster_name=cluster.cluster_name,
        retry_queue=state.retry_queue,
        dlq=state.dead_letter_queue,
        profiles=profiles,
        alarm_topic=props.alarm_topic,
        extra_alarms=[
            *operational_alarms(
                runners,
                reconciler=dispatcher.reconciler_function,
                reconcile_interval=props.reconcile_period,
                retry_queue=state.retry_queue,
                api_name=api.rest_api_name,
                stage_name=api.deployment_stage.stage_name,
                refresh_function=webhook_api.refresh_function,
                hook_filter_function=webhook_api.hook_filter_function,
                metrics_namespace=METRICS_NAMESPACE,
                service_name=names.service_name,
            ),
            reconciler_budget_alarm(
                runners,
                namespace=METRICS_NAMESPACE,
                service=names.service_name,
                reconcile_interval=props.reconcile_period,
            ),
            *runner_version_alarms(
                runners,
                namespace=METRICS_NAMESPACE,
                service=names.service_name,
                profiles=profiles,
            ),
        ],
    )
    if props.alarm_topic is None:
        # A warning, not an error: synth must work for a first look, tests and `cdk diff`
        # without an address. `cdk deploy --strict` turns it into a failure.
        Annotations.of(runners).add_warning_v2(
            "fargate-runners:no-alarm-destination",
            "NO ALARM REACHES A PERSON: pass FargateRunnersProps(alarm_topic=...), an SNS "
            "topic someone is subscribed to (the repository's app: set alarm_email or "
            "alarm_topic_arn in cdk.json). Without one the dead-letter queue, launch "
            "failure, reconciler, retry queue and webhook error alarms only change colour "
            "on the dashboard.",
        )
    return dashboard
