"""``serve``: the webhook handler on a local endpoint, for a webhook relay to forward to.

Default (local) mode runs it against a moto server and the GitHub stand-in
(``localdev``), so real deliveries forwarded from GitHub start tasks in moto.
``--aws`` runs the same handler against the deployed stack's real resources
(its Lambda's environment, real GitHub): tasks really start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runners_cli.errors import CliError
from runners_cli.stack import Aws, load_stack, webhook_function_environment

Out = Callable[[str], None]


def _log_invocation(out: Out) -> Callable[[Any], None]:
    def log(invocation: Any) -> None:
        stamp = time.strftime("%H:%M:%S")
        out(f"{stamp}  {invocation.status}  {invocation.duration_ms:6.0f} ms  {invocation.body}")

    return log


def relay_hints(url: str, secret: str | None) -> list[str]:
    secret_arg = f" --secret {secret}" if secret else ""
    return [
        "forward GitHub deliveries here with a webhook relay, for example:",
        f"  gh webhook forward --repo OWNER/REPO --events workflow_job --url {url}{secret_arg}",
        f"  npx smee-client --url https://smee.io/YOUR-CHANNEL --target {url}",
    ]


def serve_local(
    *,
    cdk_json: Path | None,
    port: int,
    secret: str | None,
    region: str,
    stop: threading.Event,
    out: Out = print,
    on_ready: Callable[[str, str], None] | None = None,
) -> int:
    """Serve against moto + the GitHub stand-in until ``stop`` is set."""
    try:
        from localdev.provision import REPO_ROOT, read_cdk_context
        from localdev.runtime import local_runtime
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise CliError(
            f"local mode needs the localdev package and moto[server] ({exc}); "
            "install the dev extra or run from the repository"
        ) from None
    path = cdk_json or REPO_ROOT / "cdk.json"
    context: dict[str, Any] = read_cdk_context(path) if path.is_file() else {}
    with local_runtime(context, region=region, port=port) as runtime:
        if secret:
            runtime.stack.client("secretsmanager").put_secret_value(
                SecretId=runtime.stack.webhook_secret_arn, SecretString=secret
            )
        webhook_secret = secret or runtime.webhook_secret
        runtime.endpoint.on_invocation = _log_invocation(out)
        out(f"webhook endpoint: {runtime.webhook_url}")
        out(f"webhook secret:   {webhook_secret}")
        out(
            f"mode: local; AWS is moto at {runtime.moto.url}, GitHub is a stand-in at "
            f"{runtime.github.url}"
        )
        out(
            f"profiles from {path if path.is_file() else 'defaults'}: "
            + ", ".join(f"{p.name} [{','.join(p.labels)}]" for p in runtime.stack.config.profiles)
        )
        for line in relay_hints(runtime.webhook_url, webhook_secret):
            out(line)
        out("Ctrl-C to stop.")
        if on_ready is not None:
            on_ready(runtime.webhook_url, webhook_secret)
        _wait(stop)
    return 0


def serve_aws(
    aws: Aws,
    stack_name: str,
    *,
    port: int,
    stop: threading.Event,
    out: Out = print,
    on_ready: Callable[[str], None] | None = None,
    instance: str | None = None,
) -> int:
    """Serve against the deployed stack's resources (its Lambda's environment)."""
    from localdev.endpoint import WebhookServer
    from localdev.env import handler_environment

    env = webhook_function_environment(aws, load_stack(aws, stack_name, instance))
    env.update(
        {
            "AWS_REGION": aws.region_name,
            "AWS_DEFAULT_REGION": aws.region_name,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    with handler_environment(env):
        from lambda_fn.app import handler

        with WebhookServer(handler, port=port, on_invocation=_log_invocation(out)) as server:
            out(f"webhook endpoint: {server.url}")
            out(
                f"mode: --aws; stack {stack_name} in {aws.region_name}: deliveries start REAL "
                "tasks and register REAL runners"
            )
            out("webhook secret:   the stack's (aws secretsmanager get-secret-value ...)")
            for line in relay_hints(server.url, None):
                out(line)
            out("Ctrl-C to stop.")
            if on_ready is not None:
                on_ready(server.url)
            _wait(stop)
    return 0


def _wait(stop: threading.Event) -> None:
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        stop.set()
