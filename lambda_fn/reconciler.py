"""Scheduled reconciler: makes the world match what GitHub still needs.

Runs every few minutes (EventBridge) and, each step independent and best
effort (one failing step does not stop the others):

1. **Idle runners.** A runner task alive longer than ``RUNNER_IDLE_TIMEOUT_SECONDS``
   whose runner is idle is released (registration deleted, then task stopped;
   see ``cleanup.release``). Busy runners are never touched.
2. **Runners that died before their job.** For each job whose tasks have all
   stopped (ECS keeps stopped tasks for about an hour), GitHub is asked for the
   job's status; if it still needs a runner (``queued``/``waiting``/``pending``),
   a replacement is launched, at most ``MAX_REPLACEMENTS`` per job, each at most
   once (its own idempotency record), and only if ``admission.recheck`` still
   admits the job to the profile (labels, repository, policy). A task that exited
   ``TASK_EXIT_VERSION_REFUSED`` (GitHub refused its runner version) is not replaced:
   the next one would run the same image and be refused too. A status that
   cannot be read is unknown, not done: the job is looked at again next run.
3. **Offline registrations.** Runners whose name is this deployment's (prefix *and*
   deployment id, ``lambda_fn.naming``) that GitHub reports ``offline`` and that no
   live task of ours owns are deleted; another deployment's runners never match.
4. **Missed deliveries.** GitHub never redelivers a failed delivery by itself
   (https://docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks):
   recent ``workflow_job`` ``queued`` deliveries of our webhook that failed (a
   429 from the stage throttle, a 5xx, a timeout) and never succeeded are
   redelivered, the latest failed attempt of each once per run and at most
   ``MAX_REDELIVERIES_PER_GUID`` attempts in all; the job's idempotency record makes
   a redelivery of a job that did launch start nothing. The webhook is the one
   ``fargate-runners setup`` recorded in the stack's SSM parameter
   (``GITHUB_HOOK_PARAMETER``), or ``GITHUB_HOOK_PATH`` when set by hand.
5. **Warm pools** (``lambda_fn.warm_pool``). For each profile with a pool, idle
   members older than the pool's maximum age, and members beyond the schedule's
   target (oldest first), are released; then the pool is topped up to its target,
   never past ``max_runners``. Busy members are never touched: a member is idle
   when GitHub lists its runner as not busy, and ``cleanup.release`` deletes the
   registration before it stops anything (422 while busy).
6. **Runner versions** (``lambda_fn.runner_version``). Once a day GitHub is asked which
   runner releases it offers (cached in the idempotency table); every run emits, per
   profile, the days left before GitHub stops assigning jobs to the profile's runner
   version (``RunnerVersionDaysLeft``), or ``RunnerVersionUnknown``.
7. **Jobs waiting for an environment's approval** (``lambda_fn.waiting``). Dispatch
   remembers them instead of launching; GitHub may never send the ``queued`` delivery
   that follows approval. Up to ``MAX_WAITING_CHECKS`` remembered jobs per run, least
   recently looked at first: GitHub's job status ``queued`` and no pending deployment
   for its environment -> ``admission.recheck`` then ``launch_once`` (the job's own
   launch record: if the second ``queued`` already launched, nothing new starts), then
   forgotten; ``completed``/``in_progress``/gone -> forgotten; still waiting or
   unreadable -> kept for the next run.
8. **Sealed JIT configs left behind.** A task deletes its secret after reading
   it; a secret under ``JIT_SECRET_PREFIX`` whose task has stopped, or that is
   older than ``SEALED_CONFIG_GRACE`` without a live task, is deleted (a task
   that never started, or a launch that failed half-way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lambda_fn import aws, jit_secret, runner_version
from lambda_fn.admission import recheck
from lambda_fn.cleanup import (
    RunnerTask,
    describe_tasks,
    in_warm_pool,
    list_task_arns,
    release,
)
from lambda_fn.config import (
    HOOK_NOT_RECORDED,
    REDELIVERY_LOOKBACK_SECONDS,
    Profile,
    Settings,
    get_settings,
    hook_path,
)
from lambda_fn.contract import TASK_EXIT_VERSION_REFUSED
from lambda_fn.dispatch import (
    QueuedJob,
    find_profile,
    github_client,
    launch_once,
    launch_pool_runner,
)
from lambda_fn.errors import ConfigError, DispatchError, GitHubPermanentError
from lambda_fn.github import JOB_STATUSES_NEEDING_RUNNER, GitHubClient, scope_path
from lambda_fn.launcher import count_running_tasks
from lambda_fn.naming import owns_runner
from lambda_fn.observability import count, logger, metrics

if TYPE_CHECKING:
    from lambda_fn.waiting import WaitingJob

#: Deliveries older than this are left alone (within the de-duplication window, which
#: ``IDEMPOTENCY_TTL_SECONDS`` may not make shorter, so a redelivery is never a "replay").
DELIVERY_LOOKBACK = timedelta(seconds=REDELIVERY_LOOKBACK_SECONDS)
MAX_REDELIVERIES_PER_GUID = 3
#: A secret this old without a live task is left over: well above the task's fetch
#: bound (runner/jit_config.py, 120 s) and a launch's run_task -> seal gap.
SEALED_CONFIG_GRACE = timedelta(minutes=10)
#: Remembered waiting jobs looked at per run (each: one or two GitHub calls).
MAX_WAITING_CHECKS = 20
#: Job statuses that mean "still before approval" (GET .../actions/jobs/{id} ``status``).
WAITING_STATUSES = frozenset({"waiting", "pending", "requested"})


def reconcile(settings: Settings, now: datetime | None = None) -> Counter[str]:
    """Run every step once; returns what was done (also emitted as metrics)."""
    now = now or datetime.now(UTC)
    gh = github_client(settings)
    report: Counter[str] = Counter()
    alive = _running(settings)
    stopped = describe_tasks(settings, list_task_arns(settings, "STOPPED"))
    steps: list[tuple[str, Callable[[], None]]] = [
        ("idle", lambda: _stop_idle(settings, gh, alive, now, report)),
        ("replace", lambda: _replace_dead(settings, gh, alive, stopped, report)),
        # Re-listed: runners launched since (by this run's replacements or a webhook) are owned.
        (
            "registrations",
            lambda: _remove_offline(settings, gh, _running(settings), stopped, report),
        ),
        ("warm_pools", lambda: _keep_warm(settings, gh, _running(settings), now, report)),
        ("deliveries", lambda: _redeliver_failed(settings, gh, now, report)),
        ("runner_versions", lambda: _watch_versions(settings, gh, now, report)),
        ("waiting", lambda: _launch_approved(settings, gh, now, report)),
        ("sealed_configs", lambda: _remove_sealed_configs(settings, alive, stopped, now, report)),
    ]
    failed = _run_steps(steps, report)
    for key, value in report.items():
        count(f"Reconciler_{key}", value=value)
    logger.info("reconciled", extra={"report": dict(report)})
    if failed and (len(failed) == len(steps) or any(map(_cannot_reach_github, failed.values()))):
        raise ReconcileFailed(
            f"reconciler steps failed: {', '.join(f'{k}: {v}' for k, v in failed.items())}"
        )
    return report


class ReconcileFailed(RuntimeError):
    """The run could not do its job: every step failed, or GitHub refused our credentials.

    Raised after every step has run and the metrics are recorded, so the run ends as a
    Lambda error (the ``ReconcilerFailing`` alarm) as well as in ``ReconcilerStepFailures``.
    """


def _run_steps(
    steps: list[tuple[str, Callable[[], None]]], report: Counter[str]
) -> dict[str, Exception]:
    """Run each step; one failing does not stop the others. Returns the failed ones.

    Each failure is logged and counted as ``ReconcilerStepFailures`` by ``step`` (which
    step) and once more in total (``service`` only: what the ``ReconcilerStepsFailing``
    alarm watches, so a step added later is watched without a new alarm).
    """
    failed: dict[str, Exception] = {}
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # each step is independent; the next run tries again
            failed[name] = exc
            report["step_errors"] += 1
            count("ReconcilerStepFailures", ("step", name))
            logger.exception("reconcile step failed", extra={"step": name, "error": str(exc)})
    if failed:
        count("ReconcilerStepFailures", value=len(failed))
    return failed


def _cannot_reach_github(exc: Exception) -> bool:
    """GitHub refused the credentials themselves (401: a revoked or rotated PAT, an App
    whose key or installation is gone): no step that needs GitHub can work until an
    operator acts, so the run must end visibly. 403/404 may concern one repository only."""
    return isinstance(exc, GitHubPermanentError) and exc.status == 401


def _running(settings: Settings) -> list[RunnerTask]:
    return describe_tasks(settings, list_task_arns(settings, "RUNNING"))


def _utc(moment: datetime) -> datetime:
    """boto3 returns aware datetimes; treat a naive one as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _age(task: RunnerTask, now: datetime) -> timedelta:
    if task.created_at is None:
        return timedelta(0)
    return now - _utc(task.created_at)


