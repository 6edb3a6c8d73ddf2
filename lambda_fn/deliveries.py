"""One webhook delivery -> one answer: verify, parse, route, launch.

Framework-free (headers + raw body in, ``Answer`` out) so the HTTP layer in
``app.py`` stays thin and this logic is callable from tests, the local demo
and the benchmarks. The order of checks is deliberate: the signature is
verified over the raw bytes before anything parses the body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambda_fn import routing
from lambda_fn.config import Settings, get_settings
from lambda_fn.errors import (
    CapacityWaitError,
    ConfigError,
    PermanentError,
    SecretMissingError,
    TransientError,
)
from lambda_fn.observability import count, logger, milliseconds
from lambda_fn.secrets import get_secret_string
from lambda_fn.signature import MAX_BODY_BYTES, signature_is_valid

if TYPE_CHECKING:  # imported lazily at run time: it pulls in boto3
    from lambda_fn.jobs import Job
    from lambda_fn.payload import WorkflowJob, WorkflowJobEvent
    from lambda_fn.waiting import Verdict

#: All GitHub calls of the restricted-profile check together (run, refs): the JIT call
#: after them must still fit GitHub's 10-second delivery timeout (docs/performance.md).
POLICY_LOOKUP_BUDGET_SECONDS = 2.0
#: Ref calls (git refs, tag objects, compare) one delivery may make for the check: with the
#: run before them and the JIT config after, a restricted dispatch makes at most 5 GitHub
#: calls (docs/performance.md). A check that needs more is finished from the retry queue.
POLICY_MAX_REF_LOOKUPS = 3
#: The pending-deployments call for a delivery whose ``deployment`` has no usable status.
WAITING_LOOKUP_BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    """An HTTP status and a small JSON body for GitHub's delivery log."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def ignored(reason_key: str, reason: str) -> Answer:
    count("JobsIgnored", ("reason", reason_key))
    logger.info("delivery ignored", extra={"ignore_reason": reason})
    return Answer(200, {"status": "ignored", "reason": reason})


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Header lookup that does not depend on the case API Gateway passed through."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def handle(headers: Mapping[str, str], body: bytes, lambda_context: Any = None) -> Answer:
    """Answer one delivery. Never raises for bad input; raises only on bugs."""
    started = time.perf_counter()
    count("Deliveries")
    try:
        settings = get_settings()
        secret = get_secret_string(settings.webhook_secret_arn, settings.secrets_max_age_seconds)
    except (ConfigError, SecretMissingError) as exc:
        return _misconfigured(exc)
    except TransientError as exc:
        logger.warning("could not read the webhook secret", extra={"error": str(exc)})
        return Answer(503, {"status": "error", "reason": "temporarily unavailable, redeliver"})

    if not signature_is_valid(secret.encode(), body, header(headers, "X-Hub-Signature-256")):
        logger.warning("rejected delivery: missing or invalid signature")
        return Answer(401, {"message": "missing or invalid X-Hub-Signature-256"})
    if len(body) > MAX_BODY_BYTES:
        logger.warning("rejected delivery: body too large", extra={"bytes": len(body)})
        return Answer(413, {"message": f"body larger than {MAX_BODY_BYTES} bytes"})

    event = (header(headers, "X-GitHub-Event") or "").strip()
    if not event:
        return _bad_request("missing X-GitHub-Event header")
    content_type = (header(headers, "Content-Type") or "application/json").lower()
    if "json" not in content_type:
        return _bad_request("content type must be application/json (set it in the webhook)")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        return _bad_request("body is not valid JSON")
    except RecursionError:  # hostile nesting: json's decoder recurses per level
        return _bad_request("body is nested too deeply")
    if not isinstance(payload, dict):
        return _bad_request("body is not a JSON object")

    if event == "ping":
        return Answer(200, {"message": "pong"})
    if event != "workflow_job":
        return ignored("event", f"event {event!r} is not handled")

    answer = _handle_workflow_job(payload, settings, lambda_context)
    if answer.body.get("status") == "launched":
        milliseconds("DispatchLatency", (time.perf_counter() - started) * 1000)
    return answer


def _misconfigured(exc: Exception) -> Answer:
    """500 for GitHub's delivery log; the details (variable names, ARNs) only in our logs."""
    logger.error("dispatcher is misconfigured", extra={"error": str(exc)})
    count("LaunchFailures", ("kind", "config"))
    return Answer(500, {"status": "error", "reason": "dispatcher is misconfigured; see its logs"})


