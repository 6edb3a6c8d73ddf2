"""Runner names: the one place that says which deployment a runner belongs to.

A runner is named ``<prefix>-<deployment>-<job id>-<6 hex>``:

- ``prefix`` (``RUNNER_NAME_PREFIX``, the stack name by default) makes it readable;
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

__all__ = ["launched_for", "owns_runner", "pool_runner_name", "runner_name"]


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