def _stop_idle(
    settings: Settings,
    gh: GitHubClient,
    alive: list[RunnerTask],
    now: datetime,
    report: Counter[str],
) -> None:
    limit = timedelta(seconds=settings.runner_idle_timeout_seconds)
    for task in alive:
        if task.alive and _age(task, now) > limit and not in_warm_pool(settings, task):
            reason = f"idle for more than {settings.runner_idle_timeout_seconds} s without a job"
            if release(settings, gh, task, reason):
                report["idle_stopped"] += 1
            else:
                report["busy_kept"] += 1


def _replace_dead(
    settings: Settings,
    gh: GitHubClient,
    alive: list[RunnerTask],
    stopped: list[RunnerTask],
    report: Counter[str],
) -> None:
    alive_jobs = {t.job_id for t in alive if t.alive}
    by_job: dict[int, list[RunnerTask]] = {}
    for task in stopped:
        if task.job_id is not None and task.job_id not in alive_jobs:
            by_job.setdefault(task.job_id, []).append(task)
    for job_id, tasks in sorted(by_job.items()):
        last = tasks[-1]
        if last.owner_repo is None or not last.profile:
            continue
        owner, repo = last.owner_repo
        try:
            github_job = gh.get_job(owner, repo, job_id)
            status = str(github_job.get("status", ""))
        except DispatchError as exc:
            report["status_unknown"] += 1
            logger.warning("job status unknown", extra={"job_id": job_id, "error": str(exc)})
            continue
        if status not in JOB_STATUSES_NEEDING_RUNNER:
            continue
        attempt = len(tasks)  # every stopped task was one runner for this job
        if last.exit_code == TASK_EXIT_VERSION_REFUSED:
            report["version_refused"] += 1
            logger.error(
                "GitHub refused the runner version of this profile's image; not replacing "
                "the runner (move the image to a current runner release: README, Runner "
                "versions)",
                extra={"job_id": job_id, "profile": last.profile, "task_arn": last.task_arn},
            )
            continue
        logger.warning(
            "runner stopped before its job started",
            extra={
                "job_id": job_id,
                "task_arn": last.task_arn,
                "stopped_reason": last.stopped_reason,
                "exit_code": last.exit_code,
                "runners_so_far": attempt,
            },
        )
        if attempt > settings.max_replacements:
            report["replacements_exhausted"] += 1
            continue
        try:
            profile = find_profile(settings, last.profile)
        except ConfigError:
            report["unknown_profile"] += 1
            continue
        job = QueuedJob(
            job_id=job_id,
            run_id=last.run_id or 0,
            run_attempt=1,
            owner=owner,
            repo=repo,
            labels=profile.labels,
            profile=profile.name,
            # GitHub's job answer names no environment. The stopped runner was launched
            # for this job and profile, which dispatch does only once the delivery's
            # environment met required_environment (docs/waiting-jobs.md).
            environment=profile.policy.required_environment if profile.policy else None,
        )
        try:
            refusal = recheck(settings, job, github_job)
        except DispatchError as exc:
            report["status_unknown"] += 1
            logger.warning("policy re-check failed", extra={"job_id": job_id, "error": str(exc)})
            continue
        if refusal is not None:
            report["replacement_refused"] += 1
            logger.warning("replacement refused", extra={"job_id": job_id, "reason": refusal})
            continue
        result = launch_once(job, replacement=attempt)
        if not result.get("duplicate"):
            report["replaced"] += 1


