"""The dashboard, the alarms and where they notify.

One part of :class:`~fargate_runners.construct.FargateRunners`: the methods here build
their resources in the construct's own scope, so logical ids do not depend on how the code
is split.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    Annotations,
)

from .alarms import operational_alarms, reconciler_budget_alarm, runner_version_alarms
from .base import RunnersBase
from .config import (
    RunnerProfile,
)
from .dashboard import add_dashboard
from .props import (
    METRICS_NAMESPACE,
    FargateRunnersProps,
)


class ObservabilityPart(RunnersBase):
    # -- alarms and dashboard ----------------------------------------------------

    def _observability(self, profiles: Sequence[RunnerProfile], props: FargateRunnersProps) -> None:
        self.dashboard = add_dashboard(
            self,
            "Dashboard",
            namespace=METRICS_NAMESPACE,
            service=self.service_name,
            function_names=[
                f.function_name
                for f in (self.webhook_function, self.retry_function, self.reconciler_function)
            ],
            api_name=self.api.rest_api_name,
            cluster_name=self.cluster.cluster_name,
            retry_queue=self.retry_queue,
            dlq=self.dead_letter_queue,
            profiles=[p.name for p in profiles],
            alarm_topic=props.alarm_topic,
            extra_alarms=[
                *operational_alarms(
                    self,
                    reconciler=self.reconciler_function,
                    reconcile_interval=props.reconcile_interval,
                    retry_queue=self.retry_queue,
                    api_name=self.api.rest_api_name,
                    stage_name=self.api.deployment_stage.stage_name,
                    refresh_function=self.refresh_function,
                    hook_filter_function=self.hook_filter_function,
                    metrics_namespace=METRICS_NAMESPACE,
                    service_name=self.service_name,
                ),
                reconciler_budget_alarm(
                    self,
                    namespace=METRICS_NAMESPACE,
                    service=self.service_name,
                    reconcile_interval=props.reconcile_interval,
                ),
                *runner_version_alarms(
                    self,
                    namespace=METRICS_NAMESPACE,
                    service=self.service_name,
                    profiles=[p.name for p in profiles],
                ),
            ],
        )
        if props.alarm_topic is None:
            # A warning, not an error: synth must work for a first look, tests and `cdk diff`
            # without an address. `cdk deploy --strict` turns it into a failure.
            Annotations.of(self).add_warning_v2(
                "fargate-runners:no-alarm-destination",
                "NO ALARM REACHES A PERSON: pass FargateRunnersProps(alarm_topic=...), an SNS "
                "topic someone is subscribed to (the repository's app: set alarm_email or "
                "alarm_topic_arn in cdk.json). Without one the dead-letter queue, launch "
                "failure, reconciler, retry queue and webhook error alarms only change colour "
                "on the dashboard.",
            )
