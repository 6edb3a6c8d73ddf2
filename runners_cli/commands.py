"""``setup``, ``status`` and ``doctor``."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from lambda_fn import contract
from lambda_fn.runner_task import RunnerTask
from runners_cli.errors import CliError
from runners_cli.github import GitHub, GitHubError, Target, hook_differences
from runners_cli.profiles import DEFAULT_RUNNER_GROUP_ID, RestrictedProfile, restricted_profiles
from runners_cli.protections import ProtectionChecks
from runners_cli.stack import (
    Aws,
    StackInfo,
    deployed_profiles,
    endpoint_vpcs_without_dns,
    load_stack,
    queue_depth,
    read_secret,
    silent_alarms,
    stack_alarm_names,
    stack_resources,
    webhook_function_environment,
)

Out = Callable[[str], None]


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------


def read_token(*, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The PAT, from a hidden prompt or (``--token-stdin``) the first line of stdin."""
    if from_stdin:
        token = (stdin or sys.stdin).readline().strip()
    else:
        token = getpass.getpass("GitHub personal access token (input hidden): ").strip()
    if not token:
        raise CliError("no token given")
    if any(ch.isspace() for ch in token):
        raise CliError("the token contains whitespace: paste only the token")
    return token


def setup(
    aws: Aws,
    stack_name: str,
    target: Target,
    token: str,
    *,
    api_url: str,
    resend_secret: bool = False,
    instance: str | None = None,
    out: Out = print,
) -> int:
    """Check the token with GitHub, store it, and create/update the webhook (idempotent).

    The token is checked *before* it is stored, so a token that cannot work
    never replaces a good one.
    """
    stack = load_stack(aws, stack_name, instance)
    github = GitHub(token, api_url)
    login, kind = github.whoami()
    out(f"token:   valid, {kind}, acting as {login}")
    github.check_target(target)
    github.check_runner_permission(target)
    out(f"token:   can manage self-hosted runners of {target.label}")

    current = read_secret(aws, stack.github_token_secret_arn)
    if current == token:
        out(f"token:   unchanged in {_secret_name(stack.github_token_secret_arn)}")
    else:
        aws.client("secretsmanager").put_secret_value(
            SecretId=stack.github_token_secret_arn, SecretString=token
        )
        verb = "stored" if current is None else "replaced"
        out(f"token:   {verb} in {_secret_name(stack.github_token_secret_arn)}")

    outcome, hook = github.ensure_hook(
        target, stack.webhook_url, webhook_secret(aws, stack), resend_secret=resend_secret
    )
    out(
        f"webhook: {outcome} (id {hook.get('id')}) on {target.label} -> {stack.webhook_url}, "
        "events workflow_job, content type json"
    )
    record_hook(aws, stack, f"{target.path}/hooks/{hook['id']}", out)
    return runner_groups_step(aws, stack, target, lambda: github, dry_run=False, out=out)


def runner_groups_step(
    aws: Aws,
    stack: StackInfo,
    target: Target,
    github: Callable[[], GitHub | None],
    *,
    dry_run: bool,
    out: Out,
) -> int:
    """Organisation runners: create or update each restricted profile's runner group
    (``github`` is called only when there is something to do)."""
    from runners_cli.runner_groups import setup_groups

    env = webhook_function_environment(aws, stack)
    entries = deployed_profiles(aws, env)
    if target.kind != "org" or env.get("RUNNER_SCOPE", "repo") != "org":
        if restricted_profiles(env, entries) and target.kind == "repo":
            out(
                "runner groups: repository runners have no groups, so restricted profiles can "
                "be given the repository's other jobs (docs/security.md, 'Deploy protections')"
            )
        return 0
    profiles = restricted_profiles(env, entries)
    if not profiles:
        out("runner groups: no restricted profile, nothing to set up")
        return 0
    client = github()
    if client is None:
        out("runner groups: the stack has no GitHub token yet: run fargate-runners setup first")
        return 1
    return setup_groups(client, target.name, stack.name, profiles, dry_run=dry_run, out=out)