def _watch_versions(
    settings: Settings, gh: GitHubClient, now: datetime, report: Counter[str]
) -> None:
    """Days left per profile before GitHub stops giving its runner version jobs."""
    offer, error = runner_version.current_offer(settings, gh, aws.client("dynamodb"), now)
    if error is not None:
        report["version_check_failed"] += 1
        logger.warning("could not ask GitHub for its runner releases", extra={"error": error})
    profiles = [(p.name, p.runner_version) for p in settings.profiles]
    if offer is None:
        found = [runner_version.Standing(name, v, None, "unknown", None) for name, v in profiles]
    else:
        found = runner_version.standings(profiles, offer, now)
    runner_version.emit(found)
    for item in found:
        if item.state != "current":
            log = logger.warning if item.state in ("behind", "unknown") else logger.error
            log(
                "runner version " + item.state,
                extra={"profile": item.profile, "detail": item.describe()},
            )


def _launch_approved(
    settings: Settings, gh: GitHubClient, now: datetime, report: Counter[str]
) -> None:
    """Launch remembered waiting jobs GitHub now shows approved (module docstring, step 7)."""
    from lambda_fn import waiting

    at = int(now.timestamp())
    remembered = waiting.remembered(settings)
    expired = [w.job_id for w in remembered if w.expires <= at]
    if expired:
        waiting.forget(settings, expired)
        report["waiting_expired"] += len(expired)
    due = sorted((w for w in remembered if w.expires > at), key=lambda w: (w.checked, w.since))
    for entry in due[:MAX_WAITING_CHECKS]:
        outcome = _look_at_waiting(settings, gh, entry)
        report[f"waiting_{outcome}"] += 1
        if outcome in ("kept", "unknown", "deferred"):
            waiting.mark_checked(settings, entry.job_id, at)
        else:
            waiting.forget(settings, [entry.job_id])


