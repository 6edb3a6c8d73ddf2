"""``fargate-runners`` against a moto CloudFormation stack and GitHub behind ``responses``."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from runners_cli import commands
from runners_cli.cli import main
from runners_cli.errors import CliError
from runners_cli.github import Target
from runners_cli.stack import Aws, load_stack, webhook_function_environment
from tests.kit.cli import (
    API,
    PAT,
    REGION,
    STACK,
    WEBHOOK_URL,
    Deployed,
    GitHub,
    deploy,
)

REPO = Target("repo", "octo-org/app")
ORG = Target("org", "octo-org")
NEW_PAT = "github_pat_" + "NEWTOKEN" * 4


def run_setup(target: Target = REPO, token: str = NEW_PAT, **kwargs: object) -> list[str]:
    lines: list[str] = []
    code = commands.setup(
        Aws(REGION),
        STACK,
        target,
        token,
        api_url=API,
        out=lines.append,
        **kwargs,  # type: ignore[arg-type]
    )
    assert code == 0
    return lines


# --- stack outputs -------------------------------------------------------------------------


def test_reads_outputs_including_optional_queues(deployed: Deployed) -> None:
    stack = load_stack(Aws(REGION), STACK)
    assert stack.webhook_url == WEBHOOK_URL
    assert stack.cluster_name == "runners"
    assert stack.github_token_secret_arn == deployed.token_secret_arn
    assert stack.retry_queue_url and stack.retry_queue_url.endswith("/retry")
    assert stack.dead_letter_queue_url and stack.dead_letter_queue_url.endswith("/dlq")


def test_queue_outputs_are_optional(aws_env: None) -> None:
    deploy(with_queues=False)
    stack = load_stack(Aws(REGION), STACK)
    assert stack.retry_queue_url is None and stack.dead_letter_queue_url is None
    assert stack.missing == ()


def test_missing_stack_is_one_line_exit_2(
    aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "stack 'FargateRunners' not found in region us-east-1" in err
    assert "--region" in err


def test_wrong_region_names_the_region(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--region", "eu-west-1"]) == 2
    assert "not found in region eu-west-1" in capsys.readouterr().err


def test_missing_credentials_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    assert main(["doctor", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fargate-runners: error: no AWS credentials found")
    assert len(err.splitlines()) == 1


def test_missing_required_output_is_named(aws_env: None) -> None:
    cf = boto3.client("cloudformation", region_name=REGION)
    cf.create_stack(
        StackName=STACK,
        TemplateBody='{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, '
        '"Outputs": {"WebhookUrl": {"Value": "https://x/prod/webhook"}}}',
    )
    stack = load_stack(Aws(REGION), STACK)
    assert stack.missing == ("WebhookSecretArn", "GitHubTokenSecretArn", "ClusterName")
    with pytest.raises(CliError, match="no output ClusterName"):
        _ = stack.cluster_name


# --- setup -----------------------------------------------------------------------------------


def test_setup_stores_token_and_creates_hook(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = NEW_PAT
    lines = run_setup()
    assert deployed.pat() == NEW_PAT
    assert github.writes() == [("POST", "/repos/octo-org/app/hooks")]
    (hook,) = github.hook_views()
    assert hook["events"] == ["workflow_job"]
    assert hook["config"]["url"] == WEBHOOK_URL
    assert hook["config"]["content_type"] == "json"
    assert hook["active"] is True
    assert any(line.startswith("webhook: created") for line in lines)
    assert any("replaced" in line for line in lines)
    assert all(NEW_PAT not in line for line in lines)


def test_setup_sends_the_stack_webhook_secret(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = NEW_PAT
    run_setup()
    body = next(c.request.body for c in github.mock.calls if c.request.method == "POST")
    assert b"stack-webhook-secret-0123456789" in body


def test_setup_twice_changes_nothing(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = NEW_PAT
    run_setup()
    versions = deployed.pat_versions()
    writes = len(github.writes())
    second = run_setup()
    assert len(github.writes()) == writes
    assert deployed.pat_versions() == versions
    assert any("token:   unchanged" in line for line in second)
    assert any(line.startswith("webhook: unchanged") for line in second)


def test_setup_patches_a_hook_that_differs(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = PAT
    github.seed_hook(
        {
            "id": 7,
            "active": False,
            "events": ["push", "workflow_job"],
            "config": {"url": WEBHOOK_URL, "content_type": "form", "secret": "********"},
        }
    )
    lines = run_setup(token=PAT)
    assert github.writes() == [("PATCH", "/repos/octo-org/app/hooks/7")]
    assert github.hook_views()[0]["events"] == ["workflow_job"] and github.hook_views()[0]["active"]
    assert any(line.startswith("webhook: updated") for line in lines)


def test_setup_resend_secret_patches_even_when_equal(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = PAT
    run_setup(token=PAT)
    run_setup(token=PAT, resend_secret=True)
    (hook,) = github.hook_views()
    assert github.writes()[-1] == ("PATCH", f"/repos/octo-org/app/hooks/{hook['id']}")


@pytest.mark.parametrize(
    ("target", "needed"),
    [(REPO, "'Administration: write'"), (ORG, "'Self-hosted runners: write'")],
)
def test_setup_names_missing_runner_permission_and_stores_nothing(
    deployed: Deployed, github: GitHub, target: Target, needed: str
) -> None:
    github.valid_token = NEW_PAT
    github.fail("GET", r"/actions/runners$", 403, times=None,
                body={"message": "Resource not accessible by personal access token"})  # fmt: skip
    with pytest.raises(CliError) as raised:
        run_setup(target)
    assert raised.value.exit_code == 1
    assert needed in raised.value.message
    assert ("repo" if target.kind == "repo" else "admin:org") in raised.value.message
    assert deployed.pat() == PAT  # the previous token is kept
    assert github.writes() == []


def test_setup_rejects_bad_token(deployed: Deployed, github: GitHub) -> None:
    with pytest.raises(CliError, match="401"):
        run_setup(token="github_pat_wrong")
    assert deployed.pat() == PAT


def test_setup_org_uses_org_hooks(deployed: Deployed, github: GitHub) -> None:
    github.valid_token = NEW_PAT
    github.classic_scopes = "admin:org, admin:org_hook"
    lines = run_setup(ORG)
    assert github.writes() == [("POST", "/orgs/octo-org/hooks")]
    assert "classic token, scopes: admin:org, admin:org_hook" in lines[0]


def test_setup_reads_token_from_stdin_not_argv(
    deployed: Deployed, github: GitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    github.valid_token = NEW_PAT
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PAT + "\n"))
    argv = [
        "setup",
        "--repo",
        "octo-org/app",
        "--token-stdin",
        "--region",
        REGION,
        "--github-api-url",
        API,
    ]
    assert main(argv) == 0
    assert deployed.pat() == NEW_PAT


def test_setup_prompts_with_getpass(
    deployed: Deployed, github: GitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    github.valid_token = NEW_PAT
    monkeypatch.setattr("runners_cli.commands.getpass.getpass", lambda prompt: NEW_PAT)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)  # a terminal to prompt on
    assert main(["setup", "--org", "octo-org", "--region", REGION, "--github-api-url", API]) == 0
    assert deployed.pat() == NEW_PAT


def test_setup_needs_a_target(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--region", REGION]) == 2
    assert "--repo OWNER/REPO or --org ORG" in capsys.readouterr().err


# --- status ------------------------------------------------------------------------------------


def test_status_lists_runners_queues_and_failed_deliveries(
    deployed: Deployed, github: GitHub
) -> None:
    deployed.run_runner_task(4242, "octo-org/app")
    deployed.run_runner_task(4243, "octo-org/api")
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=deployed.outputs["DeadLetterQueueUrl"], MessageBody="{}")
    github.seed_hook(
        {
            "id": 9,
            "active": True,
            "events": ["workflow_job"],
            "config": {"url": WEBHOOK_URL, "content_type": "json", "secret": "********"},
        }
    )
    github.deliveries = [
        {
            "id": 1,
            "hook_id": 9,
            "guid": "g-1",
            "status_code": 401,
            "status": "Unauthorized",
            "event": "workflow_job",
            "action": "queued",
            "delivered_at": "2025-01-01T10:00:00Z",
        },
        {
            "id": 2,
            "hook_id": 9,
            "guid": "g-2",
            "status_code": 200,
            "status": "OK",
            "event": "workflow_job",
        },
    ]
    lines: list[str] = []
    later = datetime.now(UTC) + timedelta(minutes=3)
    assert commands.status(Aws(REGION), STACK, REPO, api_url=API, out=lines.append, now=later) == 0
    text = "\n".join(lines)
    assert "runner tasks: 2" in text
    assert "4242" in text and "octo-org/app" in text and "4243" in text
    assert "per profile: default 2" in text
    assert "retry queue: 0 message(s)" in text
    assert "dead-letter queue: 1 message(s)" in text
    assert "failed webhook deliveries (recent, hook 9): 1" in text
    assert "401" in text and "g-1" in text and "g-2" not in text


def test_status_without_queue_outputs(aws_env: None) -> None:
    deploy(with_queues=False)
    lines: list[str] = []
    assert commands.status(Aws(REGION), STACK, None, api_url=API, out=lines.append) == 0
    assert "retry queue: (not in this stack's outputs)" in lines
    assert "runner tasks: 0" in lines
    # moto: ListMetrics answers no TimeToStart metric yet.
    assert "time to start, last hour: no job started on these runners" in lines


def _stubbed_cloudwatch(aws: Aws, now: datetime, results: list[dict[str, object]]) -> object:
    """CloudWatch answered by botocore's Stubber: each request is checked against the
    service model, the answers have GetMetricData's documented shape. (moto computes no
    percentiles, so it cannot stand in here.)"""
    from botocore.stub import ANY, Stubber

    client = boto3.client("cloudwatch", region_name=REGION)
    aws._clients["cloudwatch"] = client
    stubber = Stubber(client)
    dimensions = [
        [{"Name": "profile", "Value": p}, {"Name": "service", "Value": "runner-webhook"}]
        for p in ("small", "default")
    ]
    stubber.add_response(
        "list_metrics",
        {"Metrics": [{"Namespace": "FargateRunners", "MetricName": "TimeToStart", "Dimensions": d}
                     for d in dimensions]},
        {"Namespace": "FargateRunners", "MetricName": "TimeToStart"},
    )  # fmt: skip
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": results},
        {"MetricDataQueries": ANY, "StartTime": now - timedelta(hours=1), "EndTime": now},
    )
    stubber.activate()
    return stubber


def test_status_time_to_start_per_profile(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    aws = Aws(REGION)

    def result(query_id: str, values: list[float]) -> dict[str, object]:
        return {"Id": query_id, "Label": query_id, "StatusCode": "Complete",
                "Timestamps": [now - timedelta(hours=1)] if values else [], "Values": values}  # fmt: skip

    stubber = _stubbed_cloudwatch(
        aws,
        now,
        [
            result("m0_p50", [38.25]), result("m0_p90", [61.0]), result("m0_samplecount", [12.0]),
            result("m1_p50", []), result("m1_p90", []), result("m1_samplecount", []),
        ],
    )  # fmt: skip
    lines: list[str] = []
    assert commands.status(aws, STACK, None, api_url=API, out=lines.append, now=now) == 0
    stubber.assert_no_pending_responses()  # type: ignore[attr-defined]
    text = "\n".join(lines)
    assert "time to start, last hour (job queued -> a runner took it):" in text
    assert any(line.split() == ["small", "12", "38.2s", "61.0s"] for line in lines), text
    assert any(line.split() == ["default", "0", "-", "-"] for line in lines), text


def test_time_to_start_queries(deployed: Deployed) -> None:
    """Three statistics per listed dimension set, one period over the hour."""
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    aws = Aws(REGION)
    _stubbed_cloudwatch(aws, now, [])
    seen: list[dict[str, object]] = []
    client = aws.client("cloudwatch")
    client.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **kwargs: seen.extend(params["MetricDataQueries"]),
    )
    figures = commands.time_to_start(aws, now, timedelta(hours=1))
    assert [(f.profile, f.jobs, f.p50, f.p90) for f in figures] == [
        ("default", 0, None, None),
        ("small", 0, None, None),
    ]
    assert [q["Id"] for q in seen] == [
        "m0_p50", "m0_p90", "m0_samplecount", "m1_p50", "m1_p90", "m1_samplecount",
    ]  # fmt: skip
    stat = seen[0]["MetricStat"]
    assert isinstance(stat, dict) and stat["Period"] == 3600
    assert stat["Metric"]["Dimensions"][0] == {"Name": "profile", "Value": "small"}


def test_status_without_metric_permissions_still_reports(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> object:
        raise CliError("AccessDenied: cloudwatch:ListMetrics")

    monkeypatch.setattr(commands, "time_to_start", denied)
    lines: list[str] = []
    assert commands.status(Aws(REGION), STACK, None, api_url=API, out=lines.append) == 0
    assert any(line.startswith("time to start, last hour: unavailable") for line in lines)
    assert "runner tasks: 0" in lines


def test_metrics_namespace_is_the_stacks() -> None:
    props = pytest.importorskip("fargate_runners.props")
    assert commands.METRICS_NAMESPACE == props.METRICS_NAMESPACE


def test_age_formatting() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert commands.age(start, start + timedelta(seconds=192)) == "3m12s"
    assert commands.age(start, start + timedelta(hours=2, minutes=5)) == "2h05m"
    assert commands.age(start, start + timedelta(days=1, hours=4)) == "1d04h"
    assert commands.age(None) == "?"


# --- doctor ------------------------------------------------------------------------------------


def doctor(target: Target | None = REPO) -> tuple[int, str]:
    lines: list[str] = []
    code = commands.doctor(Aws(REGION), STACK, target, api_url=API, out=lines.append)
    return code, "\n".join(lines)


def test_doctor_all_pass(deployed: Deployed, github: GitHub) -> None:
    run_setup(token=PAT)
    code, text = doctor()
    assert code == 0, text
    assert "FAIL" not in text
    for expected in (
        "PASS  stack FargateRunners found in us-east-1",
        "PASS  stack outputs present",
        "PASS  webhook secret readable",
        "PASS  GitHub token secret has a value",
        "PASS  cluster runners ACTIVE",
        "PASS  task definition FargateRunners-runner-default:1 ACTIVE",
        "PASS  dead-letter queue empty",
        "PASS  GitHub accepts the token",
        "PASS  token can manage self-hosted runners of repository octo-org/app",
        f"PASS  webhook to {WEBHOOK_URL} exists",
        "PASS  webhook active, workflow_job only, json, with secret",
        "PASS  no failed deliveries among the last 20",
        "PASS  webhook recorded for automatic redelivery",
        "PASS  alarms reach a person (1 alarms)",
    ):
        assert expected in text


def test_setup_records_the_webhook_for_the_reconciler(deployed: Deployed, github: GitHub) -> None:
    """Redelivery needs no hand configuration: setup writes the hook's path to the stack."""
    lines = run_setup(token=PAT)
    ssm = boto3.client("ssm", region_name=REGION)
    value = ssm.get_parameter(Name=deployed.outputs["WebhookHookParameter"])["Parameter"]["Value"]
    (hook,) = github.hook_views()
    assert value == f"repos/octo-org/app/hooks/{hook['id']}"
    assert any(line.startswith("webhook: recorded as repos/octo-org/app/hooks/") for line in lines)


