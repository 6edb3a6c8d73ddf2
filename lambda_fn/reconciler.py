"""Scheduled reconciler: makes the world match what GitHub still needs.

Runs every few minutes (EventBridge) and, each step independent and best
effort (one failing step does not stop the others). Its cost follows the live fleet,
not history:

- one listing of running tasks (and one of stopped ones) per run, shared by every
  step; tasks the run itself starts are added to it, and a registration is deleted as
  orphaned only after its task has been looked for again, by name, at that moment;
- a job is asked about on GitHub only when our own records do not already say it
  started or ended, and once per stopped task, not on every run
  (``lambda_fn.job_records``); those lookups run on a few threads;
- the run has a time budget (``DEFAULT_BUDGET_SECONDS``, less what the Lambda has
  left). The vital steps come first (replacements, warm pools, redelivery), and the
  replacements' GitHub lookups stop early enough to leave ``LATER_STEPS_SECONDS`` for
  the rest. Whatever could not be done (lookups left for the next run, steps skipped)
  is reported as ``ReconcilerOverBudget``, which an alarm watches
  (``fargate_runners/alarms.py``).

The steps, in the order they run (numbers as below): 2, 5, 4, 7, 1, 3, capacity
(``lambda_fn.capacity.correct``), 6, 8.

1. **Idle runners.** A runner task alive longer than ``RECONCILER_IDLE_TIMEOUT_SECONDS``
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

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lambda_fn import aws, capacity, jit_secret, job_records, runner_version
from lambda_fn.admission import recheck
from lambda_fn.cleanup import describe_tasks, in_warm_pool, list_task_arns, release
from lambda_fn.config import (
    HOOK_NOT_RECORDED,
    REDELIVERY_LOOKBACK_SECONDS,
    Profile,
    Settings,
    get_settings,
    hook_path,
)
from lambda_fn.contract import TASK_EXIT_VERSION_REFUSED
from lambda_fn.errors import CapacityWaitError, DispatchError, GitHubPermanentError
from lambda_fn.github import (
    JOB_STATUSES_NEEDING_RUNNER,
    GitHubClient,
    scope_path,
    thread_session,
)
from lambda_fn.github_auth import github_client, token_provider
from lambda_fn.idempotent_launch import launch_once, register_invocation
from lambda_fn.jobs import Job, UnknownProfileError, WaitingJob, profile_named
from lambda_fn.launch import launch_pool_runner
from lambda_fn.naming import launched_for, owns_runner
from lambda_fn.observability import count, logger, metrics
from lambda_fn.run_task import started_by
from lambda_fn.runner_task import RunnerTask

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


#: The run's own time budget: the reconciler Lambda's timeout (120 s) less a margin for
#: emitting metrics and logs after the last step.
DEFAULT_BUDGET_SECONDS = 100.0
#: Kept for the steps after the replacements: warm pools and redelivery (a few GitHub
#: calls each), then the cleanup steps.
LATER_STEPS_SECONDS = 40.0
#: GitHub lookups of stopped jobs in flight at once. Small: GitHub asks integrators to
#: avoid many concurrent requests (secondary rate limits,
#: https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api).
LOOKUP_WORKERS = 4


@dataclass
class Budget:
    """The run's deadline on a monotonic clock (injectable for tests)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def left(self) -> float:
        return self.seconds - (self.clock() - self.started)


@dataclass
class Fleet:
    """The run's one look at ECS: our running and stopped tasks, and what it started."""

    alive: list[RunnerTask]
    stopped: list[RunnerTask]

    @classmethod
    def listed(cls, settings: Settings) -> Fleet:
        return cls(
            alive=describe_tasks(settings, list_task_arns(settings, "RUNNING")),
            stopped=describe_tasks(settings, list_task_arns(settings, "STOPPED")),
        )

    def started(self, settings: Settings, task_arns: list[str]) -> None:
        """Add tasks this run started (one ``DescribeTasks`` per 100)."""
        known = {t.task_arn for t in self.alive}
        fresh = [arn for arn in task_arns if arn and arn not in known]
        if fresh:
            self.alive.extend(describe_tasks(settings, fresh))


