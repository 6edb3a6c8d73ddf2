"""Scheduled: keep the WAF IP sets equal to GitHub's current webhook source ranges.

GitHub changes the addresses it delivers webhooks from (``hooks`` in ``GET
/meta``); the web ACL in front of the webhook allows only those, so the list
must follow without a redeploy. Each run reads ``/meta`` (through the same client
as every other GitHub call, with the deployment's token: see below), checks the list
(``SourceRanges``: valid CIDRs, none broader than /8 or /16, not empty) and
replaces the two IP sets' addresses when they differ.

Fails closed: a ``/meta`` that cannot be read or does not look like a list of
senders changes nothing (the last good list stays in force) and the run fails,
which the ``SourceRangesRefreshFailing`` alarm reports.

Why a token: ``/meta`` needs none, but an unauthenticated request counts against
60 requests an hour per source address (GitHub, "Rate limits for the REST API":
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api),
and a Lambda outside a VPC shares its egress addresses with other Lambda
customers. The PAT (``lambda_fn.github_auth.token_provider``: the function has
the dispatcher's settings), or an installation token of the GitHub App, gets the
token's own limit. ``/meta`` needs no permission (the "Fine-grained access
tokens" section of https://docs.github.com/en/rest/meta/meta#get-github-meta-information),
so the App's token is minted with ``metadata: read`` only, for the first
repository (or organisation) the settings name (``lambda_fn.scopes``).
Before ``fargate-runners setup`` there is no token (an empty PAT secret, an App
key without its private key, an App not installed yet), and a token GitHub
refuses (401) must not stop the refresh either: the run then reads ``/meta``
without one, as before, and logs why. An unreachable GitHub fails the run.

Environment: the dispatcher's (``lambda_fn.config``; without it, unauthenticated),
``SOURCE_IPV4_SET_ARN``, ``SOURCE_IPV6_SET_ARN``
(``arn:aws:wafv2:REGION:ACCOUNT:regional/ipset/NAME/ID``). WAF's
``UpdateIPSet`` replaces the whole list and needs the ``LockToken`` of a
``GetIPSet`` (https://docs.aws.amazon.com/waf/latest/APIReference/API_UpdateIPSet.html);
a concurrent change (``WAFOptimisticLockException``) is retried once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambda_fn import aws
from lambda_fn.contract import DEFAULT_GITHUB_API_URL
from lambda_fn.errors import (
    ConfigError,
    GitHubPermanentError,
    SecretMissingError,
    SecretUnavailableError,
)
from lambda_fn.github import GitHubClient, TokenProvider
from lambda_fn.observability import count, logger, metrics
from lambda_fn.source_ranges import SourceRanges

if TYPE_CHECKING:
    from lambda_fn.config import Settings

#: One refresh's GitHub budget (each client: the authenticated one, then without a token).
META_BUDGET_SECONDS = 20

_IP_SET_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:(?P<scope>regional|global)/ipset/"
    r"(?P<name>[\w-]{1,128})/(?P<id>[0-9a-f-]{36})$"
)


@dataclass(frozen=True)
class IpSet:
    """One WAF IP set, as the wafv2 API addresses it."""

    name: str
    id: str
    scope: str

    @classmethod
    def from_arn(cls, arn: str, variable: str) -> IpSet:
        match = _IP_SET_ARN.match(arn)
        if match is None:
            raise ConfigError(f"{variable} is not a WAF IP set ARN: {arn!r}")
        scope = "REGIONAL" if match["scope"] == "regional" else "CLOUDFRONT"
        return cls(match["name"], match["id"], scope)

    def replace(self, waf: Any, addresses: tuple[str, ...]) -> bool:
        """Make the set hold exactly ``addresses``; False when it already did."""
        for attempt in (1, 2):
            current = waf.get_ip_set(Name=self.name, Scope=self.scope, Id=self.id)
            if sorted(current["IPSet"]["Addresses"]) == sorted(addresses):
                return False
            try:
                waf.update_ip_set(
                    Name=self.name,
                    Scope=self.scope,
                    Id=self.id,
                    Addresses=list(addresses),
                    LockToken=current["LockToken"],
                )
                return True
            except Exception as exc:
                if aws.error_code(exc) != "WAFOptimisticLockException" or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _ip_set(variable: str) -> IpSet:
    return IpSet.from_arn(os.environ.get(variable, ""), variable)


def meta_token() -> TokenProvider | None:
    """The deployment's token for ``/meta``, or None when it has none configured."""
    if not os.environ.get("GITHUB_TOKEN_SECRET_ARN"):
        return None  # not the dispatcher's environment (a hand-made function): as before
    from lambda_fn.config import get_settings
    from lambda_fn.github_auth import token_provider

    try:
        settings = get_settings()
    except ConfigError as exc:
        logger.warning("settings unreadable; reading /meta without a token: " + str(exc))
        return None
    if settings.github_auth != "app":
        return token_provider(settings)  # the PAT
    from lambda_fn.scopes import configured_scopes

    scopes = configured_scopes(settings)
    if not scopes:
        logger.info("no App installation named in the settings; /meta without a token")
        return None
    return _metadata_token(settings, scopes[0])