def _look_at_waiting(settings: Settings, gh: GitHubClient, entry: WaitingJob) -> str:
    """One remembered job: ``launched``, ``duplicate``, ``refused``, ``done``, ``kept``,
    ``unknown`` (GitHub could not be read) or ``deferred`` (the launch failed for now)."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
    )

    from lambda_fn import waiting
    from lambda_fn.errors import GitHubPermanentError

    extra = {"job_id": entry.job_id, "environment": entry.environment}
    try:
        github_job = gh.get_job(entry.owner, entry.repo, entry.job_id)
    except GitHubPermanentError as exc:
        if exc.status == 404:
            return "done"  # the run or repository is gone
        logger.warning("waiting job unreadable", extra={**extra, "error": str(exc)})
        return "unknown"
    except DispatchError as exc:
        logger.warning("waiting job unreadable", extra={**extra, "error": str(exc)})
        return "unknown"
    status = str(github_job.get("status", ""))
    if status in WAITING_STATUSES:
        return "kept"
    if status != "queued":
        return "done"  # a runner took it, or it finished, was cancelled or rejected
    job = entry.queued_job()
    try:
        pending = gh.pending_environments(entry.owner, entry.repo, entry.run_id)
        if waiting.waits_on(pending, entry.environment):
            return "kept"  # GitHub shows queued before the gate clears (runs-on #386)
        refusal = recheck(settings, job, github_job)
    except DispatchError as exc:
        logger.warning("waiting job not checked", extra={**extra, "error": str(exc)})
        return "unknown"
    if refusal is not None:
        logger.warning("approved job refused", extra={**extra, "reason": refusal})
        return "refused"
    try:
        result = launch_once(job)
    except IdempotencyAlreadyInProgressError:
        return "duplicate"  # the second queued delivery is launching it right now
    except Exception as exc:  # capacity, GitHub, ECS: the next run tries again
        logger.warning("approved job not launched", extra={**extra, "error": str(exc)})
        return "deferred"
    if result.get("duplicate"):
        return "duplicate"
    logger.info("approved job launched", extra={**extra, "task_arn": result.get("task_arn")})
    return "launched"


def _remove_offline(
    settings: Settings,
    gh: GitHubClient,
    alive: list[RunnerTask],
    stopped: list[RunnerTask],
    report: Counter[str],
) -> None:
    owned = {t.runner_name for t in alive if t.alive}
    for scope in _scopes(settings, [*alive, *stopped]):
        for runner in gh.list_runners(scope):
            name = str(runner.get("name", ""))
            if (
                owns_runner(settings.runner_name_prefix, settings.deployment_id, name)
                and runner.get("status") == "offline"
                and not runner.get("busy")
                and name not in owned
            ):
                gh.delete_runner(scope, int(runner["id"]))
                report["registrations_removed"] += 1


def _keep_warm(
    settings: Settings,
    gh: GitHubClient,
    alive: list[RunnerTask],
    now: datetime,
    report: Counter[str],
) -> None:
    """Hold each profile's warm pool at its target (module docstring, step 5)."""
    for profile in settings.profiles:
        pool = profile.warm
        if pool is None:
            continue
        members = [t for t in alive if t.alive and t.pool == profile.name]
        scope = scope_path(settings.runner_scope, *pool.owner_repo(settings.runner_scope))
        listed = {str(r.get("name")): r for r in gh.list_runners(scope)} if members else {}
        # Idle = registered and not busy (still starting counts: it will be online soon).
        # A member whose registration is gone has run its job and is exiting.
        idle = sorted(
            (
                t
                for t in members
                if t.runner_name in listed and not listed[t.runner_name].get("busy")
            ),
            key=lambda t: _age(t, now),
        )
        max_age = timedelta(seconds=pool.max_age_seconds)
        target = pool.target(now)
        keep: list[RunnerTask] = []
        for task in idle:  # youngest first: the oldest are released first
            expired = _age(task, now) > max_age
            if not expired and len(keep) < target:
                keep.append(task)
                continue
            reason = (
                f"warm runner older than {pool.max_age_seconds} s"
                if expired
                else f"warm pool of {profile.name} above its target of {target}"
            )
            if release(settings, gh, task, reason):
                report["warm_expired" if expired else "warm_released"] += 1
            else:
                report["busy_kept"] += 1
        _top_up(settings, profile, target - len(keep), report)