def _bad_request(reason: str) -> Answer:
    logger.warning("rejected delivery", extra={"reject_reason": reason})
    count("DeliveriesRejected")
    return Answer(400, {"message": reason})


def _handle_workflow_job(payload: dict[str, Any], settings: Settings, context: Any) -> Answer:
    from lambda_fn.payload import PayloadError, event_action, parse_event

    try:
        action = event_action(payload)
    except PayloadError:
        return _bad_request("workflow_job payload has no valid 'action'")
    if action == "completed":
        return _job_completed(payload, settings)
    if action == "in_progress":
        return _job_started(payload, settings)
    if action not in ("queued", "waiting"):
        return ignored("action", f"action {action!r} does not start runners")

    try:
        event = parse_event(payload)
    except PayloadError as exc:
        return _bad_request(f"invalid workflow_job payload at {exc.where}: {exc.message}")

    job = event.workflow_job
    repository = event.repository.slug
    logger.append_keys(job_id=job.id, run_id=job.run_id, repository=repository)

    replay = _replay_refusal(job, action, settings)
    if replay is not None:
        return replay
    if not routing.repository_allowed(repository, settings.allowed_repositories):
        return ignored("repository", f"repository {repository} is not allowed")
    profile = routing.match_profile(job.labels, settings.profiles)
    if profile is None:
        return ignored("labels", f"no runner profile serves labels {sorted(job.labels)}")
    logger.append_keys(profile=profile.name)

    from lambda_fn.jobs import Job

    # The one shape the job has from here to its task's tags (lambda_fn.jobs).
    queued = Job(
        job_id=job.id,
        run_id=job.run_id,
        run_attempt=job.run_attempt,
        owner=event.repository.owner.login,
        repo=event.repository.name,
        labels=tuple(job.labels),
        profile=profile,
        workflow_name=job.workflow_name,
        head_branch=job.head_branch,
        environment=event.deployment.environment if event.deployment else None,
    )
    from lambda_fn.waiting import Verdict

    judged = _judge(settings, event, queued)
    if judged is not Verdict.QUEUED:
        return _job_waiting(settings, queued, unknown=judged is Verdict.ASK)
    if profile.policy is not None:
        refused = _admit_restricted(settings, queued, job.head_sha)
        if refused is not None:
            return refused
    return launch_answer(queued, context)


def _admit_restricted(settings: Settings, job: Job, head_sha: str | None) -> Answer | None:
    """A restricted profile's policy check and admission record; ``None`` = launch."""
    from lambda_fn.admission import JobOrigin, policy_refusal, record_admission

    profile = job.profile
    assert profile.policy is not None
    origin = JobOrigin(
        job.owner,
        job.repo,
        job.run_id,
        job.head_branch,
        head_sha,
        environment=job.environment,
    )
    try:
        refusal = policy_refusal(
            settings,
            profile.policy,
            origin,
            budget_seconds=POLICY_LOOKUP_BUDGET_SECONDS,
            max_ref_lookups=POLICY_MAX_REF_LOOKUPS,
        )
        if refusal is None:  # the profile's runners refuse any job without a record
            refusal = record_admission(settings, profile.name, origin, job.run_attempt, job.job_id)
    except TransientError as exc:
        # Cannot tell now (GitHub slow or failing, the run unreadable, more ref calls
        # needed): start nothing on the payload's word alone, keep the job. The retry
        # consumer checks the policy again, from GitHub's view, before launching.
        logger.warning("policy check incomplete, job queued", extra={"error": str(exc)})
        return _queue_for_retry(job, exc)
    return None if refusal is None else ignored("policy", refusal)


def _replay_refusal(job: WorkflowJob, action: str, settings: Settings) -> Answer | None:
    """Refuse a delivery that may be a replay: no ``created_at``, or older than the window."""
    if job.created_at is None:
        # Only the actions that can start a runner need it: it is the replay protection.
        return _bad_request(
            "invalid workflow_job payload at workflow_job.created_at: must be an ISO 8601 "
            f"date-time (a {action} delivery needs it to tell a replay from a new job)"
        )
    age = time.time() - job.created_at.timestamp()
    if age > settings.idempotency_ttl_seconds:
        # GitHub signs the body only: a captured delivery can be sent again after the
        # idempotency record of its job has expired. Such a job is long started or
        # cancelled; nothing may start for it (docs/contract.md, "A signed delivery...").
        return ignored(
            "stale",
            f"job was created {age / 3600:.1f} h ago, before the de-duplication window "
            f"({settings.idempotency_ttl_seconds} s): a replayed or very late delivery",
        )
    return None


