"""CloudFormation custom resource: on stack delete, stop the runner tasks first, then clean up.

A running task keeps the cluster (``DeleteCluster`` fails with
``ClusterContainsTasksException``) and holds a network interface in the task's
subnet and security group, so neither can be deleted. The stack orders this
resource so CloudFormation deletes it after the webhook, retry and reconciler
Lambdas (nothing can start a task any more) and before the cluster, the
security group and the VPC; its delete handler stops every task in the
stack's own cluster and waits until each has reached ``STOPPED`` (a Fargate
task reaches ``STOPPED`` after ``DEPROVISIONING``, which detaches its network
interface: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).

The wait is bounded by the Lambda's remaining time. If tasks are still
stopping then, the resource reports ``FAILED`` naming them, so the delete
stops with a clear reason instead of failing later on the cluster; running
``cdk destroy`` again resumes it. Create and Update do nothing.

Once no task runs, what the stack cannot delete by itself goes too, best effort
(``clean_up``; the function has the dispatcher's environment, ``lambda_fn.config``):

* the sealed JIT configs under ``JIT_SECRET_PREFIX`` (``lambda_fn.jit_secret``): no task
  is left to read one;
* this deployment's runner registrations (``lambda_fn.naming.owns_runner``) at every
  scope it used: those its settings name (``lambda_fn.scopes``) and those of the
  tasks ECS still lists. ``DELETE`` of a runner that is running a job answers 422
  (``localdev/github_model.py`` cites the source): it is left, and named in the answer.

Neither can fail or hold up the delete: GitHub gets ``GITHUB_BUDGET_SECONDS`` in all
(no token yet, GitHub down, a scope the token cannot see: logged, and named in the
answer's reason, which ``cdk destroy`` prints), and the answer stays ``SUCCESS``.
GitHub removes a JIT runner that never connected after a day by itself
(docs/lifecycle.md, "Teardown").

The answer goes to CloudFormation's pre-signed ``ResponseURL`` as a PUT with an
empty content type
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambda_fn import aws
from lambda_fn.observability import logger

if TYPE_CHECKING:
    from lambda_fn.config import Settings
    from lambda_fn.github import GitHubClient

STOP_REASON = "CloudFormation stack is being deleted"
#: Time kept back for answering CloudFormation after the wait.
RESPONSE_RESERVE_SECONDS = 20
#: Time kept back from the wait for the clean-up after it (secrets, then GitHub).
CLEAN_UP_RESERVE_SECONDS = 90
#: All GitHub calls of the clean-up together, retries included.
GITHUB_BUDGET_SECONDS = 60
POLL_SECONDS = 5
#: At most this many names of what was left, in the answer (CloudFormation keeps 1000 chars).
NAMED_IN_REASON = 3


class StillStopping(RuntimeError):
    """Tasks had not stopped when the time ran out."""


def _list(ecs: Any, cluster: str, desired_status: str) -> list[str]:
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=cluster, desiredStatus=desired_status
    ):
        arns.extend(page.get("taskArns", []))
    return arns


def _not_yet_stopped(ecs: Any, cluster: str, arns: list[str]) -> list[str]:
    """Of tasks told to stop, those whose ``lastStatus`` is not ``STOPPED`` yet."""
    pending: list[str] = []
    for start in range(0, len(arns), 100):
        response = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])
        pending.extend(
            task["taskArn"] for task in response.get("tasks", []) if task["lastStatus"] != "STOPPED"
        )
    return pending


def stop_all_tasks(
    ecs: Any,
    cluster: str,
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Stop every task in ``cluster`` and wait until all are STOPPED; return how many.

    Tasks that appear while waiting are stopped too. Raises ``StillStopping``
    after ``seconds``.
    """
    deadline = clock() + seconds
    stopped: set[str] = set()
    while True:
        for arn in _list(ecs, cluster, "RUNNING"):
            ecs.stop_task(cluster=cluster, task=arn, reason=STOP_REASON)
            stopped.add(arn)
        pending = _not_yet_stopped(ecs, cluster, _list(ecs, cluster, "STOPPED"))
        if not pending and not _list(ecs, cluster, "RUNNING"):
            return len(stopped)
        if clock() >= deadline:
            raise StillStopping(
                f"{len(pending)} runner task(s) still stopping in {cluster}: "
                f"{', '.join(arn.rsplit('/', 1)[-1] for arn in pending[:5])}; "
                "run the delete again"
            )
        sleep(POLL_SECONDS)


