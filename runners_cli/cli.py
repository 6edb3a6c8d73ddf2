"""Argument parsing and error reporting for ``fargate-runners``."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from runners_cli.errors import CliError
from runners_cli.github import DEFAULT_API_URL, Target
from runners_cli.stack import DEFAULT_STACK_NAME, Aws, aws_errors, default_region

PROG = "fargate-runners"

#: The distribution ``pip install`` knows this CLI by.
DISTRIBUTION = "fargate-gha-runners"


def version() -> str:
    """The installed distribution's version (``--version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed: run from a source tree)"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack", default=DEFAULT_STACK_NAME, help=f"stack name (default {DEFAULT_STACK_NAME})"
    )
    common.add_argument(
        "--instance",
        metavar="NAME",
        help="which FargateRunners construct of the stack (its path in the stack, e.g. "
        "Runners or Team/Ci); needed only when the stack holds more than one",
    )
    common.add_argument(
        "--region",
        help="AWS region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION, your AWS profile)",
    )
    common.add_argument(
        "--github-api-url",
        default=os.environ.get("GITHUB_API_URL", DEFAULT_API_URL),
        help="GitHub REST URL (GHES: https://HOST/api/v3)",
    )
    target = argparse.ArgumentParser(add_help=False)
    group = target.add_mutually_exclusive_group()
    group.add_argument("--repo", metavar="OWNER/REPO", help="a repository")
    group.add_argument("--org", metavar="ORG", help="an organisation")

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Set up, inspect and check ephemeral GitHub Actions runners on Fargate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = commands.add_parser(
        "setup",
        parents=[common, target],
        help="store the PAT (or import the GitHub App key) and create/update the webhook",
        description="Check the PAT with GitHub, store it in the stack's secret and create or "
        "update the webhook (idempotent). The token is read from a hidden prompt, or from "
        "stdin with --token-stdin; never from the command line. GitHub App stacks: "
        "--app-id and --private-key import the App's key into the stack's KMS key instead.",
    )
    setup.add_argument("--token-stdin", action="store_true", help="read the PAT from stdin")
    setup.add_argument(
        "--app-id",
        help="GitHub App stacks (github_auth app): the App's ID; no PAT is asked for",
    )
    setup.add_argument(
        "--private-key",
        type=Path,
        metavar="APP.PEM",
        help="with --app-id: the App's private key, imported into the stack's KMS key "
        "(read once, never stored elsewhere; delete the file afterwards)",
    )
    setup.add_argument(
        "--app-webhook",
        action="store_true",
        help="with --app-id: deliver through the App's own webhook instead of a "
        "repository/organisation webhook",
    )
    setup.add_argument(
        "--dry-run",
        action="store_true",
        help="with --org: print how setup would create or update each restricted profile's "
        "runner group, and change nothing (uses the stack's stored credentials)",
    )
    setup.add_argument(
        "--resend-secret",
        action="store_true",
        help="send the webhook secret to an existing hook again (GitHub never shows it)",
    )
    commands.add_parser(
        "status",
        parents=[common, target],
        help="running runners, queue depths, failed deliveries",
        description="Show the stack's runner tasks (profile, job, repository, age), the "
        "time to start per profile, the retry and dead-letter queue depths and, with --repo "
        "or --org, the webhook's recent failed deliveries. Read-only.",
    )
    commands.add_parser(
        "doctor",
        parents=[common, target],
        help="check everything; PASS/FAIL with fixes",
        description="Check the deployment end to end (stack outputs, the stored token and "
        "its permissions, the webhook and its deliveries, queues, alarms, runner groups) and "
        "print PASS, WARN or FAIL per check, each failure with its fix. Read-only; exit 1 "
        "when a check fails.",
    )
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the webhook handler on a local endpoint (moto by default, or --aws)",
        description="Run the webhook Lambda's handler behind a local HTTP endpoint, for a "
        "webhook relay (gh webhook forward, smee) to forward GitHub deliveries to. By "
        "default AWS is a local moto server and GitHub a stand-in (nothing real starts; "
        f"needs the dev extra: pip install '{DISTRIBUTION}[dev]'); with --aws it uses the "
        "deployed stack and real GitHub, so deliveries start real tasks.",
    )
    serve.add_argument("--aws", action="store_true", help="use the deployed stack and GitHub")
    serve.add_argument("--port", type=int, default=8080, help="local port (0: any free port)")
    serve.add_argument("--secret", help="local mode: webhook secret to use (default: random)")
    serve.add_argument("--cdk-json", type=Path, help="local mode: profiles from this cdk.json")
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """What can be checked before AWS or GitHub is asked anything: files and extras."""
    for option, path in (
        ("--private-key", getattr(args, "private_key", None)),
        ("--cdk-json", getattr(args, "cdk_json", None)),
    ):
        if path is None:
            continue
        if not path.exists():
            raise CliError(f"{option} {path}: no such file")
        if not path.is_file():
            raise CliError(f"{option} {path}: not a file")
        if not os.access(path, os.R_OK):
            raise CliError(f"{option} {path}: not readable by this user")
    if args.command == "serve" and not args.aws:
        try:
            import moto.server  # noqa: F401 - only to know it is there
        except ImportError as exc:
            raise CliError(
                f"serve's local mode needs moto with its server extra ({exc.name or 'moto'} is "
                f"not installed): pip install '{DISTRIBUTION}[dev]', or pass --aws to serve "
                "against the deployed stack"
            ) from None