def _job_waiting(settings: Settings, job: Job, *, unknown: bool) -> Answer:
    """A job gated by an environment protection rule: start nothing, remember it.

    Nothing here writes the launch record, so the ``queued`` delivery after approval
    launches; the reconciler launches a remembered job GitHub shows approved if that
    delivery never comes (docs/waiting-jobs.md). ``unknown``: GitHub could not say.
    """
    from lambda_fn.jobs import WaitingJob
    from lambda_fn.waiting import remember

    environment = job.environment or ""
    profile = job.profile
    if profile.policy is not None:
        from lambda_fn.policy import environment_refusal

        refused = environment_refusal(profile.policy, job.environment)
        if refused is not None:  # it could never be admitted: not worth remembering
            return ignored(
                "policy", f"refused by profile {profile.name!r}: {refused.rule}: {refused.message}"
            )
    try:
        kept = remember(settings, WaitingJob.of(job, int(time.time())))
    except TransientError as exc:
        logger.warning("could not remember a waiting job", extra={"error": str(exc)})
        return Answer(503, {"status": "error", "reason": "temporarily unavailable, redeliver"})
    if kept:
        count("WaitingJobsRemembered")
    else:
        count("WaitingJobsNotRemembered")
        logger.warning("waiting job not remembered: too many jobs wait already")
    gate = f"environment {environment!r}" if environment else "an environment"
    if unknown:
        return ignored(
            "waiting",
            f"could not tell whether the job still waits for {gate} approval; "
            "the reconciler checks it",
        )
    return ignored("waiting", f"job waits for {gate} approval")


def _judge(settings: Settings, event: WorkflowJobEvent, job: Job) -> Verdict:
    """From the payload where it can tell; else from the run's pending deployments (one
    call): WAITING or QUEUED, or ASK when GitHub could not say either."""
    from lambda_fn.errors import DispatchError
    from lambda_fn.github_auth import github_client
    from lambda_fn.waiting import Verdict, verdict, waits_on

    judged = verdict(event)
    if judged is not Verdict.ASK:
        return judged

    gh = github_client(settings, WAITING_LOOKUP_BUDGET_SECONDS)
    try:
        pending = gh.pending_environments(job.owner, job.repo, job.run_id)
    except DispatchError as exc:
        logger.warning("pending deployments unreadable", extra={"error": str(exc)})
        return Verdict.ASK
    return Verdict.WAITING if waits_on(pending, job.environment or "") else Verdict.QUEUED


def _job_started(payload: dict[str, Any], settings: Settings) -> Answer:
    """A runner took the job: record how long it waited (never starts or stops anything)."""
    from lambda_fn.naming import owns_runner
    from lambda_fn.payload import PayloadError, parse_event

    try:
        job = parse_event(payload).workflow_job
    except PayloadError as exc:
        return _bad_request(f"invalid workflow_job payload at {exc.where}: {exc.message}")
    _record_state(settings, job.id, job.labels, "in_progress")
    runner = job.runner_name or ""
    if not owns_runner(settings.runner_name_prefix, settings.deployment_id, runner):
        return ignored("action", "job started on a runner this deployment did not launch")
    profile = routing.match_profile(job.labels, settings.profiles)
    if profile is None:
        return ignored("action", "job started on labels no profile serves")
    logger.append_keys(job_id=job.id, profile=profile.name)
    from lambda_fn.start_time import record

    figures = record(settings, profile.name, runner, job.created_at, job.started_at)
    return Answer(200, {"status": "started", "job_id": job.id, **figures})