@dataclass
class Leftovers:
    """What the clean-up deleted, and what it left (one phrase each, no secret in any)."""

    sealed_configs_deleted: int = 0
    registrations_deleted: int = 0
    #: ``<runner name> at <scope>``: GitHub refused to delete it while it runs a job.
    busy: list[str] = field(default_factory=list)
    #: What could not be done or looked at, and why.
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        done = (
            f"deleted {self.sealed_configs_deleted} sealed JIT config(s) and "
            f"{self.registrations_deleted} runner registration(s)"
        )
        left = [f"{name} is running a job" for name in self.busy] + self.problems
        if not left:
            return done
        shown = "; ".join(left[:NAMED_IN_REASON])
        hidden = len(left) - NAMED_IN_REASON
        more = f" (+{hidden} more in the log)" if hidden > 0 else ""
        return f"{done}; left: {shown}{more}"


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def remove_sealed_configs(
    sm: Any, settings: Settings, deadline: float, clock: Callable[[], float]
) -> tuple[int, list[str]]:
    """Delete every secret under ``JIT_SECRET_PREFIX``; how many, and what was left."""
    from lambda_fn import jit_secret

    deleted, left = 0, []
    for sealed in jit_secret.list_sealed(sm, settings):
        if clock() >= deadline:
            left.append(f"sealed JIT config {sealed.name} (no time left)")
            continue
        try:
            if jit_secret.discard(sm, sealed.name):
                deleted += 1
        except Exception as exc:
            left.append(f"sealed JIT config {sealed.name}: {_short(exc)}")
    return deleted, left


def remove_registrations(
    gh: GitHubClient,
    settings: Settings,
    scopes: list[str],
    report: Leftovers,
    *,
    deadline: float,
    clock: Callable[[], float],
) -> None:
    """Delete this deployment's runners at ``scopes``; a busy runner is left (422).

    Stops at the first sign that GitHub cannot be asked at all (no token, GitHub
    unavailable, no time left): every scope not looked at is named.
    """
    from lambda_fn.errors import GitHubPermanentError, SecretMissingError
    from lambda_fn.naming import owns_runner

    for index, scope in enumerate(scopes):
        unvisited = ", ".join(scopes[index:])
        if clock() >= deadline:
            report.problems.append(f"registrations at {unvisited} not listed: no time left")
            return
        try:
            runners = gh.list_runners(scope)
        except GitHubPermanentError as exc:  # this scope only (403, App not installed there)
            report.problems.append(f"registrations at {scope} not listed: {_short(exc)}")
            continue
        except Exception as exc:  # no token yet, GitHub down, KMS: nothing more to try
            why = "no GitHub token" if isinstance(exc, SecretMissingError) else "GitHub"
            report.problems.append(
                f"registrations at {unvisited} not listed ({why}): {_short(exc)}"
            )
            return
        for runner in runners:
            name = str(runner.get("name", ""))
            if not owns_runner(settings.runner_name_prefix, settings.deployment_id, name):
                continue
            try:
                gh.delete_runner(scope, int(runner["id"]))
                report.registrations_deleted += 1
            except GitHubPermanentError as exc:
                if exc.status == 422:
                    report.busy.append(f"{name} at {scope}")
                else:
                    report.problems.append(f"{name} at {scope}: {_short(exc)}")
            except Exception as exc:
                report.problems.append(f"{name} at {scope} not deleted: {_short(exc)}")
                return


