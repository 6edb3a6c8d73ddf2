"""Offline demo: a GitHub ``workflow_job`` webhook becomes a Fargate task, with no account.

``python -m localdev.demo`` (``make demo``) starts a moto server and creates
the stack's resources in it from ``cdk.json``, starts a GitHub API stand-in,
serves the real ``lambda_fn.app.handler`` at a local ``POST /webhook``, sends
five signed deliveries over HTTP, and prints what happened to each: the HTTP
answer, the profile chosen, the task started and what its container override
carries (only the name of the secret holding its JIT config). Then it plays
the task: ``runner/jit_config.py`` from the task definition fetches the config
with the task's own identity (curl --aws-sigv4 against moto, behind the IAM
condition double of :mod:`localdev.task_identity`), and another task of the
same profile is refused. It checks every outcome, stops everything it
started, and exits 0, or 1 naming the step that did not behave as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from lambda_fn import contract
from localdev import deliveries, moto_server
from localdev.endpoint import WebhookServer
from localdev.env import handler_environment
from localdev.github_stub import GitHubStub
from localdev.provision import REPO_ROOT, LocalStack, provision, read_cdk_context
from localdev.task_identity import TaskIdentities, container_environment, fetch_jit_config

SECRET_ID_ENV = "RUNNER_JIT_SECRET_ID"  # noqa: S105 - a variable name
UNMATCHED_LABELS = ("self-hosted", "windows", "gpu-a100")


class DemoFailure(Exception):
    """A step did not behave as expected."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Turn any error inside the block into a ``DemoFailure`` naming the step."""
    try:
        yield
    except DemoFailure:
        raise
    except Exception as exc:
        raise DemoFailure(name, f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Expectation:
    """What a delivery must produce."""

    summary: str
    status: int
    #: accepted values of the answer's "status" (None: not checked)
    body_status: tuple[str, ...] | None = None
    reason_contains: str = ""
    launches: bool = False
    same_task_as: int | None = None  # row number whose task this must repeat


@dataclass
class Row:
    number: int
    name: str
    delivery: deliveries.Delivery
    expect: Expectation
    http_status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    override: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        status = self.answer.get("status") or self.answer.get("message") or ""
        reason = self.answer.get("reason", "")
        if "runners_released" in self.answer:
            reason = f"{self.answer['runners_released']} runner(s) released, task stopped"
        return f"{status}: {reason}" if reason and status != reason else str(status)

    @property
    def task_arn(self) -> str:
        return str(self.answer.get("task_arn") or "")


def mask(value: str, shown: int = 4) -> str:
    """``eyJh…(masked, 88 chars)``: enough to recognise, never the credential."""
    return f"{value[:shown]}…(masked, {len(value)} chars)"


def short_arn(arn: str) -> str:
    """``arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID`` -> ``task/…/ID[:8]…``."""
    if not arn:
        return "-"
    task_id = arn.rsplit("/", 1)[-1].replace("-", "")
    return f"task/…/{task_id[:8]}…"


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plan(secret: str, labels: Sequence[str], job_id: int = 4242) -> list[Row]:
    """The five deliveries and what each must produce."""
    matching = deliveries.build(
        deliveries.workflow_job_payload(job_id, labels), secret, description="queued, labels match"
    )
    return [
        Row(
            1,
            "queued, labels match",
            matching,
            Expectation("launch 1 runner", 200, ("launched",), launches=True),
        ),
        Row(
            2,
            "queued, labels don't match",
            deliveries.build(deliveries.workflow_job_payload(job_id + 1, UNMATCHED_LABELS), secret),
            Expectation("ignore (labels)", 200, ("ignored",), reason_contains="labels"),
        ),
        Row(
            3,
            "redelivery of #1",
            deliveries.redelivery(matching),
            Expectation("no 2nd runner", 200, ("duplicate",), same_task_as=1),
        ),
        Row(
            4,
            "queued, bad signature",
            deliveries.build(
                deliveries.workflow_job_payload(job_id + 2, labels),
                secret,
                signature="sha256=" + "0" * 64,
            ),
            Expectation("reject (401)", 401),
        ),
        Row(
            5,
            "completed",
            deliveries.build(
                deliveries.workflow_job_payload(job_id, labels, action="completed"), secret
            ),
            # Older handlers ignore it; newer ones also release the job's runner (task stopped).
            Expectation("no new runner", 200, ("ignored", "completed")),
        ),
    ]


def check_row(row: Row, rows: Sequence[Row]) -> None:
    expect = row.expect
    if row.http_status != expect.status:
        row.problems.append(f"HTTP {row.http_status}, expected {expect.status}")
    if expect.body_status and row.answer.get("status") not in expect.body_status:
        wanted = " or ".join(expect.body_status)
        row.problems.append(f"answer status {row.answer.get('status')!r}, expected {wanted}")
    if expect.reason_contains and expect.reason_contains not in str(row.answer.get("reason", "")):
        row.problems.append(f"reason does not mention {expect.reason_contains!r}")
    if expect.launches and not row.task_arn:
        row.problems.append("no task ARN in the answer")
    if expect.same_task_as is not None:
        first = rows[expect.same_task_as - 1]
        if row.task_arn != first.task_arn:
            row.problems.append(f"task {row.task_arn!r} is not #{first.number}'s task")


def read_overrides(local: LocalStack) -> dict[str, dict[str, str]]:
    """task ARN -> {env name: value} of the runner container's override, read from moto."""
    result: dict[str, dict[str, str]] = {}
    for task in local.tasks():
        env: dict[str, str] = {}
        for override in task.get("overrides", {}).get("containerOverrides", []):
            for item in override.get("environment", []):
                env[item["name"]] = item["value"]
        result[task["taskArn"]] = env
    return result


def render_table(rows: Sequence[Row]) -> str:
    headers = (
        "#",
        "delivery",
        "expected",
        "HTTP",
        "status / reason",
        "profile",
        "task",
        "container override",
    )
    widths = (2, 26, 15, 4, 46, 8, 16, 0)
    lines = []

    def line(cells: Sequence[str]) -> str:
        parts = [
            truncate(cell, width).ljust(width) if width else cell
            for cell, width in zip(cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines.append(line(headers))
    lines.append(line(["-" * w if w else "-" * 18 for w in widths]))
    for row in rows:
        mark = "" if not row.problems else "  <-- " + "; ".join(row.problems)
        lines.append(
            line(
                [
                    str(row.number),
                    row.name,
                    row.expect.summary,
                    str(row.http_status),
                    row.outcome,
                    str(row.answer.get("profile") or "-"),
                    short_arn(row.task_arn),
                    (row.override or "-") + mark,
                ]
            )
        )
    return "\n".join(lines)


@dataclass
class Started:
    """What the demo started (stopped by the ``ExitStack`` that owns them)."""

    moto: moto_server.MotoServer
    github: GitHubStub
    local: LocalStack
    endpoint: WebhookServer
    identities: TaskIdentities


def start_all(cleanup: contextlib.ExitStack, context: dict[str, Any], region: str) -> Started:
    """Start moto, the stand-in, the resources, the environment and the endpoint."""
    with step("start moto server"):
        moto = cleanup.enter_context(moto_server.start())
    with step("start GitHub API stand-in"):
        github = cleanup.enter_context(GitHubStub())
    with step("create the stack's resources in moto (from cdk.json)"):
        local = provision(moto.url, context, region, github_api_url=github.url)
    with step("set the handler environment"):
        cleanup.enter_context(handler_environment(local.env))
        from lambda_fn.app import handler
    with step("start local webhook endpoint"):
        endpoint = cleanup.enter_context(WebhookServer(handler))
    with step("start the task identity double (credentials + IAM condition)"):
        identities = cleanup.enter_context(
            TaskIdentities(moto.url, local.env["JIT_SECRET_PREFIX"], region=region)
        )
    return Started(moto, github, local, endpoint, identities)


def describe_setup(started: Started, out: Callable[[str], None]) -> None:
    local = started.local
    out(f"AWS (moto):        {started.moto.url}   cluster {local.cluster}")
    for profile in local.config.profiles:
        family = local.task_definitions[profile.name].rsplit("/", 1)[-1]
        out(f"  profile {profile.name:<9} {family}  labels {','.join(profile.labels)}")
    out(f"GitHub stand-in:   {started.github.url}")
    out(f"webhook endpoint:  {started.endpoint.url}   (secret {mask(local.webhook_secret)})")
    out("")


def deliver_all(rows: Sequence[Row], url: str) -> None:
    with requests.Session() as session:
        for row in rows:
            with step(f"deliver #{row.number} ({row.name})"):
                response = row.delivery.send(url, session=session)
                row.http_status = response.status_code
                try:
                    row.answer = response.json()
                except ValueError:
                    row.answer = {"message": response.text[:80]}


def count_duplicates(tasks: Sequence[dict[str, Any]]) -> int:
    """Tasks beyond the first for the same job (tag ``contract.TAG_GITHUB_JOB_ID``)."""
    per_job: dict[str, int] = {}
    for task in tasks:
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        job = tags.get(contract.TAG_GITHUB_JOB_ID, "?")
        per_job[job] = per_job.get(job, 0) + 1
    return sum(n - 1 for n in per_job.values())


def verify(rows: Sequence[Row], started: Started, tasks: Sequence[dict[str, Any]]) -> None:
    """Raise ``DemoFailure('check outcomes', ...)`` unless everything behaved."""
    problems = [f"#{r.number} {r.name}: {'; '.join(r.problems)}" for r in rows if r.problems]
    if problems:
        raise DemoFailure("check outcomes", " | ".join(problems))
    jit_calls = started.github.calls("POST", "generate-jitconfig")
    if len(tasks) != 1 or len(jit_calls) != 1 or count_duplicates(tasks):
        raise DemoFailure(
            "check outcomes",
            f"expected 1 task and 1 JIT config, got {len(tasks)} and {len(jit_calls)}",
        )
    issued = started.github.issued_configs[0]
    if any(issued in json.dumps(task, default=str) for task in tasks):
        raise DemoFailure("check outcomes", "the JIT config appears in describe_tasks")
    if any(issued in line for line in started.endpoint.output):
        raise DemoFailure("check outcomes", "the JIT config appears in the handler's logs")
    if not all(r.authorized for r in started.github.requests):
        raise DemoFailure("check outcomes", "a GitHub call was made without a token")
    if any(_pat_in(task, started.local) for task in tasks):
        raise DemoFailure("check outcomes", "the PAT appears in a task")


def play_task(started: Started, task_arn: str, tasks: Sequence[dict[str, Any]]) -> list[str]:
    """Run the launched task's ``jit_config.py`` as the task, then as a same-profile neighbour."""
    local = started.local
    task = next((t for t in tasks if t["taskArn"] == task_arn), None)
    if task is None:
        raise DemoFailure("play the task", f"no task {task_arn}")
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    role_id = local.task_role_ids[tags[contract.TAG_PROFILE]]
    env = container_environment(local.client("ecs"), task, local.client("s3"))
    neighbour = f"{task_arn.rsplit('/', 1)[0]}/0123456789abcdef0123456789abcdef"
    lines = []
    with tempfile.TemporaryDirectory() as root:
        other = started.identities.session(role_id, neighbour)
        denied = fetch_jit_config(
            env, started.identities.task_environment(other), Path(root), wait_seconds=1
        )
        if denied.returncode == 0 or "AccessDeniedException" not in denied.stderr:
            raise DemoFailure("play the task", "another task of the profile read the JIT config")
        lines.append(
            f"same-profile {short_arn(neighbour)}: AccessDeniedException "
            "(tag runner:task-userid is not its aws:userid)"
        )
        own = started.identities.session(role_id, task_arn)
        fetched = fetch_jit_config(env, started.identities.task_environment(own), Path(root))
        if fetched.returncode != 0:
            raise DemoFailure("play the task", fetched.stderr.strip())
        written = sorted(p.name for p in Path(root).iterdir())
        runner = json.loads((Path(root) / ".runner").read_text())
        if runner.get("agentName") != tags[contract.TAG_RUNNER_NAME]:
            raise DemoFailure("play the task", ".runner is not this task's runner")
        lines.append(
            f"{short_arn(task_arn)} as itself: jit_config.py wrote {', '.join(written)} (0600) "
            "to the runner root, where the runner reads them at start"
        )
    if env[SECRET_ID_ENV] in _sealed_names(local):
        raise DemoFailure("play the task", "the secret is still there after the task read it")
    lines.append("the task deleted the secret after reading it: a second read, by anyone, fails")
    return lines


def _sealed_names(local: LocalStack) -> list[str]:
    prefix = local.env["JIT_SECRET_PREFIX"]
    answer = local.client("secretsmanager").list_secrets(
        Filters=[{"Key": "name", "Values": [prefix]}]
    )
    return [entry["Name"] for entry in answer["SecretList"]]


def run(
    context: dict[str, Any],
    *,
    region: str = "us-east-1",
    out: Callable[[str], None] = print,
    verbose: bool = False,
) -> int:
    """Run the demo; 0 when every outcome matched, raises ``DemoFailure`` otherwise."""
    begun = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        started = start_all(cleanup, context, region)
        describe_setup(started, out)
        rows = plan(started.local.webhook_secret, started.local.config.profiles[0].labels)
        deliver_all(rows, started.endpoint.url)
        with step("read the tasks back from moto (describe_tasks)"):
            overrides = read_overrides(started.local)
            tasks = started.local.tasks()
        for row in rows:
            env = overrides.get(row.task_arn, {})
            if SECRET_ID_ENV in env:
                row.override = f"{SECRET_ID_ENV}={env[SECRET_ID_ENV]}"
            check_row(row, rows)
        out(render_table(rows))
        out("")
        with step("the task fetches its JIT config as itself; another task cannot"):
            for line in play_task(started, rows[0].task_arn, tasks):
                out(line)
        out("")
        jit_calls = started.github.calls("POST", "generate-jitconfig")
        out(
            f"{len(rows)} deliveries, {len(tasks)} tasks started, "
            f"{len(jit_calls)} JIT configs issued, {count_duplicates(tasks)} duplicates "
            f"({time.monotonic() - begun:.1f} s)"
        )
        if verbose:
            out("\nhandler output (JSON logs and EMF metrics):")
            for line in started.endpoint.output:
                out("  " + line)
        with step("check outcomes"):
            verify(rows, started, tasks)
    out("all outcomes as expected; everything started has been stopped")
    return 0


def _pat_in(task: dict[str, Any], local: LocalStack) -> bool:
    pat = local.client("secretsmanager").get_secret_value(SecretId=local.token_secret_arn)
    return str(pat["SecretString"]) in json.dumps(task, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.demo",
        description="Offline demo: signed webhook deliveries -> local handler -> moto ECS tasks.",
    )
    parser.add_argument(
        "--cdk-json", type=Path, default=REPO_ROOT / "cdk.json", help="profiles come from here"
    )
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print the handler's logs and metrics"
    )
    args = parser.parse_args(argv)
    try:
        with step("read cdk.json"):
            context = read_cdk_context(args.cdk_json)
        return run(context, region=args.region, verbose=args.verbose)
    except DemoFailure as failure:
        print(f"demo FAILED at step '{failure.step}': {failure.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