def _job_completed(payload: dict[str, Any], settings: Settings) -> Answer:
    """A finished or cancelled job: release idle runners started for it (never starts one).

    Best effort: whatever this misses, the reconciler cleans up later, so a
    failure here is logged and still answered 2xx.
    """
    job = payload.get("workflow_job")
    job_id = job.get("id") if isinstance(job, dict) else None
    if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id <= 0:
        return ignored("action", "completed job without a valid id")
    logger.append_keys(job_id=job_id)
    labels = job.get("labels") if isinstance(job, dict) else None
    if isinstance(labels, list) and all(isinstance(label, str) for label in labels):
        _record_state(settings, job_id, labels, "completed")
    from lambda_fn.cleanup import release_for_job
    from lambda_fn.github_auth import github_client

    conclusion = str(job.get("conclusion") or "completed")[:32] if isinstance(job, dict) else ""
    try:
        runner = job.get("runner_name") if isinstance(job, dict) else None
        released = release_for_job(
            settings,
            github_client(settings),
            job_id,
            f"GitHub job {job_id} {conclusion}",
            ran_on=runner if isinstance(runner, str) and runner else None,
        )
    except Exception as exc:  # cleanup must never turn a delivery into a failure
        logger.warning("could not release runners for a completed job", extra={"error": str(exc)})
        return Answer(200, {"status": "ignored", "reason": "cleanup deferred to the reconciler"})
    if released:
        count("RunnersReleased", ("reason", "completed"), released)
    return Answer(200, {"status": "completed", "job_id": job_id, "runners_released": released})


def _record_state(settings: Settings, job_id: int, labels: Any, state: str) -> None:
    """One write, for a job one of our profiles serves: the reconciler then knows it needs
    no runner without asking GitHub (``lambda_fn.job_records``). Best effort: without the
    record the reconciler asks GitHub, once per stopped task."""
    if routing.match_profile(labels, settings.profiles) is None:
        return
    from lambda_fn.job_records import mark_job

    try:
        mark_job(settings, job_id, state)
    except Exception as exc:  # never fail a delivery over a record
        logger.warning("could not record the job's state", extra={"error": type(exc).__name__})


def launch_answer(job: Job, context: Any) -> Answer:
    """Launch (at most once) and turn the outcome into an HTTP answer."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
    )

    from lambda_fn.idempotent_launch import launch_once

    try:
        result = launch_once(job, context)
    except IdempotencyAlreadyInProgressError:
        logger.info("job is already being launched by another delivery")
        return Answer(202, {"status": "in_progress", "job_id": job.job_id})
    except CapacityWaitError as exc:  # not a failure: the job waits for a free runner slot
        return _queue_for_retry(job, exc)
    except (TransientError, IdempotencyPersistenceLayerError) as exc:
        logger.warning("launch failed, may succeed later", extra={"error": str(exc)})
        count("LaunchFailures", ("kind", "transient"))
        return _queue_for_retry(job, exc)
    except (ConfigError, SecretMissingError) as exc:
        return _misconfigured(exc)
    except PermanentError as exc:
        logger.error("launch failed", extra={"error": str(exc)})
        count("LaunchFailures", ("kind", "permanent"))
        _park_for_operator(job, exc)
        return Answer(502, {"status": "error", "reason": str(exc)})

    if result.get("duplicate"):
        logger.info("job was already launched", extra={"task_arn": result.get("task_arn")})
        count("DuplicateDeliveries")
        return Answer(200, {**result, "status": "duplicate"})
    logger.info("runner launched", extra={"task_arn": result["task_arn"]})
    count("RunnersLaunched", ("profile", str(result["profile"])))
    return Answer(200, result)


def _queue_for_retry(job: Job, exc: Exception) -> Answer:
    """Transient failure: hand the job to the retry queue (202) or tell GitHub (503)."""
    from lambda_fn.retry_queue import as_text, enqueue_retry, first_failure

    settings = get_settings()
    if not settings.retry_queue_url:
        return Answer(503, {"status": "error", "reason": f"temporary failure: {exc}"})
    try:
        delay = enqueue_retry(settings, first_failure(job, as_text(exc)))
    except TransientError as queue_exc:
        logger.error("could not queue the job for retry", extra={"error": str(queue_exc)})
        return Answer(503, {"status": "error", "reason": f"temporary failure: {exc}"})
    count("JobsQueuedForRetry")
    logger.info("job queued for retry", extra={"delay": delay})
    return Answer(
        202,
        {
            "status": "queued_for_retry",
            "job_id": job.job_id,
            "retry_in_seconds": delay,
            "reason": str(exc),
        },
    )


def _park_for_operator(job: Job, exc: Exception) -> None:
    """Permanent failure: keep the job in the DLQ (if any) so it can be replayed once fixed."""
    from lambda_fn.retry_queue import as_text, dead_letter, first_failure

    try:
        if dead_letter(get_settings(), first_failure(job, ""), as_text(exc)):
            count("JobsDeadLettered")
    except TransientError as queue_exc:
        logger.error("could not park the job in the DLQ", extra={"error": str(queue_exc)})