def test_doctor_reports_a_webhook_that_is_not_recorded(deployed: Deployed, github: GitHub) -> None:
    run_setup(token=PAT)
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(
        Name=deployed.outputs["WebhookHookParameter"], Value="not-recorded", Overwrite=True
    )
    code, text = doctor()
    assert code == 1
    assert "FAIL  webhook recorded for automatic redelivery" in text
    assert "fix: fargate-runners setup --repo octo-org/app" in text


def test_doctor_reports_alarms_that_notify_nobody(aws_env: None, github: GitHub) -> None:
    deploy(alarm_topic=False)
    code, text = doctor()
    assert code == 1
    assert "FAIL  alarms reach a person (1 of 1 alarms notify nobody" in text
    assert "fix: set alarm_email" in text


def restricted_profiles(*groups: int | None) -> str:
    profiles = []
    for i, group in enumerate(groups):
        profile: dict[str, object] = {
            "name": f"deploy-{i}",
            "labels": ["deploy", str(i)],
            "policy": {
                "profile": f"deploy-{i}",
                "allowed_repositories": ["octo-org/app"],
                "allowed_refs": ["refs/heads/main"],
                "allowed_workflows": [".github/workflows/deploy.yml"],
            },
        }
        if group is not None:
            profile["runner_group_id"] = group
        profiles.append(profile)
    profiles.append({"name": "default", "labels": ["self-hosted"]})
    return json.dumps(profiles)


