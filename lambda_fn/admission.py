"""May this job get a runner of this profile? One answer for every path that launches.

* The webhook handler asks before the first launch (:func:`policy_refusal`
  with ``lookup_required=False``): if the workflow run cannot be read within
  the short budget, what the signed payload says is checked and the runner's
  own hook checks the rest.
* The retry consumer and the reconciler ask again before every later launch
  (:func:`recheck`), from GitHub's view of the job, not from their queue
  message or task tags, and they insist on an answer: a lookup that fails
  means "later", never "yes". A queue message therefore cannot launch a
  profile whose policy refuses the job.

A refusal is a reason string (for the answer, the logs and metrics); ``None``
means "launch". ``GitHubTransientError`` means "cannot tell now".
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
    from lambda_fn.dispatch import QueuedJob
    from lambda_fn.github import GitHubClient
    from lambda_fn.policy import Decision, JobFacts, Policy


@dataclass(frozen=True)
class JobOrigin:
    """Where a job comes from, as the signed payload or GitHub's job answer says."""

    owner: str
    repo: str
    run_id: int
    head_branch: str | None
    head_sha: str | None

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"


def policy_refusal(
    settings: Settings,
    policy: Policy,
    origin: JobOrigin,
    *,
    budget_seconds: float | None = None,
    lookup_required: bool,
) -> str | None:
    """Check a restricted profile's policy before anything is created (lenient: unknown passes).

    The origin names the repository and branch; the run (one GitHub call)
    adds event, workflow file and fork origin; when the branch name could be
    a branch or a tag and only one of them is allowed, the git refs decide
    (:mod:`lambda_fn.refs`). ``budget_seconds`` bounds all these calls
    together (the webhook must answer GitHub within 10 s).
    """
    from lambda_fn.dispatch import github_client
    from lambda_fn.policy import JobFacts, evaluate, facts_from_workflow_run

    branch = origin.head_branch
    candidates = (f"refs/heads/{branch}", f"refs/tags/{branch}") if branch else ()
    facts = JobFacts(repository=origin.repository, ref_candidates=candidates)
    decision = evaluate(policy, facts, strict=False)
    if not decision.allowed:  # refused on the origin alone: no GitHub call needed
        return _refusal(policy, decision)
    gh = github_client(settings, budget_seconds, shared_budget=budget_seconds is not None)
    try:
        from_run = facts_from_workflow_run(gh.get_run(origin.owner, origin.repo, origin.run_id))
        facts = replace(
            from_run,
            repository=origin.repository,  # the signed payload's, not the run's
            ref_candidates=from_run.ref_candidates or candidates,
        )
    except DispatchError as exc:
        if lookup_required:
            raise _as_transient(exc, "the workflow run") from None
        logger.warning("could not read the workflow run for the policy", extra={"error": str(exc)})
    decision = evaluate(policy, facts, strict=False)
    if decision.allowed and branch and _ref_decides(policy, facts):
        decision = _with_resolved_ref(gh, policy, facts, origin, branch)
    return None if decision.allowed else _refusal(policy, decision)


def _ref_decides(policy: Policy, facts: JobFacts) -> bool:
    """True when branch-or-tag changes the verdict: exactly one candidate is allowed."""
    from lambda_fn.policy import PULL_REQUEST_EVENTS, glob_match

    if facts.ref is not None or facts.event in PULL_REQUEST_EVENTS:
        return False  # pull requests run at refs/pull/N/merge: the runner checks that
    patterns = policy.allowed_refs
    allowed = [c for c in facts.ref_candidates if any(glob_match(p, c) for p in patterns)]
    return len(facts.ref_candidates) == 2 and len(allowed) == 1


def _with_resolved_ref(
    gh: GitHubClient, policy: Policy, facts: JobFacts, origin: JobOrigin, branch: str
) -> Decision:
    from lambda_fn.policy import RULE_REFS, Decision, evaluate
    from lambda_fn.refs import resolve_ref

    resolution = resolve_ref(gh, origin.owner, origin.repo, branch, origin.head_sha)
    if resolution.ref is None:
        return Decision(False, RULE_REFS, f"ref could not be resolved: {resolution.reason}")
    return evaluate(policy, replace(facts, ref=resolution.ref), strict=False)


def recheck(settings: Settings, job: QueuedJob, github_job: Mapping[str, Any] | None) -> str | None:
    """Refusal for launching ``job`` again (retry consumer, reconciler), or ``None``.

    ``github_job`` is GitHub's answer for the job (``GET .../actions/jobs/{id}``),
    ``None`` if it could not be read. The job's labels must still select the
    profile the message names, its repository must be allowed, and a restricted
    profile's policy is checked from the job's run and refs, strictly as to
    lookups. Raises ``TransientError`` when that cannot be done now.
    """
    from lambda_fn.dispatch import find_profile

    profile = find_profile(settings, job.profile)
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
    )
    return policy_refusal(settings, profile.policy, origin, lookup_required=True)


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
