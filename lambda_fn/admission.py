"""May this job get a runner of this profile? One answer for every path that launches.

* The webhook handler asks before the first launch (:func:`policy_refusal`
  with a time budget and a cap on ref lookups, so the whole dispatch of a
  restricted job makes at most 5 GitHub calls including the JIT config);
* the retry consumer and the reconciler ask again before every later launch
  (:func:`recheck`), from GitHub's view of the job, not from their queue
  message or task tags. A queue message therefore cannot launch a profile
  whose policy refuses the job.
* Every admission for a restricted profile is recorded (:func:`record_admission`):
  the profile's runners refuse any job whose repository, run and commit have no
  record (``lambda_fn.admission_record``, docs/admission.md), because GitHub may
  give a deploy runner to another job than the one it was launched for.

Every path insists on an answer: a lookup that fails or runs out of time or
calls means "later" (``TransientError``; the webhook queues the job for
retry), never "yes" on the payload's word alone.

A refusal is a reason string (for the answer, the logs and metrics); ``None``
means "launch".

Refs (``allowed_refs``): the payload and the run name the ref only by its short
name, a branch or a tag. Only the kind that decides the verdict is looked up
(:mod:`lambda_fn.refs`):

* only ``refs/heads/NAME`` allowed: the branch must hold the run's commit;
* ``refs/tags/NAME`` allowed and ``tag_protection: branch-history`` (the
  default): the run's commit must be in the history of an allowed branch: the
  branch ``NAME`` itself if ``allowed_refs`` allows it, then every *exact*
  ``refs/heads/...`` entry, in order. Glob branch patterns
  (``refs/heads/release/*``) are not searched for a tag: GitHub has no call
  that answers "is this commit in any branch matching a pattern"; listing the
  matching branches (``git/matching-refs``) is one call but then costs a
  compare per branch, unbounded by the config, and an attacker who can create
  a matching branch could put their commit in its history. Synth therefore
  refuses a tag pattern without an exact allowed branch unless the operator
  chooses ``tag_protection: ruleset``;
* only ``refs/tags/NAME`` allowed and ``tag_protection: ruleset``: the tag must
  name the run's commit (the ruleset, verified by ``fargate-runners doctor``,
  is what keeps unreviewed tags out);
* both allowed under ``ruleset``: either kind passes; nothing is looked up.

Calls for a tag at the dispatch: the run, then the branch and, when the branch
has moved on, a compare: 3 or 4 with the JIT config. A tag on the second exact
branch, or a branch that moved, may need more than the webhook's cap: the job
then goes to the retry queue and is finished there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lambda_fn import routing
from lambda_fn.config import Settings
from lambda_fn.errors import DispatchError, GitHubTransientError, TransientError
from lambda_fn.observability import logger

if TYPE_CHECKING:  # the policy module is imported only when a profile has a policy
    from lambda_fn.github import GitHubClient
    from lambda_fn.jobs import Job
    from lambda_fn.policy import Decision, JobFacts, Policy
    from lambda_fn.refs import Lookups


@dataclass(frozen=True)
class JobOrigin:
    """Where a job comes from, as the signed payload or GitHub's job answer says."""

    owner: str
    repo: str
    run_id: int
    head_branch: str | None
    head_sha: str | None
    #: The environment of the delivery's ``deployment`` (None: the job names none).
    environment: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"


