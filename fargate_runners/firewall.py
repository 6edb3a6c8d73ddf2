"""``WebhookFirewall``: only our webhook's deliveries reach the webhook, rate-limited per hook.

Why a WAF web ACL and not an API resource policy: API Gateway evaluates AWS WAF
first, before every other access control, resource policies included ("AWS WAF is
your first line of defense ... evaluated before other access control features",
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html).
A request the web ACL blocks is answered 403 by WAF and never reaches the stage's
method, so it cannot take the stage throttle's tokens (rate 20/s, burst 40 by
default) that GitHub's deliveries depend on. A resource policy, by contrast, is
evaluated by API Gateway as part of authorising a request it has already admitted.
(That the stage throttle does not count WAF-blocked requests follows from that order;
AWS does not state it in so many words: docs/operations.md says how to confirm it in
an account.) The web ACL has three rules, in order:

1. ``BlockOutsideWebhookSources``: block unless the source address is in one of
   the two IP sets (IPv4, IPv6): GitHub's ``hooks`` ranges, or configured CIDRs.
2. ``BlockOtherHooks``: block unless ``User-Agent`` starts with ``GitHub-Hookshot/`` and
   ``X-GitHub-Hook-ID`` matches the regex pattern set of our recorded webhook
   (``lambda_fn/hook_filter.py`` keeps it equal to what ``fargate-runners setup``
   recorded). GitHub's ``hooks`` ranges deliver every GitHub customer's webhooks
   (https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/about-githubs-ip-addresses),
   so anyone can aim a webhook of theirs at our URL; this rule drops those deliveries
   before they are counted by rule 3 or reach the stage throttle. A request without the
   header matches no pattern and is blocked. Headers can be forged by whoever sends
   from an admitted address; only the Lambda's HMAC check authenticates.
3. ``RateLimitPerHook``: a rate-based rule aggregating on ``X-GitHub-Hook-ID``
   (``AggregateKeyType: CUSTOM_KEYS``; "each unique set of values for the aggregation
   keys ... is a separate aggregation instance",
   https://docs.aws.amazon.com/waf/latest/APIReference/API_RateBasedStatement.html) that
   blocks a hook sending more than ``rate_limit`` requests in 5 minutes. Per hook, not
   per source address: one address of GitHub's is shared by every customer, so a
   per-address limit let strangers push our own deliveries over it. Requests missing a
   custom key "are omitted from the rate-based rule evaluation"
   (https://docs.aws.amazon.com/waf/latest/APIReference/API_RateBasedStatementCustomKey.html),
   which is why rule 2, which blocks them, comes first. A rate-based rule counts only the
   requests that reach it, so deliveries blocked by rules 1 and 2 never count.

The IP sets start with ``GITHUB_HOOKS_SNAPSHOT`` (or the configured CIDRs); for
github.com a scheduled Lambda (``lambda_fn/refresh_sources.py``) replaces their
contents with the live ``/meta`` list, so a change on GitHub's side needs no
redeploy. CloudFormation only writes ``Addresses`` again when the template's list
changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from lambda_fn.hook_filter import HOOK_ID_HEADER, USER_AGENT_PREFIX
from lambda_fn.source_ranges import SourceRanges

from .rules import WAF_METRIC_SUFFIXES

__all__ = ["RATE_LIMIT_WINDOW_SECONDS", "WebhookFirewall"]

#: The rate-based rule's evaluation window (WAF allows 60, 120, 300 or 600 s).
RATE_LIMIT_WINDOW_SECONDS = 300


#: Metric name suffixes; rules.py checks at synth that the longest fits WAF's limit.
_ACL_METRIC, _OUTSIDE_METRIC, _OTHER_HOOKS_METRIC, _RATE_METRIC = WAF_METRIC_SUFFIXES
_NO_TRANSFORMATION = [wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]


def _header(name: str) -> wafv2.CfnWebACL.FieldToMatchProperty:
    # ``single_header`` is untyped JSON in the L1 API: CloudFormation's own key spelling.
    return wafv2.CfnWebACL.FieldToMatchProperty(single_header={"Name": name})


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )


class WebhookFirewall(Construct):
    """A regional web ACL with the three rules above, associated with ``stage``.

    ``hook_patterns`` is the pattern set's first content (``hook_filter.hook_patterns``);
    the hook filter Lambda owns it from then on (CloudFormation writes the list again only
    when this value changes).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: apigw.Stage,
        ranges: SourceRanges,
        rate_limit: int,
        metric_prefix: str,
        hook_patterns: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.ipv4_set, self.ipv6_set = (
            wafv2.CfnIPSet(
                self,
                f"Sources{version.capitalize()}",
                scope="REGIONAL",
                ip_address_version=version,
                addresses=list(addresses),
                description="Addresses GitHub delivers webhooks from, " + version.replace("V", "v"),
            )
            for version, addresses in (("IPV4", ranges.ipv4), ("IPV6", ranges.ipv6))
        )
        in_sources = wafv2.CfnWebACL.StatementProperty(
            or_statement=wafv2.CfnWebACL.OrStatementProperty(
                statements=[
                    wafv2.CfnWebACL.StatementProperty(
                        ip_set_reference_statement=wafv2.CfnWebACL.IPSetReferenceStatementProperty(
                            arn=ip_set.attr_arn
                        )
                    )
                    for ip_set in (self.ipv4_set, self.ipv6_set)
                ]
            )
        )
        self.hook_pattern_set = wafv2.CfnRegexPatternSet(
            self,
            "RecordedHooks",
            scope="REGIONAL",
            regular_expression_list=list(hook_patterns),
            description="X-GitHub-Hook-ID of the webhook fargate-runners setup recorded",
        )
        from_our_hook = wafv2.CfnWebACL.StatementProperty(
            and_statement=wafv2.CfnWebACL.AndStatementProperty(
                statements=[
                    wafv2.CfnWebACL.StatementProperty(
                        byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                            field_to_match=_header("user-agent"),
                            positional_constraint="STARTS_WITH",
                            search_string=USER_AGENT_PREFIX,
                            text_transformations=_NO_TRANSFORMATION,
                        )
                    ),
                    wafv2.CfnWebACL.StatementProperty(
                        regex_pattern_set_reference_statement=wafv2.CfnWebACL.RegexPatternSetReferenceStatementProperty(
                            arn=self.hook_pattern_set.attr_arn,
                            field_to_match=_header(HOOK_ID_HEADER),
                            text_transformations=_NO_TRANSFORMATION,
                        )
                    ),
                ]
            )
        )
        block = wafv2.CfnWebACL.RuleActionProperty(block={})
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="GitHub webhook: only the recorded webhook, rate-limited per hook",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(metric_prefix + _ACL_METRIC),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="BlockOutsideWebhookSources",
                    priority=0,
                    action=block,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=in_sources)
                    ),
                    visibility_config=_visibility(metric_prefix + _OUTSIDE_METRIC),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="BlockOtherHooks",
                    priority=1,
                    action=block,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=from_our_hook)
                    ),
                    visibility_config=_visibility(metric_prefix + _OTHER_HOOKS_METRIC),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerHook",
                    priority=2,
                    action=block,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="CUSTOM_KEYS",
                            custom_keys=[
                                wafv2.CfnWebACL.RateBasedStatementCustomKeyProperty(
                                    header=wafv2.CfnWebACL.RateLimitHeaderProperty(
                                        name=HOOK_ID_HEADER,
                                        text_transformations=_NO_TRANSFORMATION,
                                    )
                                )
                            ],
                            limit=rate_limit,
                            evaluation_window_sec=RATE_LIMIT_WINDOW_SECONDS,
                        )
                    ),
                    visibility_config=_visibility(metric_prefix + _RATE_METRIC),
                ),
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self,
            "StageAssociation",
            resource_arn=stage.stage_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )
        # The stage must exist before it can be associated.
        self.association.node.add_dependency(stage)

    @property
    def ip_set_arns(self) -> list[str]:
        return [self.ipv4_set.attr_arn, self.ipv6_set.attr_arn]
