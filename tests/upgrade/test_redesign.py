"""A change of the construct's code structure changes no deployed resource.

Issue 26 turned ``FargateRunners``' mixins into explicit parts (``fargate_runners/
construct.py``). Such a change must synthesize the same stack: for each configuration of
``contexts.json``, today's template is compared with the one ``REDESIGN_BASELINE`` (main
before the redesign, written by ``baseline.py``) synthesized. Stricter than
``test_upgrade.py``, which allows every update that does not replace a stateful resource:

- the same logical ids, each with the same type (a renamed id is a replaced resource);
- stateful resources (``STATEFUL``: data, history, network identity) keep every property,
  their deletion and replacement policies and their dependencies;
- every other resource too, and the outputs, except, narrowly, the runner container's
  ``Command``/``Environment``/``EnvironmentFiles`` in each profile's runner task
  definition (``ALLOWED_CONTAINER_KEYS``): the runner's files live in one shared ECS
  environment file whose digest the inline bootstrap command carries
  (``runner_files.bootstrap_command``), so an edit of a runner script changes them
  without any change of structure.

What legitimately varies between two synths of the same code is normalised: asset hashes
(the Lambda code's, the layers' and the environment file's object keys, also inside ARNs:
a hash of the content) and ``Metadata`` (CDK's construct paths and asset paths, not
deployed).

When a later change deliberately changes the template, regenerate the baseline at the
commit before the next structural change (``make upgrade-baseline COMMIT=...``) and point
``REDESIGN_BASELINE`` at it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from fargate_runners.config import CONTAINER_NAME

from .baseline import HERE
from .test_upgrade import CONFIGURATIONS, STATEFUL

pytestmark = pytest.mark.infra

#: Main before the redesign (issue 26): e944d5e.
REDESIGN_BASELINE = HERE / "e944d5e"

#: What losing or replacing would cost data, history or a network identity others admit.
REDESIGN_STATEFUL = STATEFUL | frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCEndpoint",
        # Their contents are the Lambdas' to keep (refresh_sources, hook_filter).
        "AWS::WAFv2::IPSet",
        "AWS::WAFv2::RegexPatternSet",
    }
)

#: An asset's object key: the hash of its content, then its extension (a step image's
#: ``@sha256:`` digest has none after it, and stays compared).
_ASSET_HASH = re.compile(r"[0-9a-f]{64}(?=\.[A-Za-z0-9]+\b)")
#: The runner container's keys that follow the runner files' content (module docstring).
ALLOWED_CONTAINER_KEYS = frozenset({"Command", "Environment", "EnvironmentFiles"})


def _normalise(value: Any) -> Any:
    """``value`` with asset hashes replaced by ``<asset>``."""
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, str):
        return _ASSET_HASH.sub("<asset>", value)
    return value


def _resource(resource: dict[str, Any]) -> dict[str, Any]:
    """What of a resource is deployed (no ``Metadata``), ``DependsOn`` as a sorted list."""
    kept = {key: value for key, value in resource.items() if key != "Metadata"}
    depends_on = kept.get("DependsOn")
    if isinstance(depends_on, str):
        depends_on = [depends_on]
    if depends_on is not None:
        kept["DependsOn"] = sorted(depends_on)
    normalised: dict[str, Any] = _normalise(kept)
    return normalised


def _without_allowed(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` without the runner container's ``ALLOWED_CONTAINER_KEYS``."""
    if resource["Type"] != "AWS::ECS::TaskDefinition":
        return resource
    properties = resource.get("Properties", {})
    containers = [
        {key: value for key, value in c.items() if key not in ALLOWED_CONTAINER_KEYS}
        if c.get("Name") == CONTAINER_NAME
        else c
        for c in properties.get("ContainerDefinitions", [])
    ]
    return {**resource, "Properties": {**properties, "ContainerDefinitions": containers}}


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Top-level keys (``Properties`` by property) whose values differ."""
    old_props, new_props = before.get("Properties", {}), after.get("Properties", {})
    changed = [
        f"Properties.{name}"
        for name in sorted(old_props.keys() | new_props.keys())
        if old_props.get(name) != new_props.get(name)
    ]
    changed += [
        key
        for key in sorted((before.keys() | after.keys()) - {"Properties"})
        if before.get(key) != after.get(key)
    ]
    return changed


def redesign_differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """Logical id (or ``Outputs.<id>``) -> how ``new`` differs from ``old`` (module docstring)."""
    differences: dict[str, str] = {}
    old_resources, new_resources = old.get("Resources", {}), new.get("Resources", {})
    for logical_id in sorted(old_resources.keys() - new_resources.keys()):
        differences[logical_id] = f"{old_resources[logical_id]['Type']} removed"
    for logical_id in sorted(new_resources.keys() - old_resources.keys()):
        differences[logical_id] = f"{new_resources[logical_id]['Type']} added"
    for logical_id in sorted(old_resources.keys() & new_resources.keys()):
        before, after = _resource(old_resources[logical_id]), _resource(new_resources[logical_id])
        kind = before["Type"]
        if after["Type"] != kind:
            differences[logical_id] = f"type {kind} -> {after['Type']}"
            continue
        if kind not in REDESIGN_STATEFUL:
            before, after = _without_allowed(before), _without_allowed(after)
        changed = _changed_keys(before, after)
        if changed:
            differences[logical_id] = f"{kind}: {', '.join(changed)} changed"
    old_outputs, new_outputs = (
        _normalise(old.get("Outputs", {})),
        _normalise(new.get("Outputs", {})),
    )
    for name in sorted(old_outputs.keys() | new_outputs.keys()):
        if old_outputs.get(name) != new_outputs.get(name):
            differences[f"Outputs.{name}"] = "changed" if name in old_outputs else "added"
    return differences


def test_the_redesign_baseline_covers_every_configuration() -> None:
    names = sorted(p.name.removesuffix(".template.json") for p in REDESIGN_BASELINE.glob("*.json"))
    assert names == CONFIGURATIONS


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_the_redesign_synthesizes_the_same_stack(
    name: str, today_template: Callable[[str], dict[str, Any]]
) -> None:
    old = json.loads((REDESIGN_BASELINE / f"{name}.template.json").read_text())
    differences = redesign_differences(old, today_template(name))
    assert differences == {}, json.dumps(differences, indent=1)


# -- the comparison itself (so a silent comparison cannot pass) ---------------------------


def _task_definition(**runner: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::ECS::TaskDefinition",
        "Properties": {
            "ContainerDefinitions": [{"Name": CONTAINER_NAME, "Image": "runner:1", **runner}],
        },
    }


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {"PolicyDocument": {"Statement": list(statements), "Version": "2012-10-17"}},
    }


def _env_file(digest: str) -> dict[str, Any]:
    return {"Type": "s3", "Value": {"Fn::Join": ["", ["arn:aws:s3:::assets/", f"{digest}.env"]]}}


_LOGS = {"Action": "logs:PutLogEvents", "Effect": "Allow", "Resource": "arn:logs"}
_FILES = {"Action": "s3:GetObject", "Effect": "Allow", "Resource": f"arn:s3:::b/{'c' * 64}.env"}


def _stack(**resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableClass": "STANDARD"}},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"S3Key": f"{'a' * 64}.zip"}},
                "Metadata": {"aws:asset:path": "asset.a"},
            },
            "ExecRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Task": _task_definition(Command=["old"], EnvironmentFiles=[_env_file("c" * 64)]),
            "ExecPolicy": _policy(_LOGS, _FILES),
            **resources,
        },
        "Outputs": {"Url": {"Value": "u"}},
    }


def test_the_same_stack_with_new_asset_hashes_and_runner_files_passes() -> None:
    """New code hashes and runner files: what a script edit changes, and no structure."""
    files = {**_FILES, "Resource": f"arn:s3:::b/{'d' * 64}.env"}
    new = _stack(
        Fn={
            "Type": "AWS::Lambda::Function",
            "Properties": {"Code": {"S3Key": f"{'b' * 64}.zip"}},
            "Metadata": {"aws:asset:path": "asset.b"},
        },
        Task=_task_definition(Command=["new"], EnvironmentFiles=[_env_file("d" * 64)]),
        ExecPolicy=_policy(_LOGS, files),
    )
    assert redesign_differences(_stack(), new) == {}


def test_a_renamed_logical_id_is_found() -> None:
    old = _stack()
    new = _stack()
    new["Resources"]["TableRenamed"] = new["Resources"].pop("Table")
    assert redesign_differences(old, new) == {
        "Table": "AWS::DynamoDB::Table removed",
        "TableRenamed": "AWS::DynamoDB::Table added",
    }


def test_changed_properties_types_outputs_and_dependencies_are_found() -> None:
    new = _stack(
        Table={"Type": "AWS::DynamoDB::Table", "Properties": {"TableClass": "STANDARD_IA"}},
        ExecRole={"Type": "AWS::IAM::User", "Properties": {}},
        Task=_task_definition(Command=["old"], Image="other:2"),
        ExecPolicy=_policy(_FILES, _LOGS),
    )
    new["Outputs"]["Url"] = {"Value": "v"}
    new["Resources"]["Fn"]["DependsOn"] = "Table"
    assert redesign_differences(_stack(), new) == {
        "Table": "AWS::DynamoDB::Table: Properties.TableClass changed",
        "ExecRole": "type AWS::IAM::Role -> AWS::IAM::User",
        "Task": "AWS::ECS::TaskDefinition: Properties.ContainerDefinitions changed",
        "ExecPolicy": "AWS::IAM::Policy: Properties.PolicyDocument changed",
        "Fn": "AWS::Lambda::Function: DependsOn changed",
        "Outputs.Url": "changed",
    }


def test_only_the_runner_container_may_change_its_command() -> None:
    """A step container's command, and an image digest (no extension), are compared."""
    digest = "1" * 64

    def steps(command: str, image: str) -> dict[str, Any]:
        return {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "ContainerDefinitions": [{"Name": "step", "Command": [command], "Image": image}]
            },
        }

    old = _stack(Steps=steps("a", f"r@sha256:{digest}"), Other=steps("a", f"r@sha256:{digest}"))
    new = _stack(Steps=steps("b", f"r@sha256:{digest}"), Other=steps("a", f"r@sha256:{'2' * 64}"))
    assert redesign_differences(old, new) == {
        "Steps": "AWS::ECS::TaskDefinition: Properties.ContainerDefinitions changed",
        "Other": "AWS::ECS::TaskDefinition: Properties.ContainerDefinitions changed",
    }