def policy_refusal(
    settings: Settings,
    policy: Policy,
    origin: JobOrigin,
    *,
    budget_seconds: float | None = None,
    max_ref_lookups: int | None = None,
) -> str | None:
    """Check a restricted profile's policy before anything is created.

    The origin names the repository and branch (refused there: no GitHub
    call); the run (one GitHub call) adds event, workflow file and fork
    origin; then the refs decide (module docstring). ``budget_seconds`` bounds
    all these calls together (the webhook must answer GitHub within 10 s),
    ``max_ref_lookups`` the number of ref calls. Raises ``TransientError`` when
    GitHub cannot answer within them.
    """
    from lambda_fn.github_auth import github_client
    from lambda_fn.policy import JobFacts, environment_refusal, evaluate, facts_from_workflow_run
    from lambda_fn.refs import Lookups

    refused = environment_refusal(policy, origin.environment)
    if refused is not None:  # from the signed payload alone: no GitHub call needed
        return _refusal(policy, refused)
    branch = origin.head_branch
    candidates = (f"refs/heads/{branch}", f"refs/tags/{branch}") if branch else ()
    facts = JobFacts(repository=origin.repository, ref_candidates=candidates)
    decision = evaluate(policy, facts, strict=False)
    if not decision.allowed:  # refused on the origin alone: no GitHub call needed
        return _refusal(policy, decision)
    gh = github_client(settings, budget_seconds, shared_budget=budget_seconds is not None)
    try:
        from_run = facts_from_workflow_run(gh.get_run(origin.owner, origin.repo, origin.run_id))
    except DispatchError as exc:
        raise _as_transient(exc, "the workflow run") from None
    facts = replace(
        from_run,
        repository=origin.repository,  # the signed payload's, not the run's
        ref_candidates=from_run.ref_candidates or candidates,
    )
    decision = evaluate(policy, facts, strict=False)
    if decision.allowed:
        decision = _check_ref(
            gh, policy, facts, origin, lookups=Lookups(max_ref_lookups), allowed=decision
        )
    return None if decision.allowed else _refusal(policy, decision)


def _check_ref(
    gh: GitHubClient,
    policy: Policy,
    facts: JobFacts,
    origin: JobOrigin,
    *,
    lookups: Lookups,
    allowed: Decision,
) -> Decision:
    """``allowed`` when the refs confirm it (module docstring), else a refusal."""
    from lambda_fn import refs
    from lambda_fn.policy import (
        PULL_REQUEST_EVENTS,
        RULE_REFS,
        Decision,
        exact_branches,
        glob_match,
        tag_pattern,
    )

    patterns = policy.allowed_refs
    if not patterns or facts.ref is not None or facts.event in PULL_REQUEST_EVENTS:
        return allowed  # pull requests run at refs/pull/N/merge: the runner checks that
    name, sha = origin.head_branch, origin.head_sha
    if name:
        branch_ok = any(glob_match(p, f"refs/heads/{name}") for p in patterns)
        tag_ok = any(glob_match(p, f"refs/tags/{name}") for p in patterns)
    else:  # no name: it could be any tag the patterns allow
        branch_ok, tag_ok = False, any(tag_pattern(p) for p in patterns)
    needs_history = tag_ok and policy.tag_protection == "branch-history"
    if not needs_history and (not name or branch_ok == tag_ok):
        return allowed  # both kinds pass (or none: refused already); nothing to look up
    problem = refs.name_problem(name, sha) if name else refs.sha_problem(sha)
    if problem is not None or sha is None:
        return Decision(False, RULE_REFS, f"ref could not be checked: {problem}")
    if needs_history:
        branches = [name] if name and branch_ok else []
        branches += [b for b in exact_branches(policy) if b != name]
        found = refs.in_reviewed_history(
            gh, origin.owner, origin.repo, sha, branches, lookups=lookups
        )
        if found.ref is not None:
            return allowed
        return Decision(
            False,
            RULE_REFS,
            f"the run's commit {sha[:12]} is not in the history of an allowed branch "
            f"({found.reason}): a tag is admitted only on reviewed history "
            "(tag_protection: branch-history)",
        )
    assert name is not None  # returned above otherwise
    check = refs.branch_holds if branch_ok else refs.tag_points_at
    reason = check(gh, origin.owner, origin.repo, name, sha, lookups=lookups)
    if reason is None:
        return allowed
    return Decision(False, RULE_REFS, f"ref could not be resolved: {reason}")


