"""Runner names: the one place that says which deployment a runner belongs to.

A runner is named ``<prefix>-<deployment>-<job id>-<6 hex>``:

- ``prefix`` (``RUNNER_NAME_PREFIX``, :func:`runner_name_prefix_from` the construct's
  ``runner_name_prefix``, name prefix or stack name) makes it readable;
- ``deployment`` (``DEPLOYMENT_ID``, from the CloudFormation stack id, so unique
  per deployed stack even for equal stack names in two regions or accounts) makes
  it ours: two deployments registering runners on the same repositories never
  take each other's registrations for their own;
- the job id traces it to the job, the random part makes each attempt unique.

A warm-pool runner the reconciler starts before any job exists
(``lambda_fn.warm_pool``) is named ``<prefix>-<deployment>-pool-<8 hex>``.

Ownership is an exact match of the whole pattern, not a prefix test: a
deployment with prefix ``runners`` does not own ``runners-b-...`` runners. The
per-job secret name (issue 11) is derived from the runner name, so it carries
the same identity.
"""

from __future__ import annotations

import re
import secrets

from lambda_fn.contract import LAMBDA_ENVIRONMENT

__all__ = [
    "RUNNER_NAME_PREFIX_MAX",
    "RUNNER_NAME_PREFIX_RE",
    "launched_for",
    "owns_runner",
    "pool_runner_name",
    "runner_name",
    "runner_name_prefix_from",
    "runner_name_prefix_problem",
]

#: The longest ``RUNNER_NAME_PREFIX``: with a deployment id, a 16-digit job id and the
#: random part a runner name stays at 53 characters (``tests/unit/test_naming.py``).
RUNNER_NAME_PREFIX_MAX = 20
#: The one rule for ``RUNNER_NAME_PREFIX``: the Lambda refuses anything else, and the
#: construct and ``cdk.json`` check the same (``fargate_runners/rules.py``).
RUNNER_NAME_PREFIX_RE = re.compile(rf"^[a-z0-9][a-z0-9-]{{0,{RUNNER_NAME_PREFIX_MAX - 1}}}$")
_NOT_IN_PREFIX = re.compile(r"[^a-z0-9-]")


def runner_name_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a ``RUNNER_NAME_PREFIX`` (the Lambda's 500 on every
    delivery), or None."""
    if RUNNER_NAME_PREFIX_RE.match(prefix):
        return None
    return (
        f"{prefix!r} must be 1-{RUNNER_NAME_PREFIX_MAX} lower-case letters, digits or "
        "hyphens, starting with a letter or digit"
    )


def runner_name_prefix_from(name: str) -> str:
    """The ``RUNNER_NAME_PREFIX`` for a deployment: its ``runner_name_prefix``, else its name
    prefix or stack name, lower-cased, every character but a letter, digit or ``-`` made
    ``-``, cut to :data:`RUNNER_NAME_PREFIX_MAX` characters, ``-`` stripped from both ends;
    the contract's default when nothing is left. The result always passes
    :func:`runner_name_prefix_problem` (a valid prefix only loses a trailing ``-``)."""
    prefix = _NOT_IN_PREFIX.sub("-", name.lower())[:RUNNER_NAME_PREFIX_MAX].strip("-")
    return prefix or str(LAMBDA_ENVIRONMENT["RUNNER_NAME_PREFIX"])


def _stem(prefix: str, deployment_id: str) -> str:
    return f"{prefix}-{deployment_id}" if deployment_id else prefix


def runner_name(prefix: str, deployment_id: str, job_id: int) -> str:
    """A new, unique runner name for one launch attempt of ``job_id``."""
    return f"{_stem(prefix, deployment_id)}-{job_id}-{secrets.token_hex(3)}"


def pool_runner_name(prefix: str, deployment_id: str) -> str:
    """A new, unique name for a warm-pool runner started before any job."""
    return f"{_stem(prefix, deployment_id)}-pool-{secrets.token_hex(4)}"


def _match(prefix: str, deployment_id: str, name: str) -> re.Match[str] | None:
    pattern = (
        rf"{re.escape(_stem(prefix, deployment_id))}-(?:(\d+)-[0-9a-f]{{6}}|pool-[0-9a-f]{{8}})"
    )
    return re.fullmatch(pattern, name)


def owns_runner(prefix: str, deployment_id: str, name: str) -> bool:
    """True only for names ``runner_name`` or ``pool_runner_name`` make for this deployment."""
    return _match(prefix, deployment_id, name) is not None


def launched_for(prefix: str, deployment_id: str, name: str) -> int | None:
    """The job id a runner of ours was launched for (its task's ``startedBy``).

    None if it is not ours, or is a warm-pool runner started for no job.

    An ephemeral runner takes any job with its labels, so this may differ from
    the job it ran.
    """
    match = _match(prefix, deployment_id, name)
    return int(match.group(1)) if match and match.group(1) else None