def test_doctor_warns_when_a_restricted_org_profile_uses_the_default_group(
    aws_env: None, github: GitHub
) -> None:
    from tests.kit.cli import protect, seed_group

    deploy(function_env={"RUNNER_SCOPE": "org", "RUNNER_PROFILES": restricted_profiles(None, 7)})
    protect(github)
    seed_group(github, 7)
    run_setup(ORG, token=PAT)  # also creates a group for deploy-0 (not yet in the stack)
    code, text = doctor(ORG)
    assert code == 0, text  # a warning does not fail doctor
    assert (
        "WARN  restricted profile deploy-0 has its own runner group "
        "(it uses the default group (1), open to every repository)" in text
    )
    assert "fix: fargate-runners setup --org ORG creates a runner group limited to" in text
    assert "PASS  restricted profile deploy-1 has its own runner group (group 7)" in text
    assert "default has its own runner group" not in text  # not restricted: not checked
    assert [line for line in text.splitlines() if "WARN  restricted profile" in line] == [
        line for line in text.splitlines() if "WARN  restricted profile deploy-0" in line
    ]


def test_doctor_counts_the_stack_wide_runner_group(aws_env: None, github: GitHub) -> None:
    env = {
        "RUNNER_SCOPE": "org",
        "RUNNER_GROUP_ID": "5",
        "RUNNER_PROFILES": restricted_profiles(None),
    }
    deploy(function_env=env)
    assert "PASS  restricted profile deploy-0 has its own runner group (group 5)" in doctor()[1]