def _metadata_token(settings: Settings, resource: str) -> TokenProvider:
    """An installation token of ``resource``'s installation (``repos/O/R``: that repository
    only) with ``metadata: read`` alone, the permission every App has: ``/meta`` needs
    none, and ``token_provider`` mints tokens only for the calls it knows, each with the
    permission that call needs (``lambda_fn.github_auth.token_scope``)."""
    from lambda_fn.github_auth import github_app

    app = github_app(
        settings.github_api_url,
        settings.github_app_id,
        settings.github_app_key_arn,
        settings.github_timeout_budget_seconds,
    )
    parts = resource.split("/")
    repositories = [parts[2]] if parts[0] == "repos" else None

    def token(path: str, fresh: bool) -> str:
        installation_id = app.installation_id(resource)
        answer = app.create_token(
            installation_id, repositories=repositories, permissions={"metadata": "read"}
        )
        return str(answer["token"])

    return token


def read_meta(api_url: str) -> dict[str, Any]:
    """``GET /meta`` with the deployment's token, or without one (module docstring)."""
    token = meta_token()
    if token is not None:
        try:
            return GitHubClient(api_url, token, budget_seconds=META_BUDGET_SECONDS).get_meta()
        except (SecretMissingError, SecretUnavailableError, GitHubPermanentError) as exc:
            # GitHubAppNotInstalledError is a GitHubPermanentError (404), a refused token 401.
            logger.warning(
                "no usable GitHub token for /meta (before fargate-runners setup?); "
                "reading it without one",
                extra={"error": f"{type(exc).__name__}: {str(exc)[:300]}"},
            )
    return GitHubClient(api_url, None, budget_seconds=META_BUDGET_SECONDS).get_meta()


def refresh(github: GitHubClient | None = None) -> dict[str, Any]:
    """One refresh; returns what changed (also logged and counted)."""
    ipv4, ipv6 = _ip_set("SOURCE_IPV4_SET_ARN"), _ip_set("SOURCE_IPV6_SET_ARN")
    api_url = os.environ.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL
    meta = github.get_meta() if github is not None else read_meta(api_url)
    ranges = SourceRanges.from_meta(meta)
    waf = aws.client("wafv2")
    changed = {
        "ipv4": ipv4.replace(waf, ranges.ipv4),
        "ipv6": ipv6.replace(waf, ranges.ipv6),
    }
    result = {"changed": changed, "ipv4": len(ranges.ipv4), "ipv6": len(ranges.ipv6)}
    if any(changed.values()):
        count("SourceRangesUpdated")
        logger.warning("GitHub's webhook source ranges changed; WAF IP sets updated", extra=result)
    else:
        logger.info("GitHub's webhook source ranges unchanged", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge scheduled handler. Raises (fails the run) rather than apply a bad list."""
    return refresh()