def plan_runner_groups(
    aws: Aws,
    stack_name: str,
    target: Target,
    *,
    api_url: str,
    out: Out = print,
    instance: str | None = None,
) -> int:
    """``setup --dry-run``: what setup would do to the runner groups, with the stack's own
    GitHub credentials; nothing is written (no token, webhook or group)."""
    if target.kind != "org":
        raise CliError("--dry-run plans runner groups, which exist only for --org ORG")
    stack = load_stack(aws, stack_name, instance)
    out("dry run: token and webhook are left as they are")
    return runner_groups_step(
        aws,
        stack,
        target,
        lambda: github_for_stack(aws, stack, api_url, target),
        dry_run=True,
        out=out,
    )


def setup_with_app(
    aws: Aws,
    stack_name: str,
    target: Target,
    *,
    app_id: str,
    private_key: Path | None,
    api_url: str,
    app_webhook: bool = False,
    resend_secret: bool = False,
    instance: str | None = None,
    out: Out = print,
) -> int:
    """``github_auth: "app"`` stacks: import the App's key into KMS, check the App and its
    installation on ``target``, create the webhook (or point the App's own at the stack)."""
    from runners_cli.app import setup_app

    stack = load_stack(aws, stack_name, instance)
    path = setup_app(
        aws,
        stack,
        target,
        app_id=app_id,
        private_key=private_key,
        api_url=api_url,
        app_webhook=app_webhook,
        resend_secret=resend_secret,
        secret=webhook_secret(aws, stack),
        out=out,
    )
    record_hook(aws, stack, path, out)
    return runner_groups_step(
        aws,
        stack,
        target,
        lambda: github_for_stack(aws, stack, api_url, target),
        dry_run=False,
        out=out,
    )


def webhook_secret(aws: Aws, stack: StackInfo) -> str:
    secret = read_secret(aws, stack.webhook_secret_arn)
    if not secret:
        raise CliError(f"the webhook secret {stack.webhook_secret_arn} has no value", 1)
    return secret


def record_hook(aws: Aws, stack: StackInfo, path: str, out: Out) -> None:
    """Write the webhook's path where the reconciler looks, so failed deliveries come back."""
    if stack.hook_parameter is None:
        out(
            "webhook: this stack predates automatic redelivery; deploy the current version "
            "and run setup again"
        )
        return
    ssm = aws.client("ssm")
    current = ssm.get_parameter(Name=stack.hook_parameter)["Parameter"]["Value"]
    if current != path:
        ssm.put_parameter(Name=stack.hook_parameter, Value=path, Overwrite=True)
    out(f"webhook: recorded as {path} in {stack.hook_parameter}: failed deliveries are redelivered")


def _secret_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


# ---------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------


def running_tasks(aws: Aws, cluster: str) -> list[RunnerTask]:
    """Pending and running runner tasks of the cluster, by profile, oldest first (read
    through the Lambda's own :class:`~lambda_fn.runner_task.RunnerTask`)."""
    ecs = aws.client("ecs")
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus="RUNNING"):
        arns.extend(page.get("taskArns", []))
    tasks: list[RunnerTask] = []
    for start in range(0, len(arns), 100):
        described = ecs.describe_tasks(
            cluster=cluster, tasks=arns[start : start + 100], include=["TAGS"]
        )["tasks"]
        tasks.extend(RunnerTask.from_ecs(task) for task in described)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(tasks, key=lambda t: (t.profile or "?", task_started(t) or epoch))


def task_started(task: RunnerTask) -> datetime | None:
    """When the task started, else when it was created (a pending task has not started)."""
    started = task.started_at or task.created_at
    return started if isinstance(started, datetime) else None