def test_doctor_has_no_runner_group_check_for_repository_runners(
    aws_env: None, github: GitHub
) -> None:
    """Repository runners have no groups: doctor warns that other jobs can take them."""
    deploy(function_env={"RUNNER_PROFILES": restricted_profiles(None)})
    text = doctor()[1]
    assert "has its own runner group" not in text
    assert "WARN  restricted profile deploy-0 runs only the jobs it was made for" in text


def test_doctor_reports_empty_pat_with_fix(aws_env: None, github: GitHub) -> None:
    deploy(pat=None)
    code, text = doctor()
    assert code == 1
    assert "FAIL  GitHub token secret has a value (no value)" in text
    assert "fix: fargate-runners setup --repo OWNER/REPO" in text


def test_doctor_reports_hook_problems_and_dlq(deployed: Deployed, github: GitHub) -> None:
    github.seed_hook(
        {
            "id": 5,
            "active": False,
            "events": ["push"],
            "config": {"url": WEBHOOK_URL, "content_type": "form"},
        }
    )
    github.deliveries = [
        {"id": 1, "hook_id": 5, "status_code": 401, "delivered_at": "2025-01-01T10:00:00Z"}
    ]
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=deployed.outputs["DeadLetterQueueUrl"], MessageBody="{}")
    code, text = doctor()
    assert code == 1
    assert "FAIL  webhook active, workflow_job only, json, with secret (inactive" in text
    assert "content type 'form'" in text and "no secret" in text
    assert "FAIL  dead-letter queue empty (1 message(s))" in text
    assert "FAIL  no failed deliveries among the last 20 (1 failed, latest 401" in text
    assert "--resend-secret" in text


