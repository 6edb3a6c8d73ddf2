"""cdk-nag acknowledgments: every one the construct makes goes through :func:`acknowledge`.

Each acknowledgment is exact (one rule id, with the finding's resource or action where cdk-nag
names one: ``AwsSolutions-IAM5[Resource::<arn>]``) and carries its reason next to the
resource it justifies. ``tests/infra/test_quality.py`` compares them with cdk-nag's report
one by one (none missing, none stale, none broader than its finding), and the infra tests
record them by patching this module's ``Validations``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

__all__ = ["Acknowledgment", "acknowledge", "nag_flatten"]


def acknowledge(scope: IConstruct, *rules: Acknowledgment) -> None:
    """Acknowledge exactly these findings on ``scope``."""
    Validations.of(scope).acknowledge(*rules)


def nag_flatten(value: Any) -> str:
    """A resolved CloudFormation value flattened the way cdk-nag names findings."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(nag_flatten(item) for item in items)
        if "Fn::Sub" in value:
            return nag_flatten(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{nag_flatten(resource)}.{nag_flatten(attribute)}>"
        if "Fn::ImportValue" in value:
            return nag_flatten(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{nag_flatten(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))
