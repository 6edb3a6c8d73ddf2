"""The webhook's front door: the REST API, its logging and the WAF web ACL.

One part of :class:`~fargate_runners.construct.FargateRunners`: :class:`WebhookApi`
builds its resources in the construct's own scope (``runners``), so logical ids do not
depend on how the code is split.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import (
    Duration,
    Stack,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lambda_fn.config import hook_path
from lambda_fn.hook_filter import hook_patterns
from lambda_fn.source_ranges import GITHUB_HOOKS_SNAPSHOT, SourceRanges

from .alarms import (
    no_async_retries,
    scheduled_function_acknowledgments,
    scheduled_rule_acknowledgment,
)
from .dispatch_state import DispatchState
from .dispatcher import Dispatcher
from .env_size import check_environment_size
from .firewall import WebhookFirewall
from .lambdas import LogGroups
from .nag import Acknowledgment, acknowledge, nag_flatten
from .names import InstanceNames
from .props import (
    API_STAGE,
    METRICS_NAMESPACE,
    FargateRunnersProps,
)


class WebhookApi:
    """``POST /webhook`` in front of the webhook Lambda, its logs and its web ACL.

    Inputs: the dispatcher (its webhook function, the factory and settings of the
    functions that keep the web ACL current) and its state (the token, the recorded
    hook). Outputs: :attr:`api`, :attr:`webhook_method`, :attr:`webhook_url`,
    :attr:`firewall` and the web ACL's functions (:attr:`refresh_function`,
    :attr:`refresh_role`, :attr:`hook_filter_function`), None where not created.
    """

    def __init__(
        self,
        runners: Construct,
        props: FargateRunnersProps,
        *,
        names: InstanceNames,
        dispatcher: Dispatcher,
        state: DispatchState,
    ) -> None:
        self.runners = runners
        self.names = names
        self.dispatcher = dispatcher
        self.state = state
        self.log_groups = LogGroups.of(props)
        self._api(props)
        self._firewall(props)

    def _api(self, props: FargateRunnersProps) -> None:
        logging = props.api_gateway_logging != "off"
        self.api = apigw.RestApi(
            self.runners,
            "Api",
            # API Gateway metrics are keyed on the API *name*: CDK's default ("Api") would
            # merge with every other API of that name in the region.
            rest_api_name=f"{self.names.name_prefix}-webhook",
            description="GitHub webhook endpoint for ephemeral Fargate runners",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The account-wide API Gateway logging role (AWS::ApiGateway::Account) only when
            # asked for: it is one setting per region, shared by every API in the account.
            cloud_watch_role=props.api_gateway_logging == "create",
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=props.webhook_throttle_rate,
                throttling_burst_limit=props.webhook_throttle_burst,
                tracing_enabled=True,
                metrics_enabled=True,
                data_trace_enabled=False,
                **(self._api_logging_options() if logging else {}),
            ),
        )
        if logging:
            # API Gateway would create API-Gateway-Execution-Logs_<id>/<stage> itself, outside
            # the stack and without expiry; created here first, it has both.
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
            execution_logs = self.log_groups.create(
                self.runners,
                "ApiExecutionLogs",
                log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{API_STAGE}",
            )
            self.api.deployment_stage.node.add_dependency(execution_logs)
        else:
            reason = (
                "api_gateway_logging is off: API Gateway access and execution logs need the "
                "account-wide API Gateway CloudWatch role, which this stack does not set unless "
                "asked. Every delivery that reaches the Lambda is logged there with its outcome."
            )
            acknowledge(
                self.api.deployment_stage,
                Acknowledgment(id="AwsSolutions-APIG1", reason=reason),
                Acknowledgment(id="AwsSolutions-APIG6", reason=reason),
                Acknowledgment(id="Serverless-APIGWAccessLogging", reason=reason),
            )
        # The stack decides its outputs (WebhookUrl); drop the RestApi's automatic one.
        self.api.node.try_remove_child("Endpoint")
        webhook = self.api.root.add_resource("webhook")
        self.webhook_method = webhook.add_method(
            "POST",
            apigw.LambdaIntegration(
                self.dispatcher.webhook_function, proxy=True, allow_test_invoke=False
            ),
            authorization_type=apigw.AuthorizationType.NONE,
        )
        method_reason = (
            "GitHub webhooks cannot sign requests with IAM (SigV4) or present Cognito tokens; "
            "every request is authenticated in the Lambda by the X-Hub-Signature-256 HMAC "
            "over the body with the webhook secret, and unsigned requests get 401."
        )
        acknowledge(
            self.webhook_method,
            Acknowledgment(id="AwsSolutions-APIG4", reason=method_reason),
            Acknowledgment(id="AwsSolutions-COG4", reason=method_reason),
        )
        acknowledge(
            self.api,
            Acknowledgment(
                id="AwsSolutions-APIG2",
                reason=(
                    "The body must reach the Lambda byte-for-byte for HMAC verification, and a "
                    "bad signature must answer 401 before any body validation (400); the Lambda "
                    "validates the payload after verifying the signature."
                ),
            ),
        )
        if not props.webhook_firewall:
            acknowledge(
                self.api.deployment_stage,
                Acknowledgment(
                    id="AwsSolutions-APIG3",
                    reason=(
                        "The operator turned the web ACL off (webhook_firewall: false). Without "
                        "it anyone who knows the URL shares the stage throttle with GitHub's "
                        "deliveries and can make them fail with 429 (the reconciler redelivers "
                        "them); the HMAC check only stops forged jobs, not the flood."
                    ),
                ),
            )
        cloud_watch_role = self.api.node.try_find_child("CloudWatchRole")
        if cloud_watch_role is not None:
            policy_arn = nag_flatten(
                Stack.of(self.runners).resolve(
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    ).managed_policy_arn
                )
            )
            acknowledge(
                cloud_watch_role,
                Acknowledgment(
                    id=f"AwsSolutions-IAM4[Policy::{policy_arn}]",
                    reason=(
                        "API Gateway's account-level CloudWatch role needs the AWS-managed "
                        "AmazonAPIGatewayPushToCloudWatchLogs policy to write access and "
                        "execution logs."
                    ),
                ),
            )

    def _firewall(self, props: FargateRunnersProps) -> None:
        """The web ACL (``firewall.py``) and, for github.com, the refresh of its list."""
        self.firewall: WebhookFirewall | None = None
        self.refresh_function: lambda_.Function | None = None
        self.refresh_role: iam.Role | None = None
        self.hook_filter_function: lambda_.Function | None = None
        if not props.webhook_firewall:
            return
        # Props without webhook_source_cidrs for a GitHub other than github.com never get
        # here: FargateRunnersProps refuses them (fargate_runners/config.py).
        fixed = props.webhook_source_cidrs is not None
        cidrs = props.webhook_source_cidrs if fixed else GITHUB_HOOKS_SNAPSHOT
        self.firewall = WebhookFirewall(
            self.runners,
            "WebhookFirewall",
            stage=self.api.deployment_stage,
            ranges=SourceRanges.parse(cidrs or (), "webhook_source_cidrs"),
            rate_limit=props.webhook_rate_limit,
            metric_prefix=self.names.name_prefix,
            hook_patterns=hook_patterns(hook_path(props.github_hook_path or "")),
        )
        self._hook_filter(props)
        if fixed:
            return
        # The dispatcher's settings (lambda_fn/refresh_sources.py authenticates as it does).
        environment = {
            **self.dispatcher.settings_environment,
            "SOURCE_IPV4_SET_ARN": self.firewall.ipv4_set.attr_arn,
            "SOURCE_IPV6_SET_ARN": self.firewall.ipv6_set.attr_arn,
        }
        check_environment_size(environment, self.refresh_environment_samples())
        self.refresh_function, role = self.dispatcher.lambdas.create(
            "SourceRangesFunction",
            handler="lambda_fn.refresh_sources.handler",
            description="Keeps the web ACL's IP sets equal to GitHub's webhook source ranges",
            environment=environment,
            timeout=60,
        )
        # /meta with the deployment's token: its own rate limit, not the 60 requests an
        # hour that every Lambda behind the same egress address shares unauthenticated.
        self.state.grant_github_token(role)
        self.refresh_role = role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReplaceWebhookSourceRanges",
                actions=["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
                resources=self.firewall.ip_set_arns,
            )
        )
        acknowledge(
            role,
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="'*' is only the X-Ray statement added by active tracing (X-Ray has no "
                "resource-level permissions).",
            ),
        )
        self.refresh_rule = events.Rule(
            self.runners,
            "SourceRangesSchedule",
            description="Refreshes GitHub's webhook source ranges in the web ACL",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[targets.LambdaFunction(self.refresh_function, retry_attempts=2)],
        )
        no_async_retries(self.refresh_function, Duration.hours(1))
        acknowledge(self.refresh_function, *scheduled_function_acknowledgments("refresh"))
        acknowledge(self.refresh_rule, scheduled_rule_acknowledgment())
        # It loads the dispatcher's settings, profiles included.
        self.dispatcher.grant_profile_parameters(role)

    def _hook_filter(self, props: FargateRunnersProps) -> None:
        """The Lambda that keeps the web ACL's hook rule on the recorded webhook.

        It runs when the recorded-webhook parameter changes (SSM sends "Parameter Store
        Change" to EventBridge directly, best effort:
        https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-ssm.html) and, as the
        backstop for a lost event and for the first deploy over an already-recorded
        hook, every reconcile interval. Its role may read that one parameter and read and
        replace that one pattern set; nothing else.
        """
        assert self.firewall is not None
        pattern_set = self.firewall.hook_pattern_set
        hook_filter, role = self.dispatcher.lambdas.create(
            "HookFilterFunction",
            handler="lambda_fn.hook_filter.handler",
            description="Keeps the web ACL's hook rule on the webhook fargate-runners setup "
            "recorded",
            environment={
                "HOOK_PATTERN_SET_ARN": pattern_set.attr_arn,
                "GITHUB_HOOK_PATH": props.github_hook_path or "",
                "GITHUB_HOOK_PARAMETER": self.state.hook_parameter.parameter_name,
                "POWERTOOLS_SERVICE_NAME": self.names.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            timeout=30,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReplaceRecordedHookPatterns",
                actions=["wafv2:GetRegexPatternSet", "wafv2:UpdateRegexPatternSet"],
                resources=[pattern_set.attr_arn],
            )
        )
        self.state.grant_hook_parameter(role)
        acknowledge(
            role,
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="'*' is only the X-Ray statement added by active tracing (X-Ray has no "
                "resource-level permissions).",
            ),
        )
        self.hook_filter_function = hook_filter
        target = targets.LambdaFunction(hook_filter, retry_attempts=2)
        self.hook_filter_rules = [
            events.Rule(
                self.runners,
                "HookFilterOnRecord",
                description="Updates the web ACL's hook rule when setup records a webhook",
                event_pattern=events.EventPattern(
                    source=["aws.ssm"],
                    detail_type=["Parameter Store Change"],
                    detail={"name": [self.state.hook_parameter.parameter_name]},
                ),
                targets=[target],
            ),
            events.Rule(
                self.runners,
                "HookFilterSchedule",
                description="Re-applies the recorded webhook to the web ACL's hook rule",
                schedule=events.Schedule.rate(props.reconcile_period),
                targets=[target],
            ),
        ]
        no_async_retries(hook_filter, props.reconcile_period)
        acknowledge(hook_filter, *scheduled_function_acknowledgments("hook filter"))
        for rule in self.hook_filter_rules:
            acknowledge(rule, scheduled_rule_acknowledgment())

    def refresh_environment_samples(self) -> dict[str, str]:
        """The dispatcher's samples plus the two IP set ARNs (CloudFormation names a set
        ``<logical id>-<random>`` when it has no ``Name``; WAF ids are UUIDs)."""
        sample = "arn:aws:wafv2:ap-southeast-2:123456789012:regional/ipset/{}/{}".format
        name = f"{self.names.name_prefix}-RunnersWebhookFirewallSourcesIpv4{'A' * 8}-{'B' * 12}"
        arn = sample(name, "00000000-0000-0000-0000-000000000000")
        return {
            **self.dispatcher.environment_samples,
            "SOURCE_IPV4_SET_ARN": arn,
            "SOURCE_IPV6_SET_ARN": arn,
        }

    def _api_logging_options(self) -> dict[str, Any]:
        """Access logs (JSON, to a log group of this stack) and ERROR execution logs."""
        return {
            "access_log_destination": apigw.LogGroupLogDestination(
                self.log_groups.create(self.runners, "ApiAccessLogs")
            ),
            "access_log_format": apigw.AccessLogFormat.json_with_standard_fields(
                caller=True,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=True,
            ),
            "logging_level": apigw.MethodLoggingLevel.ERROR,
        }

    @property
    def webhook_url(self) -> str:
        """The URL to configure as the GitHub webhook's Payload URL."""
        return self.api.url_for_path("/webhook")
