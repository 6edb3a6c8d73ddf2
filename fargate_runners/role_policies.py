"""The IAM policies an operator lists in ``cdk.json`` for a role, and only those."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_iam as iam

from .nag import Acknowledgment, acknowledge


def add_operator_policies(
    role: iam.Role, policies: Sequence[str | Mapping[str, Any]], origin: str
) -> None:
    """Attach ``policies`` (managed policy ARNs or statements) to ``role``.

    cdk-nag names each finding (``IAM4[Policy::arn]``, ``IAM5[Resource::...]``):
    exactly the findings the operator's own policies produce are acknowledged,
    nothing broader; ``origin`` (e.g. ``profiles[deploy].task_role_policies``)
    says where they were granted.
    """
    for item in policies:
        if isinstance(item, str):
            role.add_managed_policy(
                iam.ManagedPolicy.from_managed_policy_arn(
                    role, f"Managed{len(role.node.children)}", item
                )
            )
        else:
            role.add_to_policy(iam.PolicyStatement.from_json(dict(item)))
    finding_ids: dict[str, None] = {}
    for item in policies:
        if isinstance(item, str):
            if ":iam::aws:" in item:
                finding_ids[f"AwsSolutions-IAM4[Policy::{item}]"] = None
        elif item.get("Effect", "Allow") == "Allow":
            for kind in ("Action", "Resource"):
                values = item[kind]
                for value in [values] if isinstance(values, str) else values:
                    if "*" in value:
                        finding_ids[f"AwsSolutions-IAM5[{kind}::{value}]"] = None
    if finding_ids:
        reason = f"Granted explicitly by the operator in cdk.json {origin}; reviewed there."
        acknowledge(role, *(Acknowledgment(id=finding, reason=reason) for finding in finding_ids))