def age(started: datetime | None, now: datetime | None = None) -> str:
    """``3m12s``, ``2h05m``, ``1d04h``."""
    if started is None:
        return "?"
    now = now or datetime.now(UTC)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    seconds = max(0, int((now - started).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def github_for_stack(aws: Aws, stack: StackInfo, api_url: str, target: Target) -> GitHub | None:
    """A client with the stack's PAT, or (App stacks) an installation token for ``target``
    (the operator's AWS access is enough); None if the PAT is unset."""
    from runners_cli.app import app_config, github_app, installation_token

    app = app_config(aws, stack)
    if app is not None:
        return GitHub(installation_token(github_app(aws, app, api_url), target)[1], api_url)
    token = read_secret(aws, stack.github_token_secret_arn)
    return GitHub(token, api_url) if token else None


#: Where the Lambda publishes its metrics (``lambda_fn.contract.METRICS_NAMESPACE``)
#: and what ``lambda_fn/start_time.py`` calls queued -> a runner took the job.
METRICS_NAMESPACE = contract.METRICS_NAMESPACE
TIME_TO_START = "TimeToStart"
_START_STATS = ("p50", "p90", "SampleCount")


@dataclass(frozen=True)
class StartFigures:
    """One profile's time to start over a window, as CloudWatch aggregates it."""

    profile: str
    jobs: int
    p50: float | None
    p90: float | None


def time_to_start(aws: Aws, now: datetime, window: timedelta) -> list[StartFigures]:
    """p50, p90 and count of ``TimeToStart`` per profile over ``window`` up to ``now``.

    The dimension sets (``profile`` plus ``service``) come from ``ListMetrics`` (a
    metric is listed for two weeks after its last datum), so profiles that started
    nothing in the window report zero jobs. One ``GetMetricData`` call, one period
    covering the window
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html).
    """
    cloudwatch = aws.client("cloudwatch")
    dimension_sets = [
        metric["Dimensions"]
        for page in cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=METRICS_NAMESPACE, MetricName=TIME_TO_START
        )
        for metric in page["Metrics"]
    ]
    queries = [
        {
            "Id": f"m{index}_{stat.lower()}",
            "MetricStat": {
                "Metric": {
                    "Namespace": METRICS_NAMESPACE,
                    "MetricName": TIME_TO_START,
                    "Dimensions": dimensions,
                },
                "Period": int(window.total_seconds()),
                "Stat": stat,
            },
        }
        for index, dimensions in enumerate(dimension_sets)
        for stat in _START_STATS
    ]
    values: dict[str, float] = {}
    for start in range(0, len(queries), 500):  # GetMetricData takes up to 500 queries
        pages = cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries[start : start + 500],
            StartTime=now - window,
            EndTime=now,
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                if result.get("Values"):
                    values[result["Id"]] = float(result["Values"][0])
    figures = []
    for index, dimensions in enumerate(dimension_sets):
        profile = next((d["Value"] for d in dimensions if d["Name"] == "profile"), "?")
        figures.append(
            StartFigures(
                profile=profile,
                jobs=int(values.get(f"m{index}_samplecount", 0)),
                p50=values.get(f"m{index}_p50"),
                p90=values.get(f"m{index}_p90"),
            )
        )
    return sorted(figures, key=lambda figure: figure.profile)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def print_time_to_start(aws: Aws, now: datetime, out: Out) -> None:
    try:
        figures = time_to_start(aws, now, timedelta(hours=1))
    except Exception as exc:  # status goes on without the figures
        out(f"time to start, last hour: unavailable ({type(exc).__name__}: {exc})")
        return
    if not any(figure.jobs for figure in figures):
        out("time to start, last hour: no job started on these runners")
        return
    out("time to start, last hour (job queued -> a runner took it):")
    out(f"  {'profile':<12} {'jobs':>5} {'p50':>8} {'p90':>8}")
    for figure in figures:
        out(
            f"  {figure.profile:<12} {figure.jobs:>5} {_seconds(figure.p50):>8} "
            f"{_seconds(figure.p90):>8}"
        )


#: What ``lambda_fn.runner_version`` emits per profile every reconciler run.
DAYS_LEFT = "RunnerVersionDaysLeft"
VERSION_UNKNOWN = "RunnerVersionUnknown"
#: ``fargate_runners.alarms.RUNNER_VERSION_DAYS_THRESHOLD`` (not imported: no aws_cdk here).
VERSION_ALARM_DAYS = 14


@dataclass(frozen=True)
class VersionFigure:
    """A profile's latest runner-version datum: days left, or the unknown state."""

    profile: str
    days_left: float | None
    at: datetime

    def describe(self) -> str:
        if self.days_left is None:
            return "version unknown: set the profile's runner_version"
        if self.days_left < 0:
            return f"{-self.days_left:.1f} days past GitHub's deadline: jobs may be refused"
        return f"{self.days_left:.1f} days before GitHub stops assigning jobs"


def runner_version_figures(aws: Aws, now: datetime) -> list[VersionFigure]:
    """The newest ``RunnerVersionDaysLeft``/``RunnerVersionUnknown`` datum per profile over the
    last day (docs/lifecycle.md, "Runner versions"); the newer of the two wins."""
    cloudwatch = aws.client("cloudwatch")
    queries: list[dict[str, Any]] = []
    keys: dict[str, tuple[str, str]] = {}
    for name in (DAYS_LEFT, VERSION_UNKNOWN):
        for page in cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=METRICS_NAMESPACE, MetricName=name
        ):
            for metric in page["Metrics"]:
                profile = next(
                    (d["Value"] for d in metric["Dimensions"] if d["Name"] == "profile"), "?"
                )
                query_id = f"v{len(queries)}"
                keys[query_id] = (name, profile)
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": METRICS_NAMESPACE,
                                "MetricName": name,
                                "Dimensions": metric["Dimensions"],
                            },
                            "Period": 300,
                            "Stat": "Minimum" if name == DAYS_LEFT else "Maximum",
                        },
                    }
                )
    latest: dict[str, VersionFigure] = {}
    for start in range(0, len(queries), 500):
        pages = cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries[start : start + 500],
            StartTime=now - timedelta(days=1),
            EndTime=now,
            ScanBy="TimestampDescending",
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                if not result.get("Values"):
                    continue
                name, profile = keys[result["Id"]]
                at = max(result["Timestamps"])
                value = float(result["Values"][result["Timestamps"].index(at)])
                figure = VersionFigure(profile, value if name == DAYS_LEFT else None, at)
                if profile not in latest or at > latest[profile].at:
                    latest[profile] = figure
    return sorted(latest.values(), key=lambda figure: figure.profile)