def test_doctor_reports_missing_permission(deployed: Deployed, github: GitHub) -> None:
    github.fail("GET", r"/actions/runners$", 404, times=None)
    code, text = doctor(ORG)
    assert code == 1
    assert "FAIL  token can manage self-hosted runners of organisation octo-org" in text
    assert "'Self-hosted runners: write'" in text


def test_doctor_missing_stack_is_a_fail(aws_env: None) -> None:
    code, text = doctor()
    assert code == 1
    assert "FAIL  stack FargateRunners found" in text
    assert "fix: pass --region / --stack" in text


def test_doctor_cli_exit_code(
    deployed: Deployed, github: GitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    run_setup(token=PAT)
    assert (
        main(["doctor", "--repo", "octo-org/app", "--region", REGION, "--github-api-url", API]) == 0
    )
    assert "0 failed" in capsys.readouterr().out


# --- serve --aws: the deployed function's environment ------------------------------------------


def test_serve_aws_reads_the_webhook_function_environment(deployed: Deployed) -> None:
    env = webhook_function_environment(Aws(REGION), STACK)
    assert env["ECS_CLUSTER"] == "runners"
    assert env["WEBHOOK_SECRET_ARN"] == deployed.webhook_secret_arn
    assert env["GITHUB_API_URL"] == API


def test_target_parsing() -> None:
    assert Target.parse("o/r", None) == Target("repo", "o/r")
    assert Target.parse(None, "o") == Target("org", "o")
    assert Target.parse(None, None) is None
    with pytest.raises(CliError):
        Target.parse("just-a-name", None)
    with pytest.raises(CliError):
        Target.parse(None, "o/r")


def test_an_alarm_topic_nobody_subscribed_to_reaches_nobody(aws_env: None) -> None:
    from runners_cli.stack import silent_alarms

    sns = boto3.client("sns", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    empty = sns.create_topic(Name="nobody")["TopicArn"]
    for name, actions in (("a-empty-topic", [empty]), ("b-none", [])):
        cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum",
            Period=300, EvaluationPeriods=1, Threshold=1,
            ComparisonOperator="GreaterThanThreshold", AlarmActions=actions,
        )  # fmt: skip
    assert silent_alarms(Aws(REGION), ["a-empty-topic", "b-none"]) == ["a-empty-topic", "b-none"]


# --- runner versions (docs/lifecycle.md, "Runner versions") ---------------------------------------------


def put_version_figures(now: datetime, **days: float | None) -> None:
    """What the reconciler emits per profile: days left, or the unknown state (None)."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for profile, value in days.items():
        cloudwatch.put_metric_data(
            Namespace=commands.METRICS_NAMESPACE,
            MetricData=[
                {
                    "MetricName": commands.DAYS_LEFT
                    if value is not None
                    else commands.VERSION_UNKNOWN,
                    "Dimensions": [
                        {"Name": "profile", "Value": profile},
                        {"Name": "service", "Value": "runner-webhook"},
                    ],
                    "Timestamp": now - timedelta(minutes=10),
                    "Value": value if value is not None else 1.0,
                    "Unit": "Count",
                }
            ],
        )


def test_status_shows_days_left_per_profile(deployed: Deployed) -> None:
    now = datetime.now(UTC)
    put_version_figures(now, default=21.5, small=None)
    lines: list[str] = []
    assert commands.status(Aws(REGION), STACK, None, api_url=API, out=lines.append, now=now) == 0
    text = "\n".join(lines)
    assert "runner versions (alarm below 14 days; docs/lifecycle.md):" in text
    assert "  default      21.5 days before GitHub stops assigning jobs" in lines, text
    assert "  small        version unknown: set the profile's runner_version" in lines, text


@pytest.mark.parametrize(
    ("days", "verdict"),
    [
        (20.0, "PASS  runner version of profile default (20.0 days before GitHub"),
        (9.0, "WARN  runner version of profile default (9.0 days before GitHub"),
        (-1.0, "FAIL  runner version of profile default (1.0 days past GitHub's deadline"),
        (None, "WARN  runner version of profile default (version unknown"),
    ],
)
def test_doctor_judges_the_runner_version(
    deployed: Deployed, github: GitHub, days: float | None, verdict: str
) -> None:
    run_setup(token=PAT)
    put_version_figures(datetime.now(UTC), default=days)
    code, text = doctor()
    assert verdict in text, text
    assert code == (1 if days is not None and days < 0 else 0), text


def endpoints_in(vpc: str, subnet: str) -> dict[str, Any]:
    """What ``vpc_endpoints`` adds to the stack: interface endpoints with private DNS
    (one is enough here) and the S3 gateway endpoint (no DNS of its own)."""
    return {
        "EcrApiEndpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "ServiceName": f"com.amazonaws.{REGION}.ecr.api",
                "VpcEndpointType": "Interface",
                "VpcId": vpc,
                "SubnetIds": [subnet],
                "PrivateDnsEnabled": True,
            },
        },
        "S3Endpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "ServiceName": f"com.amazonaws.{REGION}.s3",
                "VpcEndpointType": "Gateway",
                "VpcId": vpc,
                "RouteTableIds": [],
            },
        },
    }


def imported_vpc() -> tuple[str, str]:
    """A VPC made outside the stack with the API: DNS support on, DNS hostnames off (what
    EC2 gives a VPC created without the console wizard)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    return vpc, subnet


def test_doctor_fails_endpoints_in_a_vpc_without_dns_hostnames(
    aws_env: None, github: GitHub
) -> None:
    vpc, subnet = imported_vpc()
    deploy(extra=endpoints_in(vpc, subnet))
    code, text = doctor()
    assert code == 1
    assert f"FAIL  VPC {vpc} resolves the endpoints' private DNS (enableDnsHostnames off)" in text
    fix = (
        f"""aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames '{{"Value":true}}'"""
    )
    assert f"fix: {fix}" in text


def test_doctor_passes_endpoints_in_a_vpc_with_both_dns_attributes(
    aws_env: None, github: GitHub
) -> None:
    vpc, subnet = imported_vpc()
    boto3.client("ec2", region_name=REGION).modify_vpc_attribute(
        VpcId=vpc, EnableDnsHostnames={"Value": True}
    )
    deploy(extra=endpoints_in(vpc, subnet))
    _, text = doctor()
    assert f"PASS  VPC {vpc} resolves the endpoints' private DNS" in text


def test_doctor_has_no_vpc_dns_check_without_endpoints(aws_env: None, github: GitHub) -> None:
    deploy()
    _, text = doctor()
    assert "private DNS" not in text
