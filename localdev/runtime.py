"""Everything at once: moto + provisioned stack + GitHub stand-in + webhook endpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from localdev import moto_server
from localdev.endpoint import WebhookServer
from localdev.env import handler_environment
from localdev.firewall import SourceFilter, StageThrottle
from localdev.github_stub import GitHubStub
from localdev.provision import LocalStack, provision


@dataclass(frozen=True)
class LocalRuntime:
    """A running local environment; :attr:`webhook_url` takes signed deliveries."""

    moto: moto_server.MotoServer
    stack: LocalStack
    github: GitHubStub
    endpoint: WebhookServer
    env: dict[str, str]

    @property
    def webhook_url(self) -> str:
        return self.endpoint.url

    @property
    def webhook_secret(self) -> str:
        return self.stack.webhook_secret


@contextlib.contextmanager
def local_runtime(
    context: Mapping[str, Any],
    *,
    region: str = "us-east-1",
    host: str = "127.0.0.1",
    port: int = 0,
    capture_output: bool = True,
    concurrent: bool = False,
    env_overrides: Mapping[str, str] | None = None,
    web_acl: bool = False,
    rate_limit: int = 2000,
    throttle: StageThrottle | None = None,
) -> Iterator[LocalRuntime]:
    """Start all local pieces, set the handler's environment, stop everything on exit.

    ``context`` is a ``cdk.json`` ``context`` object; ``port`` is the webhook
    endpoint's (0 = free port); ``env_overrides`` change handler variables
    (e.g. ``{"ALLOWED_REPOSITORIES": "octo-org/*"}``). ``web_acl`` puts the model of
    the WAF web ACL in front of the endpoint, its source list read from the GitHub
    stand-in's ``/meta`` exactly as the refresh Lambda reads GitHub's; ``throttle``
    models the stage throttle (``localdev.firewall``). With ``web_acl`` the web ACL's
    recorded-hook rule reads a WAF regex pattern set in moto (``HOOK_PATTERN_SET_ARN`` in
    the handler environment), which ``lambda_fn.hook_filter.sync()`` updates from the
    recorded-webhook parameter as the hook filter Lambda does in AWS: until it has run
    after ``setup`` recorded a hook, no delivery is admitted.
    """
    from lambda_fn.app import handler

    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(moto_server.start(host=host))
        github = stack.enter_context(GitHubStub(host=host))
        local = provision(moto.url, context, region, github_api_url=github.url)
        env = {**local.env, **(env_overrides or {})}
        source_filter = None
        if web_acl:
            pattern_set = _hook_pattern_set(local)
            env["HOOK_PATTERN_SET_ARN"] = pattern_set.arn
        stack.enter_context(handler_environment(env))
        if web_acl:
            from lambda_fn.github import GitHubClient
            from lambda_fn.source_ranges import SourceRanges

            meta = GitHubClient(github.url, None).get_meta()
            source_filter = SourceFilter(
                SourceRanges.from_meta(meta),
                rate_limit=rate_limit,
                hook_patterns=pattern_set.patterns,
            )
        endpoint = stack.enter_context(
            WebhookServer(
                handler,
                host=host,
                port=port,
                capture_output=capture_output,
                concurrent=concurrent,
                source_filter=source_filter,
                throttle=throttle,
            )
        )
        yield LocalRuntime(moto=moto, stack=local, github=github, endpoint=endpoint, env=env)


@dataclass(frozen=True)
class _PatternSet:
    """The web ACL's recorded-hook regex pattern set, in moto."""

    stack: LocalStack
    name: str
    id: str
    arn: str

    def patterns(self) -> list[str]:
        answer = self.stack.client("wafv2").get_regex_pattern_set(
            Name=self.name, Scope="REGIONAL", Id=self.id
        )
        return [r["RegexString"] for r in answer["RegexPatternSet"]["RegularExpressionList"]]


def _hook_pattern_set(local: LocalStack) -> _PatternSet:
    """Create the pattern set as the CDK app does (first content: nothing recorded)."""
    import uuid

    from lambda_fn.hook_filter import NOT_RECORDED_PATTERN

    name = f"recorded-hooks-{uuid.uuid4().hex[:12]}"  # one moto may serve several runtimes
    summary = local.client("wafv2").create_regex_pattern_set(
        Name=name,
        Scope="REGIONAL",
        Description="X-GitHub-Hook-ID of the webhook fargate-runners setup recorded",
        RegularExpressionList=[{"RegexString": NOT_RECORDED_PATTERN}],
    )["Summary"]
    return _PatternSet(local, name, summary["Id"], summary["ARN"])
