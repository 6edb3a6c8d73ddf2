"""The repository's synthesized stack in moto (``localdev.fake_stack``), read by the CLI.

What ``make package-check`` does with a user's app (``tests/package/cli_check.py``), here
on the repository's own stack, in-process: the CLI finds the instance, and doctor's only
failed checks are the ones moto cannot pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from lambda_fn import contract
from localdev.fake_stack import deploy_synthesized
from runners_cli.cli import main
from tests.kit.infra import Synth

REGION = "us-east-1"

#: As in tests/package/cli_check.py: the token secret is created empty, and moto's
#: CloudFormation creates no alarm.
EXPECTED_FAILS = ("GitHub token secret has a value", "alarms reach a person")


@pytest.fixture
def aws_env() -> Iterator[None]:
    with mock_aws():
        yield


def test_the_cli_finds_the_synthesized_stack_in_moto(
    main_synth: Synth, aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    name = main_synth.stack.stack_name
    deployed = deploy_synthesized(main_synth.raw, name=name, region=REGION)
    records = [json.loads(v) for v in deployed.outputs.values() if v.startswith("{")]
    records = [r for r in records if contract.INSTANCE_RECORD_MARKER in r]
    assert len(records) == 1
    cluster = records[0][contract.OUTPUT_CLUSTER_NAME]
    instance = records[0][contract.INSTANCE_RECORD_NAME]
    # Every reference in the record resolved (secrets to their ARNs, left-out types to
    # stand-ins): nothing of the template's intrinsics is left.
    assert all(isinstance(v, str | int) and "Fn::" not in str(v) for v in records[0].values())
    assert (
        records[0][contract.OUTPUT_WEBHOOK_SECRET_ARN]
        == deployed.secrets[next(k for k in deployed.secrets if "WebhookSecret" in k)]
    )

    assert main(["status", "--stack", name, "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"stack {name}/{instance} ({REGION}, CREATE_COMPLETE), cluster {cluster}")

    main(["doctor", "--stack", name, "--region", REGION])
    out = capsys.readouterr().out
    assert "PASS  stack outputs present" in out
    assert "deploy the current version" not in out
    failed = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    assert [line for line in failed if not line[6:].startswith(EXPECTED_FAILS)] == []
    # The route table associations are made through EC2 (moto's CloudFormation keeps them
    # where DescribeRouteTables does not look): the subnets' way out is seen.
    assert "runner subnets reach GitHub" in out
