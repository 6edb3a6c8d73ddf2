"""Issue 25: 50 profiles synthesize and dispatch; the limit that remains fails in one line.

The runner's files travel once per deployment in one ECS environment file (an S3 asset);
each task definition holds a short bootstrap and its own policy (docs/runner.md, "How the
task gets its files"). Figures: docs/performance.md, "Profiles per deployment".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from moto import mock_aws

from fargate_runners.config_errors import ConfigError
from fargate_runners.discovery import RESOURCE_LIMIT, TEMPLATE_LIMIT_BYTES
from fargate_runners.runner_files import SHARED_FILES, files_digest
from lambda_fn.aws import reset_caches
from tests.kit.events import deliver, queued_payload
from tests.kit.github import FakeGitHub
from tests.kit.infra import NO_BUNDLING, STEP_IMAGE, Synth, findings, synth
from tests.kit.world import FakeAws, create_stack_resources

pytestmark = pytest.mark.infra

COUNT = 50


def many_profiles(count: int, *, steps: bool = True) -> list[dict[str, Any]]:
    """Plain and restricted profiles in turn, the last one managed-steps (if ``steps``)."""
    profiles: list[dict[str, Any]] = []
    for i in range(count):
        profile: dict[str, Any] = {
            "name": f"team-{i}",
            "labels": ["self-hosted", "linux", f"team-{i}"],
        }
        if i % 2 and i < count - 1:  # the last: plain (dispatch) or managed steps
            profile.update(allowed_repositories=[f"octo-org/service-{i}"])
            profile.update(allowed_refs=["refs/heads/main"])
        if steps and i == count - 1:
            profile.update(
                allowed_repositories=["octo-org/app"],
                allowed_refs=["refs/heads/main"],
                steps="managed",
                step_image=STEP_IMAGE,
                managed_commands={"deploy": ["/usr/local/bin/deploy"]},
            )
        profiles.append(profile)
    return profiles


@pytest.fixture(scope="module")
def many_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    context = {"stack_name": "RunnersMany", "profiles": many_profiles(COUNT), **NO_BUNDLING}
    return synth(context, tmp_path_factory.mktemp("cdk-many"))


def runner_containers(synth: Synth) -> dict[str, dict[str, Any]]:
    """Family -> the runner container, for the runner task definitions (not step ones)."""
    return {
        r["Properties"]["Family"]: r["Properties"]["ContainerDefinitions"][0]
        for r in synth.resources("AWS::ECS::TaskDefinition").values()
        if "-runner-" in r["Properties"]["Family"]
    }


def test_fifty_profiles_fit_in_one_template(many_synth: Synth) -> None:
    size = many_synth.template_file.stat().st_size
    assert size < TEMPLATE_LIMIT_BYTES
    assert size < 950_000, f"{size} bytes: the per-profile part has grown (docs/performance.md)"
    resources = len(many_synth.raw["Resources"])
    assert resources <= RESOURCE_LIMIT
    assert len(runner_containers(many_synth)) == COUNT


def test_every_task_definition_names_the_one_environment_file(many_synth: Synth) -> None:
    containers = runner_containers(many_synth)
    files = {json.dumps(c["EnvironmentFiles"], sort_keys=True) for c in containers.values()}
    assert len(files) == 1, files
    commands = {json.dumps(c["Command"]) for c in containers.values()}
    assert len(commands) == 1  # the same bootstrap everywhere
    for container in containers.values():
        inline = {e["Name"] for e in container["Environment"]}
        assert not inline & set(SHARED_FILES), "a shared file is still inline"
        assert len(json.dumps(container)) < 4_000
    # The file holds every shared file, and the bootstrap checks exactly those bytes.
    (container, *_) = containers.values()
    values = many_synth.env_file(container)
    assert set(values) == set(SHARED_FILES)
    assert files_digest(values) in container["Command"][2]


def test_the_asset_is_a_stable_env_file(many_synth: Synth, tmp_path: Path) -> None:
    """Same content, same object key on every synth (no needless new revisions)."""
    (container, *_) = runner_containers(many_synth).values()
    key = container["EnvironmentFiles"][0]["Value"]["Fn::Join"][1][-1]
    assert re.fullmatch(r"/[0-9a-f]{64}\.env", key), key  # ECS wants the .env extension
    again = synth(
        {"stack_name": "RunnersOne", "profiles": many_profiles(1, steps=False), **NO_BUNDLING},
        tmp_path,
    )
    (other,) = runner_containers(again).values()
    assert other["EnvironmentFiles"][0]["Value"]["Fn::Join"][1][-1] == key


def test_execution_roles_read_only_that_object(many_synth: Synth) -> None:
    """GetObject on the one object, GetBucketLocation on its bucket; nothing else in S3."""
    (container, *_) = runner_containers(many_synth).values()
    object_arn = container["EnvironmentFiles"][0]["Value"]
    roles = {
        r["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        for r in many_synth.resources("AWS::ECS::TaskDefinition").values()
        if "-runner-" in r["Properties"]["Family"]
    }
    s3 = []
    for policy in many_synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if any(a.startswith("s3:") for a in actions):
                s3.append(({r["Ref"] for r in policy["Properties"]["Roles"]}, statement))
    readers = {role for owners, st in s3 if st.get("Sid") == "ReadRunnerFiles" for role in owners}
    assert readers == roles
    for _, statement in s3:
        if statement.get("Sid") == "ReadRunnerFiles":
            assert statement["Action"] == "s3:GetObject"
            assert statement["Resource"] == object_arn
        elif statement.get("Sid") == "LocateRunnerFiles":
            assert statement["Action"] == "s3:GetBucketLocation"
            assert "*" not in json.dumps(statement["Resource"])


def test_cdk_nag_has_no_open_finding(many_synth: Synth) -> None:
    """No AwsSolutions finding; what remains are the deliberate warnings (test_quality.py)
    and CDK's own note that the template nears 1 MB (docs/performance.md)."""
    found = findings(many_synth.validation_report)
    assert {rule for _, rule, _ in found if "AwsSolutions" in rule} == set()
    assert {rule for _, rule, severity in found if severity != "warning"} == set()


