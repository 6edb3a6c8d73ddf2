"""The JIT config, sealed for the one task it was made for.

``ecs:DescribeTasks`` (granted by the AWS-managed ReadOnlyAccess and
ViewOnlyAccess policies) returns a task's container overrides, so the JIT
config must not travel in the ``run_task`` request. Instead, right after
``run_task`` returns the task ARN, the Lambda stores the config in a per-runner
Secrets Manager secret named ``<JIT_SECRET_PREFIX>/<runner name>``, tagged
``runner:task-userid = <task role id>:<task id>``. The override carries only
the secret's name. The task role's policy (cdk/construct.py) allows
``GetSecretValue`` and ``DeleteSecret`` under the prefix only when
``secretsmanager:ResourceTag/runner:task-userid`` equals ``${aws:userid}``, the
caller's own ``<role id>:<session name>``; the task reads it once, writes the
runner's files and deletes it (``ForceDeleteWithoutRecovery``). The secret's own
resource policy (:func:`resource_policy`, put before the value) denies reading to
every other principal and any later change of its tags or policy.

Why a secret rather than a per-profile KMS key: KMS ``Encrypt`` takes at most
4096 bytes of plaintext while a JIT config is about that size, the ciphertext
would stay in the override for the task's life (replayable by any task of the
same profile, which shares the role), and the task has no AES in the Python
stdlib to envelope it. A secret can be consumed (deleted after the first
read), is bound to one task by a documented tag condition, and is fetched with
``curl --aws-sigv4``.

AWS behaviour relied on (docs/jit-config.md cites each):

* ``aws:userid`` of an assumed-role session is ``<role id>:<role session name>``
  (IAM policy variables reference);
* ``secretsmanager:ResourceTag/<key>`` is a condition key of the Secret
  resource, so it applies to ``GetSecretValue`` and ``DeleteSecret`` (Service
  Authorization Reference, AWS Secrets Manager);
* ECS names a task-role session after the task id. This one is NOT in the ECS
  documentation (only a feature request's description says so,
  aws/containers-roadmap#1917): if ECS ever named sessions differently, the
  condition would match nothing and the task would stop with
  ``jit_config: ... AccessDeniedException`` -- the binding fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lambda_fn import contract

if TYPE_CHECKING:  # cdk/ imports the names below; keep this module free of requests/boto3
    from lambda_fn.config import Profile, Settings
    from lambda_fn.github import JitConfig

#: Override variable naming the task's secret (a name, not a credential).
SECRET_ID_ENV = "RUNNER_JIT_SECRET_ID"  # noqa: S105 - a variable name
#: Override variable with the secret's region (the Lambda's own).
SECRET_REGION_ENV = "RUNNER_JIT_SECRET_REGION"  # noqa: S105 - a variable name
#: Tag whose value must equal the reader's ``aws:userid`` (task role policy condition).
BOUND_TAG = contract.TAG_TASK_USERID
#: Tag naming the task, so the reconciler can remove secrets of tasks that are gone.
TASK_TAG = contract.TAG_TASK_ARN


def secret_name(settings: Settings, runner_name: str) -> str:
    """The one place that names a runner's sealed config (IAM scopes ``<prefix>/*``)."""
    return f"{settings.jit_secret_prefix}/{runner_name}"


#: Binding of a profile without ``task_role_id``: matches no ``aws:userid`` (role ids
#: start with ``AROA``), so nobody can read the config and the runner never starts.
UNBOUND = "unbound"


def task_userid(profile: Profile, task_arn: str) -> str:
    """``aws:userid`` of the task's role session: ``<role id>:<task id>``."""
    task_id = task_arn.rsplit("/", 1)[-1]
    if not profile.task_role_id:
        from lambda_fn.observability import logger

        logger.warning(
            "profile has no task_role_id: its task cannot read its JIT config and will not "
            "start a runner (the stack sets it; set it when configuring the handler by hand)",
            extra={"profile": profile.name},
        )
        return f"{UNBOUND}:{task_id}"
    return f"{profile.task_role_id}:{task_id}"


#: What nobody may do to a sealed config once its resource policy is on: change its tags
#: (the binding), its policy, its key or description, or copy it to another region.
FROZEN_ACTIONS = (
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:UpdateSecret",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RotateSecret",
)


def resource_policy(bound_userid: str) -> dict[str, Any]:
    """The secret's own policy: only ``bound_userid`` may read it; nothing about it changes.

    Explicit denies, so they hold against every identity policy of the account
    (``secretsmanager:GetSecretValue`` on ``*``, ``ReadOnlyAccess`` + an admin grant, the
    Lambda role): a deny in a resource-based policy overrides any allow (IAM policy
    evaluation logic). ``BatchGetSecretValue`` needs ``GetSecretValue`` on each secret
    too, so it is covered. The binding is written literally, not as the tag, so that a
    changed tag could only deny more.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheBoundTaskReads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:userid": bound_userid}},
            },
            {
                "Sid": "FixedAtCreation",
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(FROZEN_ACTIONS),
                "Resource": "*",
            },
        ],
    }


def seal(sm: Any, name: str, jit: JitConfig, profile: Profile, task_arn: str) -> None:
    """Create the secret tagged and empty, lock it to the task, then store the config.

    ``CreateSecret`` takes no resource policy, so the config is put only after
    ``PutResourcePolicy``: it never exists unprotected. The tags (the binding the task
    role's policy checks) are set by ``CreateSecret`` itself, never later. The task's
    ``GetSecretValue`` answers ``ResourceNotFoundException`` until the value is there,
    which it retries like a missing secret.
    """
    bound = task_userid(profile, task_arn)
    created = sm.create_secret(
        Name=name,
        Description="JIT runner config for one ECS task; the task deletes it after reading",
        Tags=[
            {"Key": BOUND_TAG, "Value": bound},
            {"Key": TASK_TAG, "Value": task_arn},
        ],
    )
    arn = created.get("ARN") or name
    sm.put_resource_policy(
        SecretId=arn,
        ResourcePolicy=json.dumps(resource_policy(bound), separators=(",", ":")),
        BlockPublicPolicy=True,
    )
    sm.put_secret_value(SecretId=arn, SecretString=jit.encoded)


def discard(sm: Any, name: str) -> bool:
    """Delete the secret now (no recovery window); False if it did not exist."""
    from lambda_fn.aws import error_code

    try:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


@dataclass(frozen=True)
class SealedConfig:
    """A secret left under the prefix (name and tags only, never the value)."""

    name: str
    task_arn: str | None
    created: datetime | None


def list_sealed(sm: Any, settings: Settings) -> Iterator[SealedConfig]:
    """Every secret under ``JIT_SECRET_PREFIX`` (ListSecrets' name filter is a prefix match)."""
    prefix = f"{settings.jit_secret_prefix}/"
    paginator = sm.get_paginator("list_secrets")
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        for entry in page.get("SecretList", []):
            name = str(entry.get("Name", ""))
            if not name.startswith(prefix):
                continue
            tags = {t.get("Key"): t.get("Value") for t in entry.get("Tags") or []}
            yield SealedConfig(
                name=name, task_arn=tags.get(TASK_TAG), created=entry.get("CreatedDate")
            )