def _idle(runner: dict[str, Any] | None) -> bool:
    return runner is not None and not runner.get("busy")


def _top_up(settings: Settings, profile: Profile, missing: int, report: Counter[str]) -> None:
    """Start up to ``missing`` pool runners, never past the profile's ``max_runners``."""
    if missing <= 0:
        return
    if profile.max_runners is not None:
        running = count_running_tasks(
            aws.client("ecs"), settings.ecs_cluster, profile.task_definition
        )
        room = max(0, profile.max_runners - running)
        if room < missing:
            report["warm_capped"] += missing - room
            logger.warning(
                "warm pool held below its target by max_runners",
                extra={"profile": profile.name, "missing": missing, "room": room},
            )
            missing = room
    for _ in range(missing):
        result = launch_pool_runner(settings, profile)  # no cap check of its own: done above
        report["warm_started"] += 1
        logger.info("warm runner started", extra=result)


def _remove_sealed_configs(
    settings: Settings,
    alive: list[RunnerTask],
    stopped: list[RunnerTask],
    now: datetime,
    report: Counter[str],
) -> None:
    live = {t.task_arn for t in alive if t.alive}
    gone = {t.task_arn for t in stopped}
    sm = aws.client("secretsmanager")
    for sealed in jit_secret.list_sealed(sm, settings):
        if sealed.task_arn in live:
            continue
        old = sealed.created is None or now - _utc(sealed.created) > SEALED_CONFIG_GRACE
        if (sealed.task_arn in gone or old) and jit_secret.discard(sm, sealed.name):
            report["sealed_configs_removed"] += 1
            logger.info(
                "removed a JIT config its task never read",
                extra={"secret": sealed.name, "task_arn": sealed.task_arn},
            )


def _scopes(settings: Settings, tasks: Iterable[RunnerTask]) -> list[str]:
    scopes: set[str] = set()
    for task in tasks:
        scope = task.scope(settings.runner_scope)
        if scope is not None:
            scopes.add(scope)
    return sorted(scopes)


def webhook_path(settings: Settings) -> str | None:
    """Our webhook's REST path: set by hand, or recorded by ``fargate-runners setup``."""
    if settings.github_hook_path or not settings.github_hook_parameter:
        return settings.github_hook_path
    name = settings.github_hook_parameter
    value = str(aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
    if value.strip() == HOOK_NOT_RECORDED:
        logger.warning(
            "no webhook recorded: failed deliveries cannot be redelivered until "
            "`fargate-runners setup` has run",
            extra={"parameter": name},
        )
        return None
    return hook_path(value, f"SSM parameter {name}")


def _redeliver_failed(
    settings: Settings, gh: GitHubClient, now: datetime, report: Counter[str]
) -> None:
    path = webhook_path(settings)
    if path is None:
        report["webhook_unknown"] += 1
        return
    deliveries = gh.list_deliveries(path)
    by_guid: dict[str, list[dict[str, Any]]] = {}
    for delivery in deliveries:
        by_guid.setdefault(str(delivery.get("guid")), []).append(delivery)
    for attempts in by_guid.values():
        latest = max(attempts, key=lambda d: str(d.get("delivered_at", "")))
        if (
            latest.get("event") != "workflow_job"
            or latest.get("action") != "queued"
            or any(_succeeded(d) for d in attempts)
            or len(attempts) >= MAX_REDELIVERIES_PER_GUID
            or not _recent(latest, now)
        ):
            continue
        gh.redeliver(path, int(latest["id"]))
        logger.info(
            "failed delivery redelivered",
            extra={"guid": latest.get("guid"), "status_code": latest.get("status_code")},
        )
        report["redelivered"] += 1


def _succeeded(delivery: dict[str, Any]) -> bool:
    code = delivery.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


def _recent(delivery: dict[str, Any], now: datetime) -> bool:
    try:
        delivered = datetime.fromisoformat(str(delivery["delivered_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return False
    return now - delivered < DELIVERY_LOOKBACK


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge scheduled handler."""
    return dict(reconcile(get_settings()))