def reconcile(
    settings: Settings,
    now: datetime | None = None,
    *,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Counter[str]:
    """Run every step once within the budget; returns what was done (also as metrics)."""
    now = now or datetime.now(UTC)
    budget = Budget(DEFAULT_BUDGET_SECONDS if budget_seconds is None else budget_seconds, clock)
    gh = github_client(settings)
    report: Counter[str] = Counter()
    fleet = Fleet.listed(settings)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("replace", lambda: _replace_dead(settings, gh, fleet, report, budget)),
        ("warm_pools", lambda: _keep_warm(settings, gh, fleet, now, report)),
        ("deliveries", lambda: _redeliver_failed(settings, gh, now, report)),
        ("waiting", lambda: _launch_approved(settings, gh, now, report)),
        ("idle", lambda: _stop_idle(settings, gh, fleet.alive, now, report)),
        ("registrations", lambda: _remove_offline(settings, gh, fleet, report)),
        ("capacity", lambda: _correct_capacity(settings, report)),
        ("runner_versions", lambda: _watch_versions(settings, gh, now, report)),
        (
            "sealed_configs",
            lambda: _remove_sealed_configs(settings, fleet.alive, fleet.stopped, now, report),
        ),
    ]
    failed, skipped = _run_steps(steps, report, budget)
    if skipped or report["lookups_deferred"]:
        report["over_budget"] += 1
        count("ReconcilerOverBudget")
        logger.error(
            "reconciler ran out of time: the rest is left to the next run",
            extra={
                "skipped_steps": skipped,
                "lookups_deferred": report["lookups_deferred"],
                "budget_seconds": budget.seconds,
            },
        )
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
    steps: list[tuple[str, Callable[[], None]]], report: Counter[str], budget: Budget
) -> tuple[dict[str, Exception], list[str]]:
    """Run each step while the budget lasts; one failing does not stop the others.
    Returns the failed ones and the ones skipped for lack of time.

    Each failure is logged and counted as ``ReconcilerStepFailures`` by ``step`` (which
    step) and once more in total (``service`` only: what the ``ReconcilerStepsFailing``
    alarm watches, so a step added later is watched without a new alarm).
    """
    failed: dict[str, Exception] = {}
    skipped: list[str] = []
    for name, step in steps:
        if budget.left() <= 0:
            skipped.append(name)
            continue
        try:
            step()
        except Exception as exc:  # each step is independent; the next run tries again
            failed[name] = exc
            report["step_errors"] += 1
            count("ReconcilerStepFailures", ("step", name))
            logger.exception("reconcile step failed", extra={"step": name, "error": str(exc)})
    if failed:
        count("ReconcilerStepFailures", value=len(failed))
    return failed, skipped


def _cannot_reach_github(exc: Exception) -> bool:
    """GitHub refused the credentials themselves (401: a revoked or rotated PAT, an App
    whose key or installation is gone): no step that needs GitHub can work until an
    operator acts, so the run must end visibly. 403/404 may concern one repository only."""
    return isinstance(exc, GitHubPermanentError) and exc.status == 401


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
    seconds = settings.reconciler_idle_timeout_seconds
    limit = timedelta(seconds=seconds)
    for task in alive:
        if task.alive and _age(task, now) > limit and not in_warm_pool(settings, task):
            reason = f"idle for more than {seconds} s without a job"
            if release(settings, gh, task, reason):
                report["idle_stopped"] += 1
            else:
                report["busy_kept"] += 1


@dataclass(frozen=True)
class _Stopped:
    """A job whose runner tasks have all stopped."""

    job_id: int
    tasks: list[RunnerTask]

    @property
    def last(self) -> RunnerTask:
        return self.tasks[-1]


def _replace_dead(
    settings: Settings,
    gh: GitHubClient,
    fleet: Fleet,
    report: Counter[str],
    budget: Budget,
) -> None:
    alive_jobs = {t.job_id for t in fleet.alive if t.alive}
    by_job: dict[int, list[RunnerTask]] = {}
    for task in fleet.stopped:
        if task.job_id is not None and task.job_id not in alive_jobs:
            by_job.setdefault(task.job_id, []).append(task)
    candidates = [
        _Stopped(job_id, tasks)
        for job_id, tasks in sorted(by_job.items())
        if tasks[-1].owner_repo is not None and tasks[-1].profile
    ]
    if not candidates:
        return
    done, checked = job_records.lookup(
        settings, [c.job_id for c in candidates], [c.last.task_arn for c in candidates]
    )
    report["jobs_known_done"] += sum(1 for c in candidates if c.job_id in done)
    open_jobs = [c for c in candidates if c.job_id not in done]
    to_ask = [c for c in open_jobs if c.last.task_arn not in checked]
    answers = _ask_github(settings, to_ask, report, budget)
    started: list[str] = []
    for item in open_jobs:
        if item.last.task_arn in checked:
            # Decided on an earlier run for this very task: repeat only what needs no call.
            _report_known(settings, item, checked[item.last.task_arn], report)
            continue
        if item.job_id not in answers:
            continue  # unknown (GitHub failed) or deferred (no time left): next run
        github_job = answers[item.job_id]
        status = str(github_job.get("status", ""))
        task_arn = _decide(settings, item, status, github_job, report)
        if task_arn is not False:
            job_records.remember_check(settings, item.last.task_arn, status)
            if isinstance(task_arn, str):
                started.append(task_arn)
    fleet.started(settings, started)


