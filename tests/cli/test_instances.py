"""The CLI finds a FargateRunners instance by its record output (``--instance``)."""

from __future__ import annotations

import json

import boto3
import pytest

from lambda_fn import contract
from runners_cli.cli import main
from runners_cli.errors import CliError
from runners_cli.stack import Aws, choose_instance, load_stack, stack_resources

REGION = "us-east-1"


def record(name: str, prefix: str, cluster: str) -> str:
    return json.dumps(
        {
            contract.INSTANCE_RECORD_MARKER: contract.INSTANCE_RECORD_VERSION,
            contract.INSTANCE_RECORD_NAME: name,
            contract.INSTANCE_RECORD_PREFIX: prefix,
            contract.OUTPUT_WEBHOOK_URL: f"https://example.com/{name}/webhook",
            contract.OUTPUT_WEBHOOK_SECRET_ARN: f"arn:aws:secretsmanager:{REGION}:1:secret:{name}",
            contract.OUTPUT_GITHUB_TOKEN_SECRET_ARN: f"arn:aws:secretsmanager:{REGION}:1:secret:t",
            contract.OUTPUT_CLUSTER_NAME: cluster,
        }
    )


def deploy_team_stack() -> None:
    """A user's stack with two instances, ``Ci`` and ``Ci2`` (one prefix is the other's)."""
    template = {
        "Resources": {
            "CiCluster1234ABCD": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "ci"}},
            "Ci2Cluster1234ABCD": {
                "Type": "AWS::ECS::Cluster",
                "Properties": {"ClusterName": "ci2"},
            },
        },
        "Outputs": {
            "CiFargateRunnersInstance0A1B2C3D": {"Value": record("Ci", "Ci", "ci")},
            "Ci2FargateRunnersInstance0A1B2C3D": {"Value": record("Ci2", "Ci2", "ci2")},
            "Unrelated": {"Value": '{"not": "a record"}'},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Team", TemplateBody=json.dumps(template)
    )


def test_two_instances_need_instance_and_say_which(aws_env: None) -> None:
    deploy_team_stack()
    with pytest.raises(
        CliError, match=r"^stack Team holds 2 fargate-runners instances \(Ci, Ci2\)"
    ):
        load_stack(Aws(REGION), "Team")
    ci = load_stack(Aws(REGION), "Team", "Ci")
    assert (ci.instance, ci.cluster_name, ci.label) == ("Ci", "ci", "Team/Ci")
    # Resources belong to the instance with the longest matching prefix.
    clusters = stack_resources(Aws(REGION), ci, "AWS::ECS::Cluster")
    assert [r["LogicalResourceId"] for r in clusters] == ["CiCluster1234ABCD"]
    ci2 = load_stack(Aws(REGION), "Team", "Ci2")
    clusters = stack_resources(Aws(REGION), ci2, "AWS::ECS::Cluster")
    assert [r["LogicalResourceId"] for r in clusters] == ["Ci2Cluster1234ABCD"]


def test_unknown_instance_lists_the_instances(aws_env: None) -> None:
    deploy_team_stack()
    with pytest.raises(CliError, match=r"--instance 'Nope' is not one .* \(Ci, Ci2\)"):
        load_stack(Aws(REGION), "Team", "Nope")


def test_last_path_part_selects_when_unique() -> None:
    records = [json.loads(record("Team/Ci", "TeamCi", "a")), json.loads(record("Deploy", "D", "b"))]
    assert choose_instance("S", records, "Ci")[contract.INSTANCE_RECORD_NAME] == "Team/Ci"


def test_status_reads_the_chosen_instance(
    aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_team_stack()
    boto3.client("ecs", region_name=REGION).create_cluster(clusterName="ci2")
    assert main(["status", "--stack", "Team", "--region", REGION]) == 2
    assert "pass --instance NAME" in capsys.readouterr().err
    main(["status", "--stack", "Team", "--instance", "Ci2", "--region", REGION])
    assert "stack Team/Ci2" in capsys.readouterr().out