def print_runner_versions(aws: Aws, now: datetime, out: Out) -> None:
    try:
        figures = runner_version_figures(aws, now)
    except Exception as exc:  # status goes on without the figures
        out(f"runner versions: unavailable ({type(exc).__name__}: {exc})")
        return
    if not figures:
        out("runner versions: no figure in the last day (the reconciler emits one every run)")
        return
    out(f"runner versions (alarm below {VERSION_ALARM_DAYS} days; docs/lifecycle.md):")
    for figure in figures:
        out(f"  {figure.profile:<12} {figure.describe()}")


def status(
    aws: Aws,
    stack_name: str,
    target: Target | None,
    *,
    api_url: str,
    out: Out = print,
    now: datetime | None = None,
    instance: str | None = None,
) -> int:
    stack = load_stack(aws, stack_name, instance)
    out(f"stack {stack.label} ({stack.region}, {stack.status}), cluster {stack.cluster_name}")
    tasks = running_tasks(aws, stack.cluster_name)
    out("")
    out(f"runner tasks: {len(tasks)}")
    if tasks:
        out(f"  {'profile':<12} {'job id':<12} {'repository':<32} {'age':>7}  {'status':<9} task")
        for task in tasks:
            job_id = "?" if task.job_id is None else str(task.job_id)
            out(
                f"  {task.profile or '?':<12} {job_id:<12} {task.repository or '?':<32} "
                f"{age(task_started(task), now):>7}  {task.last_status or '?':<9} "
                f"{task.task_id[:12]}"
            )
        counts: dict[str, int] = {}
        for task in tasks:
            profile = task.profile or "?"
            counts[profile] = counts.get(profile, 0) + 1
        out("  per profile: " + ", ".join(f"{p} {n}" for p, n in sorted(counts.items())))
    out("")
    print_time_to_start(aws, now or datetime.now(UTC), out)
    print_runner_versions(aws, now or datetime.now(UTC), out)
    out("")
    for label, url in (
        ("retry queue", stack.retry_queue_url),
        ("dead-letter queue", stack.dead_letter_queue_url),
    ):
        if url:
            out(f"{label}: {queue_depth(aws, url)} message(s)")
        else:
            out(f"{label}: (not in this stack's outputs)")
    if target is not None:
        out("")
        github = github_for_stack(aws, stack, api_url, target)
        if github is None:
            out("webhook deliveries: the PAT secret is empty (run `fargate-runners setup`)")
            return 0
        hook = github.find_hook(target, stack.webhook_url)
        if hook is None:
            out(f"webhook deliveries: no webhook to {stack.webhook_url} on {target.label}")
            return 0
        failed = github.failed_deliveries(target, int(hook["id"]))
        out(f"failed webhook deliveries (recent, hook {hook['id']}): {len(failed)}")
        for delivery in failed[:10]:
            out(
                f"  {delivery.get('delivered_at', '?')}  {delivery.get('status_code')} "
                f"{delivery.get('status', '')}  {delivery.get('event', '')}"
                f"/{delivery.get('action') or '-'}  guid {delivery.get('guid', '?')}"
            )
    return 0