def _ask_github(
    settings: Settings, items: list[_Stopped], report: Counter[str], budget: Budget
) -> dict[int, dict[str, Any]]:
    """``GET actions/jobs/{id}`` for each item, a few at a time, while time is left.

    Each worker thread has its own client and ``requests`` session
    (``lambda_fn.github.thread_session``); the token provider is shared.
    """
    if not items:
        return {}
    per_call = settings.github_timeout_budget_seconds

    def ask(item: _Stopped) -> dict[str, Any]:
        owner, repo = item.last.owner_repo or ("", "")
        client = github_client_for_thread(settings, per_call)
        return client.get_job(owner, repo, item.job_id)

    answers: dict[int, dict[str, Any]] = {}
    queue = list(items)
    running: dict[Future[dict[str, Any]], _Stopped] = {}
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS, thread_name_prefix="lookup") as pool:
        while queue or running:
            # A lookup is started only if it can end before the later steps' share.
            while queue and len(running) < LOOKUP_WORKERS:
                if budget.left() - per_call < LATER_STEPS_SECONDS:
                    break
                item = queue.pop(0)
                running[pool.submit(ask, item)] = item
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                item = running.pop(future)
                try:
                    answers[item.job_id] = future.result()
                except DispatchError as exc:
                    report["status_unknown"] += 1
                    logger.warning(
                        "job status unknown", extra={"job_id": item.job_id, "error": str(exc)}
                    )
    if queue:
        report["lookups_deferred"] += len(queue)
    report["jobs_looked_up"] += len(items) - len(queue)
    return answers


def github_client_for_thread(settings: Settings, budget_seconds: float) -> GitHubClient:
    """A client on the calling thread's own session (``lambda_fn.github.thread_session``)."""
    return GitHubClient(
        settings.github_api_url,
        token_provider(settings),
        session=thread_session(),
        budget_seconds=budget_seconds,
    )


def _report_known(settings: Settings, item: _Stopped, status: str, report: Counter[str]) -> None:
    """A job already decided for its last stopped task: the same figures, no GitHub call."""
    if status not in JOB_STATUSES_NEEDING_RUNNER:
        return
    if item.last.exit_code == TASK_EXIT_VERSION_REFUSED:
        report["version_refused"] += 1
    elif len(item.tasks) > settings.max_replacements:
        report["replacements_exhausted"] += 1