def test_dispatcher_policies_stay_within_iam_limits(many_synth: Synth) -> None:
    """PassRole and RunTask name every profile's roles and task definitions: CDK moves what
    does not fit an inline policy into managed policies; a role may have 10 attached."""
    attached: dict[str, int] = {}
    for policy in many_synth.resources("AWS::IAM::ManagedPolicy").values():
        for role in policy["Properties"].get("Roles", []):
            attached[role["Ref"]] = attached.get(role["Ref"], 0) + 1
    assert max(attached.values(), default=0) <= 4, attached


def test_too_many_profiles_fail_in_one_line() -> None:
    """What still bounds one instance: CloudFormation's 500 resources per stack (and 1 MB),
    at synth, not at deploy. Plain and restricted profiles in turn (a restricted one names
    the admission table too); the one check of this limit (test_construct.py had a second
    one, of 60 restricted profiles, with the same message)."""
    from fargate_runners import FargateRunners, FargateRunnersProps, RunnerProfile

    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "TooMany")
    profiles = [
        RunnerProfile(**{key: tuple(v) if isinstance(v, list) else v for key, v in p.items()})
        for p in many_profiles(60, steps=False)
    ]
    with pytest.raises(ConfigError) as raised:
        FargateRunners(stack, "Runners", FargateRunnersProps(profiles=profiles))
    message = str(raised.value)
    assert "\n" not in message
    assert re.fullmatch(
        r"profiles: 60 profiles make \d+ resources in stack TooMany, over CloudFormation's 500"
        r"( and a template of about \d+ KB \(about \d+ KB per profile\), over "
        r"CloudFormation's 1000 KB)?; split the profiles over FargateRunners instances in "
        r"two stacks",
        message,
    ), message


# --- dispatch: the 50th profile, read from SSM, gets its own task ----------------------


@pytest.fixture
def many_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """The stack's resources for 50 profiles (the local mode has no managed steps)."""
    context = {"stack_name": "RunnersMany", "profiles": many_profiles(COUNT, steps=False)}
    with mock_aws():
        fake = create_stack_resources("us-east-1", context)
        for key, value in fake.env().items():
            monkeypatch.setenv(key, value)
        reset_caches()
        yield fake
    reset_caches()


def test_the_fiftieth_profile_launches_its_own_task(many_aws: FakeAws, github: FakeGitHub) -> None:
    from localdev.task_identity import container_environment

    last = f"team-{COUNT - 1}"
    assert len(many_aws.profiles()) == COUNT  # all read back from their SSM parameters
    labels = ["self-hosted", "linux", last]
    status, body = deliver(queued_payload(job_id=5050, labels=labels))
    assert status == 200, body
    ecs = boto3.client("ecs", region_name="us-east-1")
    (task,) = ecs.describe_tasks(cluster=many_aws.cluster, tasks=[body["task_arn"]])["tasks"]
    assert task["taskDefinitionArn"] == many_aws.task_definitions[last]
    env = container_environment(ecs, task, boto3.client("s3", region_name="us-east-1"))
    assert json.loads(env["RUNNER_POLICY_JSON"])["profile"] == last
    assert set(SHARED_FILES) <= set(env)  # from the one environment file
