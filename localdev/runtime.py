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
    models the stage throttle (``localdev.firewall``).
    """
    from lambda_fn.app import handler

    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(moto_server.start(host=host))
        github = stack.enter_context(GitHubStub(host=host))
        local = provision(moto.url, context, region, github_api_url=github.url)
        env = {**local.env, **(env_overrides or {})}
        stack.enter_context(handler_environment(env))
        source_filter = None
        if web_acl:
            from lambda_fn.github import GitHubClient
            from lambda_fn.source_ranges import SourceRanges

            meta = GitHubClient(github.url, None).get_meta()
            source_filter = SourceFilter(SourceRanges.from_meta(meta), rate_limit=rate_limit)
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
