"""Keep the web ACL's hook rule equal to the webhook ``fargate-runners setup`` recorded.

GitHub delivers every customer's webhooks from the same ``hooks`` ranges, so the source
address cannot tell our deliveries from a stranger's webhook aimed at our URL. Each
delivery names its webhook in ``X-GitHub-Hook-ID`` (GitHub, "Delivery headers":
https://docs.github.com/webhooks/webhook-events-and-payloads#delivery-headers). The web
ACL (``fargate_runners/firewall.py``) admits a request only when that header matches a
pattern of the WAF regex pattern set this module maintains, and rate-limits per hook id.

The hook comes from ``GITHUB_HOOK_PATH`` when set, else from the SSM parameter that
``setup`` writes (``GITHUB_HOOK_PARAMETER``), the same precedence as the reconciler's
redelivery (``lambda_fn.reconciler.webhook_path``):

- ``repos/O/R/hooks/ID`` or ``orgs/O/hooks/ID``: exactly ``^ID$``;
- nothing recorded yet: :data:`NOT_RECORDED_PATTERN`, which no hook id (digits) matches,
  so the web ACL admits no delivery at all until ``setup`` has run (fail closed; no hook
  of ours exists before it, except one made by hand, which is recorded with
  ``aws ssm put-parameter``, docs/operations.md);
- ``app/hook`` (a GitHub App's own webhook): :data:`ANY_HOOK_PATTERN`. GitHub's REST API
  does not return an App webhook's id (``GET /app/hook/config`` has no ``id``, delivery
  items carry none: https://docs.github.com/en/rest/apps/webhooks), so any hook is admitted
  and only the per-hook rate limit applies (docs/operations.md says what that leaves).

Only the HMAC authenticates a delivery: headers can be forged by anyone who can send from
GitHub's ranges, which is GitHub itself. This rule shapes traffic, nothing more.

Runs on every change of the parameter (EventBridge "Parameter Store Change") and on a
schedule as a backstop. ``UpdateRegexPatternSet`` replaces the whole set and needs the
``LockToken`` of a ``GetRegexPatternSet``; the description is passed back unchanged, as
the call "completely replaces the mutable specifications"
(https://docs.aws.amazon.com/waf/latest/APIReference/API_UpdateRegexPatternSet.html).

Environment: ``HOOK_PATTERN_SET_ARN``, ``GITHUB_HOOK_PATH``, ``GITHUB_HOOK_PARAMETER``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from lambda_fn import aws
from lambda_fn.config import APP_HOOK_PATH, HOOK_NOT_RECORDED, hook_path
from lambda_fn.errors import ConfigError
from lambda_fn.observability import count, logger, metrics

#: Matches no hook id (ids are digits): the set's content until a hook is recorded.
NOT_RECORDED_PATTERN = "^not-recorded$"
#: Any hook id: for a GitHub App's own webhook, whose id the API does not reveal.
ANY_HOOK_PATTERN = "^[0-9]{1,20}$"
#: The header the web ACL matches and rate-limits on (WAF compares names case-insensitively).
HOOK_ID_HEADER = "x-github-hook-id"
#: What GitHub's deliveries send as ``User-Agent`` (same GitHub page).
USER_AGENT_PREFIX = "GitHub-Hookshot/"

_PATTERN_SET_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:(?P<scope>regional|global)/regexpatternset/"
    r"(?P<name>[\w-]{1,128})/(?P<id>[0-9a-f-]{36})$"
)
_HOOK_ID = re.compile(r"/hooks/(\d+)$")


def hook_patterns(path: str | None) -> tuple[str, ...]:
    """The pattern set's content for a recorded webhook path (None: nothing recorded)."""
    if path is None:
        return (NOT_RECORDED_PATTERN,)
    if path == APP_HOOK_PATH:
        return (ANY_HOOK_PATTERN,)
    match = _HOOK_ID.search(path)
    if match is None:  # hook_path() accepts nothing else
        raise ConfigError(f"not a webhook path: {path[:200]!r}")
    return (f"^{match[1]}$",)


def admits(patterns: tuple[str, ...] | list[str], hook_id: str | None) -> bool:
    """Whether the web ACL's pattern set matches a request's ``X-GitHub-Hook-ID``.

    WAF: a regex pattern set statement matches when any pattern matches the field, and a
    missing header matches nothing; the local firewall model uses this too.
    """
    return hook_id is not None and any(re.search(p, hook_id) for p in patterns)


@dataclass(frozen=True)
class PatternSet:
    """One WAF regex pattern set, as the wafv2 API addresses it."""

    name: str
    id: str
    scope: str

    @classmethod
    def from_arn(cls, arn: str, variable: str = "HOOK_PATTERN_SET_ARN") -> PatternSet:
        match = _PATTERN_SET_ARN.match(arn)
        if match is None:
            raise ConfigError(f"{variable} is not a WAF regex pattern set ARN: {arn[:300]!r}")
        scope = "REGIONAL" if match["scope"] == "regional" else "CLOUDFRONT"
        return cls(match["name"], match["id"], scope)

    def replace(self, waf: Any, patterns: tuple[str, ...]) -> bool:
        """Make the set hold exactly ``patterns``; False when it already did."""
        for attempt in (1, 2):
            current = waf.get_regex_pattern_set(Name=self.name, Scope=self.scope, Id=self.id)
            found = current["RegexPatternSet"]
            existing = sorted(r["RegexString"] for r in found.get("RegularExpressionList", []))
            if existing == sorted(patterns):
                return False
            description = found.get("Description")
            try:
                waf.update_regex_pattern_set(
                    Name=self.name,
                    Scope=self.scope,
                    Id=self.id,
                    **({"Description": description} if description else {}),
                    RegularExpressionList=[{"RegexString": p} for p in patterns],
                    LockToken=current["LockToken"],
                )
                return True
            except Exception as exc:
                if aws.error_code(exc) != "WAFOptimisticLockException" or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def recorded_path() -> str | None:
    """``GITHUB_HOOK_PATH``, else the recorded parameter's value (None: not recorded)."""
    fixed = hook_path(os.environ.get("GITHUB_HOOK_PATH", ""))
    name = os.environ.get("GITHUB_HOOK_PARAMETER", "").strip()
    if fixed is not None or not name:
        return fixed
    value = str(aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]).strip()
    if value == HOOK_NOT_RECORDED:
        return None
    return hook_path(value, f"SSM parameter {name}")


def sync() -> dict[str, Any]:
    """One sync; returns what the set now holds (also logged and counted)."""
    target = PatternSet.from_arn(os.environ.get("HOOK_PATTERN_SET_ARN", ""))
    path = recorded_path()
    patterns = hook_patterns(path)
    changed = target.replace(aws.client("wafv2"), patterns)
    result = {"changed": changed, "hook": path or "not recorded", "patterns": list(patterns)}
    if changed:
        count("WebhookFilterUpdated")
        logger.warning("recorded webhook changed; web ACL hook rule updated", extra=result)
    else:
        logger.info("web ACL hook rule unchanged", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge handler (parameter change or schedule). Raises rather than guess."""
    return sync()