def run(args: argparse.Namespace) -> int:
    from runners_cli import commands

    check_inputs(args)
    region = default_region(args.region)
    aws = Aws(region)
    with aws_errors(region):
        if args.command == "serve":
            from runners_cli.serve import serve_aws, serve_local

            stop = threading.Event()
            try:
                if args.aws:
                    return serve_aws(
                        aws, args.stack, port=args.port, stop=stop, instance=args.instance
                    )
                return serve_local(
                    cdk_json=args.cdk_json,
                    port=args.port,
                    secret=args.secret,
                    region=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                    stop=stop,
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise CliError(
                    f"port {args.port} is in use: pass --port N (0: any free port)"
                ) from None
        target = Target.parse(args.repo, args.org)
        if args.command == "setup":
            if target is None:
                raise CliError("setup needs --repo OWNER/REPO or --org ORG")
            if args.dry_run:
                return commands.plan_runner_groups(
                    aws, args.stack, target, api_url=args.github_api_url, instance=args.instance
                )
            if args.app_id:
                return commands.setup_with_app(
                    aws,
                    args.stack,
                    target,
                    app_id=args.app_id,
                    private_key=args.private_key,
                    api_url=args.github_api_url,
                    app_webhook=args.app_webhook,
                    resend_secret=args.resend_secret,
                    instance=args.instance,
                )
            if args.private_key or args.app_webhook:
                raise CliError("--private-key and --app-webhook go with --app-id")
            if not args.token_stdin and not sys.stdin.isatty():
                raise CliError(
                    "no terminal to prompt for the token: pass it on stdin with --token-stdin "
                    '(for example: printf %s "$PAT" | fargate-runners setup --token-stdin ...)'
                )
            token = commands.read_token(from_stdin=args.token_stdin)
            return commands.setup(
                aws,
                args.stack,
                target,
                token,
                api_url=args.github_api_url,
                resend_secret=args.resend_secret,
                instance=args.instance,
            )
        if args.command == "status":
            return commands.status(
                aws, args.stack, target, api_url=args.github_api_url, instance=args.instance
            )
        return commands.doctor(
            aws, args.stack, target, api_url=args.github_api_url, instance=args.instance
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fargate-runners`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except EOFError:
        print(f"{PROG}: error: input ended before a value was read", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