# ---------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------


def theft_warning(profile: RestrictedProfile) -> tuple[str, str, str]:
    """(name, detail, fix) of the warning for a restricted profile of repository runners.

    Repository runners have no runner groups: GitHub gives a runner any queued job of the
    repository whose ``runs-on`` labels it has (https://docs.github.com/en/actions/how-tos/
    manage-runners/self-hosted-runners/use-in-a-workflow), so a job with a subset of the
    profile's labels can take a deploy runner, which refuses it: that job fails and the
    deploy waits for a replacement.
    """
    labels = ", ".join(profile.labels)
    if profile.match == "exact":
        detail = (
            f"dispatch launches it only for jobs labelled exactly [{labels}], but GitHub may "
            "still give its runner any queued job of the repository whose labels are a subset"
        )
        fix = (
            "make sure no other job's runs-on is a subset of these labels, or use "
            '"runner_scope": "org" with a runner group (fargate-runners setup --org ORG)'
        )
    else:
        detail = (
            f"any job of the repository whose runs-on is a subset of [{labels}] can take its "
            "runners, which refuse it (that job fails)"
        )
        fix = (
            'use "runner_scope": "org" with a runner group (fargate-runners setup --org ORG), '
            'or "match": "exact" with labels no other job uses'
        )
    return f"restricted profile {profile.name} runs only the jobs it was made for", detail, fix


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    #: Works, but is weaker than it should be: printed as WARN, does not fail doctor.
    warning: bool = False


