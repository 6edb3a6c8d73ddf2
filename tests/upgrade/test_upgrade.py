"""An upgrade from the last release keeps every stateful resource.

For each configuration of ``contexts.json``, today's synth is compared with the template the
last release synthesized (``BASELINE``, written by ``baseline.py``). A stateful resource of
the old template must still be there under the same logical id and type, and none of the
properties that make CloudFormation replace it (or refuse the update) may change: a
replaced table, queue, secret or key loses its data, a replaced log group its history, a
replaced cluster is left behind with its running tasks.

Which properties force a replacement comes from the CloudFormation resource schemas
(``createOnlyProperties``, as shipped with cfn-lint), plus what the resource reference
pages document beyond them: DynamoDB ``KeySchema`` ("Update requires: Replacement",
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-dynamodb-table.html)
and KMS ``KeySpec``/``KeyUsage``/``Origin``/``MultiRegion`` (an update of those fails,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-kms-key.html).

A replacement that is deliberate goes into ``ACCEPTED`` with its reason, and into the
docs/lifecycle.md, "Upgrading".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from .baseline import HERE, contexts

pytest.importorskip("aws_cdk")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

pytestmark = pytest.mark.infra

#: The last release's templates (``make upgrade-baseline COMMIT=...`` writes a new folder).
BASELINE = HERE / "a3ba4bf"

#: Resource types whose replacement loses data, history or running work.
STATEFUL = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::ECS::Cluster",
        "AWS::SNS::Topic",
        "AWS::SSM::Parameter",
    }
)
#: Documented on the resource reference pages (module docstring), not in the schemas.
DOCUMENTED_REPLACEMENT: dict[str, frozenset[str]] = {
    "AWS::DynamoDB::Table": frozenset({"KeySchema"}),
    "AWS::KMS::Key": frozenset({"KeySpec", "KeyUsage", "Origin", "MultiRegion"}),
}
#: (configuration, logical id) -> why its replacement or removal is accepted (and where the
#: docs/lifecycle.md, "Upgrading" says what to do).
ACCEPTED: dict[tuple[str, str], str] = {}


@cache
def replacing_properties(resource_type: str) -> frozenset[str]:
    """Top-level properties whose change replaces a resource of ``resource_type``."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    create_only = {
        pointer.split("/")[2]
        for pointer in schema.get("createOnlyProperties", [])
        if pointer.startswith("/properties/")
    }
    return frozenset(create_only) | DOCUMENTED_REPLACEMENT.get(resource_type, frozenset())


def upgrade_problems(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """Logical id -> what an update from ``old`` to ``new`` would do to that stateful resource."""
    problems: dict[str, str] = {}
    for logical_id, before in old.get("Resources", {}).items():
        kind = before["Type"]
        if kind not in STATEFUL:
            continue
        after = new.get("Resources", {}).get(logical_id)
        if after is None:
            policy = before.get("DeletionPolicy", "Delete")
            problems[logical_id] = f"{kind} removed (DeletionPolicy {policy})"
            continue
        if after["Type"] != kind:
            problems[logical_id] = f"type {kind} -> {after['Type']}"
            continue
        old_props, new_props = before.get("Properties", {}), after.get("Properties", {})
        changed = sorted(
            name
            for name in replacing_properties(kind)
            if old_props.get(name) != new_props.get(name)
        )
        if changed:
            problems[logical_id] = f"{kind} replaced: {', '.join(changed)} changed"
    return problems


CONFIGURATIONS = sorted(contexts())


def test_the_baseline_covers_every_configuration() -> None:
    assert sorted(p.name.removesuffix(".template.json") for p in BASELINE.glob("*.json")) == (
        CONFIGURATIONS
    )


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_upgrade_keeps_stateful_resources(
    name: str, today_template: Callable[[str], dict[str, Any]]
) -> None:
    old = json.loads((BASELINE / f"{name}.template.json").read_text())
    new = today_template(name)
    problems = upgrade_problems(old, new)
    accepted = {lid for (config, lid) in ACCEPTED if config == name}
    unexplained = {lid: why for lid, why in problems.items() if lid not in accepted}
    assert unexplained == {}, json.dumps(unexplained, indent=1)
    assert accepted <= problems.keys(), f"stale ACCEPTED entries: {accepted - problems.keys()}"


# -- the comparison itself (so a silent comparison cannot pass) ---------------------------


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def test_a_renamed_log_group_a_new_table_key_and_a_removed_queue_are_found() -> None:
    old = _template(
        Logs={"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/a", "Retention": 1}},
        Table={
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]},
        },
        Queue={"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain"},
        Fn={"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f"}},
    )
    new = _template(
        Logs={"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/b"}},
        Table={
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]},
        },
    )
    assert upgrade_problems(old, new) == {
        "Logs": "AWS::Logs::LogGroup replaced: LogGroupName changed",
        "Table": "AWS::DynamoDB::Table replaced: KeySchema changed",
        "Queue": "AWS::SQS::Queue removed (DeletionPolicy Retain)",
    }


def test_mutable_changes_and_stateless_resources_pass() -> None:
    old = _template(
        Logs={"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 14}},
        Cluster={"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "c"}},
    )
    new = _template(
        Logs={"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}},
        Cluster={"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "c", "Tags": []}},
    )
    assert upgrade_problems(old, new) == {}
    assert "ClusterName" in replacing_properties("AWS::ECS::Cluster")
    assert "QueueName" in replacing_properties("AWS::SQS::Queue")