def recheck(settings: Settings, job: Job, github_job: Mapping[str, Any] | None) -> str | None:
    """Refusal for launching ``job`` again (retry consumer, reconciler), or ``None``.

    ``github_job`` is GitHub's answer for the job (``GET .../actions/jobs/{id}``),
    ``None`` if it could not be read. The job's labels must still select the
    profile it carries (the one its message, record or task named), its repository
    must be allowed, and a restricted profile's policy is checked from the job's run
    and refs, strictly as to lookups. Raises ``TransientError`` when that cannot be
    done now.
    """
    profile = job.profile
    if not routing.repository_allowed(job.repository, settings.allowed_repositories):
        return f"repository {job.repository} is not allowed"
    if github_job is None:
        if profile.policy is None:
            return None  # an unrestricted profile: launching blind costs a runner at most
        raise TransientError("the job could not be read from GitHub to re-check the policy")
    labels = github_job.get("labels")
    chosen = routing.match_profile(labels, settings.profiles) if isinstance(labels, list) else None
    if chosen is None or chosen.name != profile.name:
        return f"the job's labels {labels!r} do not select profile {profile.name!r}"
    if profile.policy is None:
        return None
    run_id = github_job.get("run_id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        return "GitHub's answer for the job names no run"
    origin = JobOrigin(
        owner=job.owner,
        repo=job.repo,
        run_id=run_id,
        head_branch=_text(github_job.get("head_branch")),
        head_sha=_text(github_job.get("head_sha")),
        # GitHub's job answer names no environment: the one the signed delivery named
        # travels with the job (retry message, waiting record; docs/waiting-jobs.md).
        environment=job.environment,
    )
    refusal = policy_refusal(settings, profile.policy, origin)
    if refusal is not None:
        return refusal
    attempt = github_job.get("run_attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        attempt = job.run_attempt  # GitHub's job answer always has it; the message's is a copy
    return record_admission(settings, profile.name, origin, attempt, job.job_id)


def record_admission(
    settings: Settings, profile: str, origin: JobOrigin, run_attempt: int, job_id: int
) -> str | None:
    """Record that ``origin``'s run (this attempt, this commit) is admitted to ``profile``.

    Written before anything is launched, so the runner launched for the job finds it;
    a warm runner that took the job first waits for it (``RUNNER_ADMISSION_WAIT_SECONDS``).
    Written again by every later admission of the same run (other jobs, retries,
    replacements): the same item, a later expiry. Returns a refusal when the job
    cannot be recorded (no head commit: its runner would refuse it anyway); raises
    ``TransientError`` when the write fails (the job goes to the retry queue).
    """
    import time

    from lambda_fn import admission_record, aws

    if not origin.head_sha:
        return f"refused by profile {profile!r}: the job names no head commit to admit"
    try:
        entry = admission_record.item(
            admission_record.Admission(
                profile=profile,
                repository=origin.repository,
                run_id=origin.run_id,
                run_attempt=run_attempt,
                head_sha=origin.head_sha,
                expires_at=int(time.time()) + admission_record.TTL_SECONDS,
                job_id=job_id,
            )
        )
    except admission_record.RecordError as exc:
        return f"refused by profile {profile!r}: cannot record the admission: {exc}"
    try:
        aws.client("dynamodb").put_item(TableName=settings.idempotency_table, Item=entry)
    except Exception as exc:  # botocore's ClientError or BotoCoreError: try again later
        code = aws.error_code(exc) or type(exc).__name__
        raise TransientError(f"the admission record could not be written: {code}") from None
    logger.info("admission recorded", extra={"admission": entry["id"]["S"]})
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_transient(exc: DispatchError, what: str) -> TransientError:
    if isinstance(exc, TransientError):
        return exc
    return GitHubTransientError(f"{what} could not be read to check the policy: {exc}")


def _refusal(policy: Policy, decision: Decision) -> str:
    logger.warning(
        "job refused by the profile's policy",
        extra={"rule": decision.rule, "policy_message": decision.message},
    )
    return f"refused by profile {policy.profile!r}: {decision.rule}: {decision.message}"