class Doctor:
    """Runs the checks in order; a failed prerequisite skips what depends on it."""

    def __init__(
        self,
        aws: Aws,
        stack_name: str,
        target: Target | None,
        api_url: str,
        instance: str | None = None,
    ) -> None:
        self.aws = aws
        self.stack_name = stack_name
        self.instance = instance
        self.target = target
        self.api_url = api_url
        self.checks: list[Check] = []
        #: The deployed stack's restricted profiles and runner scope (read by the stack checks).
        self.profiles: list[RestrictedProfile] = []
        self.scope = "repo"
        #: The deployed webhook function's environment and profile entries (all profiles).
        self.env: dict[str, str] = {}
        self.deployed: list[Any] = []

    def add(self, name: str, ok: bool, detail: str = "", fix: str = "") -> bool:
        self.checks.append(Check(name, ok, detail, fix))
        return ok

    def warn(self, name: str, detail: str, fix: str) -> None:
        self.checks.append(Check(name, True, detail, fix, warning=True))

    def run(self) -> list[Check]:
        try:
            stack = load_stack(self.aws, self.stack_name, self.instance)
        except CliError as exc:
            if "not found" not in exc.message:
                raise
            self.add(
                f"stack {self.stack_name} found",
                False,
                exc.message,
                "pass --region / --stack, or deploy it: cdk deploy",
            )
            return self.checks
        self.add(f"stack {stack.label} found in {stack.region}", True, stack.status)
        ok_status = stack.status.endswith("_COMPLETE") and "ROLLBACK" not in stack.status
        self.add(
            "stack status is complete",
            ok_status,
            stack.status,
            "see the stack's events in the CloudFormation console, fix, and cdk deploy again",
        )
        if not self.add(
            "stack outputs present",
            not stack.missing,
            "missing: " + ", ".join(stack.missing) if stack.missing else "",
            "deploy the current version of the stack (cdk deploy)",
        ):
            return self.checks

        self._secret_check(
            "webhook secret readable",
            stack.webhook_secret_arn,
            "the stack creates it with a value; check your IAM permission "
            "secretsmanager:GetSecretValue on it",
        )
        from runners_cli.app import app_config

        app = app_config(self.aws, stack)
        token = None
        if app is None:
            token = self._secret_check(
                "GitHub token secret has a value",
                stack.github_token_secret_arn,
                "fargate-runners setup --repo OWNER/REPO (or --org ORG)",
            )
        self._cluster_checks(stack)
        self._vpc_dns_checks(stack)
        self._queue_checks(stack)
        self._alarm_checks(stack)
        self._runner_version_checks()
        self._runner_group_checks(stack)
        self._fargate_checks()
        if app is not None:
            from runners_cli.app import AppDoctor

            AppDoctor(self, stack, app).run()
        elif token:
            self._github_checks(stack, token)
        return self.checks

    def _fargate_checks(self) -> None:
        """What synth cannot see: each profile's way out, and the account's vCPU quota."""
        from runners_cli import fargate_checks

        entries = [p for p in self.deployed if isinstance(p, dict)]
        if not entries:
            return
        fargate_checks.network_checks(
            self.aws.client("ec2"), self.env, entries, self.add, self.warn
        )
        try:
            sized = fargate_checks.sized_profiles(self.aws.client("ecs"), entries)
        except Exception as exc:
            self.warn("Fargate vCPU quota", f"not checked: task sizes unreadable ({exc})", "")
            return
        fargate_checks.quota_checks(self.aws.client("service-quotas"), sized, self.add, self.warn)

    def _secret_check(self, name: str, arn: str, fix: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            value = read_secret(self.aws, arn)
        except ClientError as exc:
            self.add(name, False, exc.response.get("Error", {}).get("Code", "error"), fix)
            return None
        self.add(name, bool(value), "" if value else "no value", fix)
        return value

    def _cluster_checks(self, stack: StackInfo) -> None:
        ecs = self.aws.client("ecs")
        clusters = ecs.describe_clusters(clusters=[stack.cluster_name]).get("clusters", [])
        status = clusters[0].get("status", "?") if clusters else "missing"
        self.add(
            f"cluster {stack.cluster_name} ACTIVE",
            status == "ACTIVE",
            status,
            "cdk deploy (the cluster is part of the stack)",
        )
        definitions = stack_resources(self.aws, stack, "AWS::ECS::TaskDefinition")
        if not definitions:
            self.add("task definitions", False, "none in the stack", "cdk deploy")
        for resource in definitions:
            arn = resource["PhysicalResourceId"]
            family = arn.rsplit("/", 1)[-1]
            try:
                found = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
                status = str(found.get("status", "?"))
            except Exception as exc:
                status = type(exc).__name__
            self.add(
                f"task definition {family} ACTIVE",
                status == "ACTIVE",
                status,
                "cdk deploy (re-registers the profile's task definition)",
            )

    def _vpc_dns_checks(self, stack: StackInfo) -> None:
        """``vpc_endpoints`` in an existing VPC: synth cannot see its DNS attributes, and
        without both the endpoints' private names do not resolve (tasks go to the public
        endpoints, through a NAT or nowhere)."""
        from botocore.exceptions import ClientError

        try:
            vpcs = endpoint_vpcs_without_dns(self.aws, stack)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            self.warn("VPC DNS for the endpoints", f"not checked ({code})", "")
            return
        for vpc, off in (vpcs or {}).items():
            self.add(
                f"VPC {vpc} resolves the endpoints' private DNS",
                not off,
                f"{' and '.join(off)} off" if off else "enableDnsSupport, enableDnsHostnames",
                " then ".join(
                    f"aws ec2 modify-vpc-attribute --vpc-id {vpc} --{_kebab(a)} "
                    """'{"Value":true}'"""
                    for a in off  # support first: AWS enables hostnames only with it
                ),
            )

    def _queue_checks(self, stack: StackInfo) -> None:
        if stack.retry_queue_url:
            depth = queue_depth(self.aws, stack.retry_queue_url)
            self.add("retry queue readable", True, f"{depth} message(s) waiting")
        if stack.dead_letter_queue_url:
            depth = queue_depth(self.aws, stack.dead_letter_queue_url)
            self.add(
                "dead-letter queue empty",
                depth == 0,
                f"{depth} message(s)",
                "read the messages' failure reason, fix it, then replay them "
                "(docs/operations.md, 'Dead-letter queue')",
            )

    def _alarm_checks(self, stack: StackInfo) -> None:
        names = stack_alarm_names(self.aws, stack)
        silent = silent_alarms(self.aws, names)
        self.add(
            "alarms reach a person",
            bool(names) and not silent,
            (
                f"{len(silent)} of {len(names)} alarms notify nobody: {', '.join(silent[:3])}"
                + (" ..." if len(silent) > 3 else "")
            )
            if silent
            else ("no alarms in the stack" if not names else f"{len(names)} alarms"),
            "set alarm_email (then confirm the subscription e-mail) or alarm_topic_arn in "
            "cdk.json and cdk deploy",
        )

    def _runner_version_checks(self) -> None:
        """Each profile's days before GitHub stops assigning jobs to its runner version."""
        try:
            figures = runner_version_figures(self.aws, datetime.now(UTC))
        except Exception as exc:
            self.warn("runner versions", f"unreadable ({type(exc).__name__})", "")
            return
        fix = "move the image to the newest runner release (docs/lifecycle.md, Runner versions)"
        if not figures:
            self.warn(
                "runner versions",
                "no figure in the last day",
                "the reconciler emits RunnerVersionDaysLeft every run: check its logs",
            )
        for figure in figures:
            name = f"runner version of profile {figure.profile}"
            if figure.days_left is None:
                self.warn(
                    name,
                    figure.describe(),
                    "set runner_version or use an actions-runner:X.Y.Z image",
                )
            elif figure.days_left < 0:
                self.add(name, False, figure.describe(), fix)
            elif figure.days_left < VERSION_ALARM_DAYS:
                self.warn(name, figure.describe(), fix)
            else:
                self.add(name, True, figure.describe())

    def recorded_hook(self, stack: StackInfo) -> str | None:
        """The webhook path ``setup`` recorded for the reconciler (None: no parameter)."""
        if stack.hook_parameter is None:
            return None
        ssm = self.aws.client("ssm")
        return str(ssm.get_parameter(Name=stack.hook_parameter)["Parameter"]["Value"])

    def hook_record_check(self, stack: StackInfo, expected: str, fix: str) -> None:
        value = self.recorded_hook(stack)
        if value is None:
            return
        self.add(
            "webhook recorded for automatic redelivery",
            value == expected,
            "" if value == expected else f"{stack.hook_parameter} holds {value!r}",
            fix,
        )

    def _runner_group_checks(self, stack: StackInfo) -> None:
        """Restricted profiles should get only the jobs they were made for.

        A JIT runner is not bound to the job it was started for: GitHub gives it
        any queued job whose labels it has. Only a runner group limited to
        selected repositories and workflows stops GitHub from assigning other
        jobs to a deploy runner; the default group (id 1) is open to every
        repository of the organisation, and repository runners have no groups at
        all (docs/security.md, "Deploy protections").
        """
        from botocore.exceptions import ClientError

        try:
            env = webhook_function_environment(self.aws, stack)
            self.deployed = deployed_profiles(self.aws, env)
            self.env = env
            self.profiles = restricted_profiles(env, self.deployed)
        except (CliError, ClientError) as exc:
            self.warn("runner groups of restricted profiles", f"not checked: {exc}", "")
            return
        self.scope = env.get("RUNNER_SCOPE", "repo")
        if self.scope != "org":
            for profile in self.profiles:
                self.warn(*theft_warning(profile))
            return
        fix = (
            "fargate-runners setup --org ORG creates a runner group limited to the profile's "
            "repositories and workflows; set the profile's runner_group_id, cdk deploy "
            "(docs/security.md, 'Deploy protections')"
        )
        for profile in self.profiles:
            name = f"restricted profile {profile.name} has its own runner group"
            if profile.runner_group_id == DEFAULT_RUNNER_GROUP_ID:
                self.warn(name, "it uses the default group (1), open to every repository", fix)
            else:
                self.add(name, True, f"group {profile.runner_group_id}")

    def protection_checks(self, github: GitHub, target: Target) -> None:
        """GitHub's protections around each restricted profile (``runners_cli.protections``)."""
        checks = ProtectionChecks(github, self.add, self.warn)
        for profile in self.profiles:
            exact, globs = profile.exact_repositories()
            for pattern in globs:
                self.warn(
                    f"{profile.name}: repositories {pattern} protected",
                    "a pattern names no repository to check",
                    "list the repositories in allowed_repositories",
                )
            if not exact and not globs and target.kind == "repo":
                exact = [target.name]
            checks.profile(profile, exact)
            if self.scope == "org" and target.kind == "org":
                checks.runner_group(profile, target.name)

    def _github_checks(self, stack: StackInfo, token: str) -> None:
        github = GitHub(token, self.api_url)
        try:
            login, kind = github.whoami()
        except GitHubError as exc:
            self.add("GitHub accepts the token", False, exc.message, "fargate-runners setup")
            return
        self.add("GitHub accepts the token", True, f"{kind}, acting as {login}")
        target = self.target
        if target is None:
            self.add(
                "webhook and permissions",
                True,
                "skipped: pass --repo OWNER/REPO or --org ORG to check them",
            )
            return
        for name, call, fix in (
            (
                f"token can see {target.label}",
                github.check_target,
                "check the name and the token's access",
            ),
            (
                f"token can manage self-hosted runners of {target.label}",
                github.check_runner_permission,
                f"give the token {target.runner_permission}, then fargate-runners setup",
            ),
        ):
            try:
                call(target)
            except GitHubError as exc:
                self.add(name, False, exc.message, fix)
                return
            self.add(name, True)
        self.hook_checks(stack, github, target)
        self.protection_checks(github, target)

    def hook_checks(self, stack: StackInfo, github: GitHub, target: Target) -> None:
        """The target's webhook: exists, recorded, configured right, delivering."""
        try:
            hook = github.find_hook(target, stack.webhook_url)
        except GitHubError as exc:
            self.add(
                "webhook exists", False, exc.message, f"give the token {target.hook_permission}"
            )
            return
        setup_fix = f"fargate-runners setup --{target.kind} {target.name}"
        if not self.add(
            f"webhook to {stack.webhook_url} exists",
            hook is not None,
            "" if hook else f"no webhook with this URL on {target.label}",
            setup_fix,
        ):
            return
        assert hook is not None
        self.hook_record_check(stack, f"{target.path}/hooks/{hook['id']}", setup_fix)
        differences = hook_differences(hook)
        self.add(
            "webhook active, workflow_job only, json, with secret",
            not differences,
            ", ".join(differences),
            setup_fix,
        )
        failed = github.failed_deliveries(target, int(hook["id"]), limit=20)
        latest = failed[0] if failed else None
        self.add(
            "no failed deliveries among the last 20",
            not failed,
            (
                f"{len(failed)} failed, latest {latest.get('status_code')} at "
                f"{latest.get('delivered_at')}"
            )
            if latest
            else "",
            "401: the hook's secret differs from the stack's: "
            f"{setup_fix} --resend-secret; 5xx: see the webhook Lambda's logs "
            "(docs/operations.md, troubleshooting)",
        )


def _kebab(attribute: str) -> str:
    """``enableDnsSupport`` -> ``enable-dns-support`` (the AWS CLI's option name)."""
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in attribute)


def doctor(
    aws: Aws,
    stack_name: str,
    target: Target | None,
    *,
    api_url: str,
    out: Out = print,
    instance: str | None = None,
) -> int:
    checks = Doctor(aws, stack_name, target, api_url, instance).run()
    for check in checks:
        mark = "WARN" if check.warning else "PASS" if check.ok else "FAIL"
        detail = f" ({check.detail})" if check.detail else ""
        out(f"{mark}  {check.name}{detail}")
        if (check.warning or not check.ok) and check.fix:
            out(f"      fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    warned = sum(c.warning for c in checks)
    out("")
    out(
        f"{len(checks) - failed - warned} passed, {failed} failed"
        + (f", {warned} warning(s)" if warned else "")
    )
    return 1 if failed else 0