def _task_scopes(settings: Settings) -> list[str]:
    """Scopes of the tasks ECS still lists (stopped ones for about an hour)."""
    from lambda_fn.cleanup import describe_tasks, list_task_arns

    scopes = []
    for status in ("STOPPED", "RUNNING"):
        for task in describe_tasks(settings, list_task_arns(settings, status)):
            scope = task.scope(settings.runner_scope)
            if scope is not None:
                scopes.append(scope)
    return scopes


def clean_up(seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Leftovers:
    """After the tasks: sealed configs, then registrations. Never raises; bounded by
    ``seconds`` (GitHub by ``GITHUB_BUDGET_SECONDS`` as well)."""
    report = Leftovers()
    deadline = clock() + max(seconds, 0)
    try:
        from lambda_fn.config import get_settings

        settings = get_settings()
    except Exception as exc:  # a stack whose teardown predates the environment, or a bug
        report.problems.append(f"sealed JIT configs and registrations: settings: {_short(exc)}")
        return report
    try:
        deleted, left = remove_sealed_configs(
            aws.client("secretsmanager"), settings, deadline, clock
        )
        report.sealed_configs_deleted = deleted
        report.problems.extend(left)
    except Exception as exc:
        report.problems.append(f"sealed JIT configs not listed: {_short(exc)}")
    from lambda_fn.scopes import configured_scopes

    scopes = {s.lower(): s for s in configured_scopes(settings)}
    try:
        for scope in _task_scopes(settings):
            scopes.setdefault(scope.lower(), scope)
    except Exception as exc:
        report.problems.append(f"the tasks' scopes not read: {_short(exc)}")
    if not scopes:
        report.problems.append(
            "registrations not looked for: ALLOWED_REPOSITORIES names no repository "
            "(or organisation) and no task is left to say where its runner registered"
        )
        return report
    from lambda_fn.github_auth import github_client

    budget = min(GITHUB_BUDGET_SECONDS, deadline - clock())
    if budget > 0:
        gh = github_client(settings, budget, shared_budget=True)
        remove_registrations(
            gh, settings, list(scopes.values()), report, deadline=deadline, clock=clock
        )
    else:
        report.problems.append(f"registrations at {', '.join(scopes.values())}: no time left")
    return report


def respond(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT the result to CloudFormation's pre-signed URL."""
    import requests

    body = {
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    response = requests.put(
        event["ResponseURL"], data=json.dumps(body), headers={"Content-Type": ""}, timeout=10
    )
    response.raise_for_status()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> None:
    """Custom resource handler (``Custom::RunnerTeardown``, property ``Cluster``)."""
    cluster = str(event.get("ResourceProperties", {}).get("Cluster", ""))
    physical_id = str(event.get("PhysicalResourceId") or f"{cluster}-runner-teardown")
    status, reason = "SUCCESS", "nothing to do"
    leftovers: Leftovers | None = None

    def seconds_left() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000 - RESPONSE_RESERVE_SECONDS

    try:
        if event["RequestType"] == "Delete" and cluster:
            try:
                budget = seconds_left() - CLEAN_UP_RESERVE_SECONDS
                count = stop_all_tasks(aws.client("ecs"), cluster, max(budget, 0))
                reason = f"stopped {count} runner task(s) in {cluster}"
            except Exception as exc:
                if aws.error_code(exc) != "ClusterNotFoundException":
                    raise
                reason = f"cluster {cluster} is already gone"  # a rollback of a failed create
            leftovers = clean_up(seconds_left())
            reason = f"{reason}; {leftovers.summary()}"
    except StillStopping as exc:
        status, reason = "FAILED", str(exc)
    except Exception as exc:  # answer CloudFormation whatever happens, or it waits an hour
        status = "FAILED"
        reason = f"could not stop the runner tasks: {type(exc).__name__}: {exc}"
    extra: dict[str, Any] = {"status": status, "reason": reason}
    if leftovers is not None:
        extra.update(busy_runners=leftovers.busy, left=leftovers.problems)
    logger.info("teardown", extra=extra)
    respond(event, status, reason, physical_id)