def _decide(
    settings: Settings,
    item: _Stopped,
    status: str,
    github_job: dict[str, Any],
    report: Counter[str],
) -> str | bool:
    """Replace the job's runner if it still needs one. Returns the new task's ARN, True
    when decided without a new task, False when undecided (ask again next run)."""
    if status not in JOB_STATUSES_NEEDING_RUNNER:
        return True
    job_id, tasks, last = item.job_id, item.tasks, item.last
    owner, repo = last.owner_repo or ("", "")
    attempt = len(tasks)  # every stopped task was one runner for this job
    if last.exit_code == TASK_EXIT_VERSION_REFUSED:
        report["version_refused"] += 1
        logger.error(
            "GitHub refused the runner version of this profile's image; not replacing "
            "the runner (move the image to a current runner release: "
            "docs/lifecycle.md, Runner versions)",
            extra={"job_id": job_id, "profile": last.profile, "task_arn": last.task_arn},
        )
        return True
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
        return True
    try:
        profile = profile_named(settings.profiles, str(last.profile))  # the task's tag
    except UnknownProfileError:
        report["unknown_profile"] += 1
        return True
    job = Job(
        job_id=job_id,
        run_id=last.run_id or 0,
        run_attempt=1,
        owner=owner,
        repo=repo,
        labels=profile.labels,
        profile=profile,
        # GitHub's job answer names no environment. The stopped runner was launched
        # for this job and profile, which dispatch does only once the delivery's
        # environment met required_environment (docs/waiting-jobs.md).
        environment=profile.policy.required_environment if profile.policy else None,
        replacement=attempt,  # its own launch record: each replacement at most once
    )
    try:
        refusal = recheck(settings, job, github_job)
    except DispatchError as exc:
        report["status_unknown"] += 1
        logger.warning("policy re-check failed", extra={"job_id": job_id, "error": str(exc)})
        return False
    if refusal is not None:
        report["replacement_refused"] += 1
        logger.warning("replacement refused", extra={"job_id": job_id, "reason": refusal})
        return True
    try:
        result = launch_once(job)
    except CapacityWaitError:
        report["replacement_waiting"] += 1
        return False
    except Exception as exc:  # the next run asks again and retries
        report["replacement_failed"] += 1
        logger.warning("replacement failed", extra={"job_id": job_id, "error": str(exc)})
        return False
    if not result.get("duplicate"):
        report["replaced"] += 1
    return str(result.get("task_arn") or "") or True


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
    try:
        job = entry.job(settings.profiles)
    except UnknownProfileError as exc:
        logger.warning("waiting job's profile is gone", extra={**extra, "error": str(exc)})
        return "unknown"
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
    fleet: Fleet,
    report: Counter[str],
) -> None:
    owned = {t.runner_name for t in fleet.alive if t.alive}
    for scope in _scopes(settings, [*fleet.alive, *fleet.stopped]):
        for runner in gh.list_runners(scope):
            name = str(runner.get("name", ""))
            if (
                owns_runner(settings.runner_name_prefix, settings.deployment_id, name)
                and runner.get("status") == "offline"
                and not runner.get("busy")
                and name not in owned
                and not _has_live_task(settings, name)
            ):
                gh.delete_runner(scope, int(runner["id"]))
                report["registrations_removed"] += 1


def _has_live_task(settings: Settings, runner_name: str) -> bool:
    """Look again, now, for the task of a registration that looks orphaned: the run's
    listing is older than a launch that registered its runner since (JIT config first,
    then ``RunTask``). One small ``ListTasks`` by the job it was started for."""
    job_id = launched_for(settings.runner_name_prefix, settings.deployment_id, runner_name)
    arns = list_task_arns(settings, "RUNNING", started_by(job_id))
    return any(t.runner_name == runner_name and t.alive for t in describe_tasks(settings, arns))


def _keep_warm(
    settings: Settings,
    gh: GitHubClient,
    fleet: Fleet,
    now: datetime,
    report: Counter[str],
) -> None:
    """Hold each profile's warm pool at its target (module docstring, step 5)."""
    alive = fleet.alive
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
        fleet.started(settings, _top_up(settings, profile, target - len(keep), report))


def _top_up(settings: Settings, profile: Profile, missing: int, report: Counter[str]) -> list[str]:
    """Start up to ``missing`` pool runners, never past the profile's ``max_runners``
    (each launch takes a slot, ``lambda_fn.capacity``); returns their task ARNs."""
    started: list[str] = []
    for index in range(max(0, missing)):
        try:
            result = launch_pool_runner(settings, profile)
        except CapacityWaitError:
            report["warm_capped"] += missing - index
            logger.warning(
                "warm pool held below its target by max_runners",
                extra={"profile": profile.name, "missing": missing - index},
            )
            break
        report["warm_started"] += 1
        logger.info("warm runner started", extra=result)
        started.append(str(result["task_arn"]))
    return started


def _correct_capacity(settings: Settings, report: Counter[str]) -> None:
    """Bring each capped profile's slot counter back to what ECS runs (``lambda_fn.capacity``)."""
    for profile in settings.profiles:
        if profile.max_runners is not None and capacity.correct(settings, profile):
            report["capacity_corrected"] += 1


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
    """EventBridge scheduled handler: the budget is what the Lambda has left, less a margin."""
    left = context.get_remaining_time_in_millis() / 1000 - 15 if context is not None else None
    if context is not None:
        register_invocation(context)  # replacements and approved jobs launch under its deadline
    budget = DEFAULT_BUDGET_SECONDS if left is None else max(0.0, min(DEFAULT_BUDGET_SECONDS, left))
    return dict(reconcile(get_settings(), budget_seconds=budget))
