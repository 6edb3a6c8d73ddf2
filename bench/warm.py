"""Warm per-delivery overhead of the real Lambda handler (``lambda_fn.app.handler``).

Each delivery goes through the whole handler: API Gateway event -> Powertools
resolver -> signature -> JSON -> pydantic -> routing -> idempotency (DynamoDB)
-> GitHub JIT config (requests) -> ECS ``RunTask`` (botocore), plus the
structured log lines and EMF metrics (formatted, written to a null stream).
AWS and GitHub are answered by :mod:`bench.fakes` at the transport layer, so
the figure is the handler's own CPU cost, not a fake server's.

Scenarios: ``launched`` (a new queued job each time), ``ignored`` (labels no
profile serves) and ``duplicate`` (a redelivery of an already launched job).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fakes import FakeAws, FakeGitHubAdapter
from bench.fixtures import (
    GITHUB_API,
    REGION,
    UNMATCHED_LABELS,
    LambdaContext,
    environment,
    job_event,
    lambda_env,
    quiet_lambda_output,
)
from bench.stats import percentile, spread
from lambda_fn.aws import reset_caches

#: The remote calls a launched delivery waits for, in milliseconds (assumptions, see docs).
REMOTE_BUDGET_MS: dict[str, float] = {
    "github_generate_jitconfig": 300.0,
    "ecs_run_task": 400.0,
    "dynamodb_put_item": 10.0,
    "dynamodb_update_item": 10.0,
}
SCENARIOS = ("launched", "ignored", "duplicate")
EXPECTED_STATUS = {"launched": "launched", "ignored": "ignored", "duplicate": "duplicate"}


@dataclass
class WarmResult:
    """Per-scenario latencies (seconds) and what the fakes saw."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    round_p50: dict[str, list[float]] = field(default_factory=dict)
    aws_calls: dict[str, int] = field(default_factory=dict)
    jit_configs_issued: int = 0
    deliveries: int = 0
    rounds: int = 0

    def summary(self) -> dict[str, Any]:
        budget_us = sum(REMOTE_BUDGET_MS.values()) * 1000
        scenarios: dict[str, Any] = {}
        for name, values in self.samples.items():
            p50 = percentile(values, 50) * 1e6
            p99 = percentile(values, 99) * 1e6
            scenarios[name] = {
                "deliveries": len(values),
                "p50_us": round(p50, 1),
                "p99_us": round(p99, 1),
                "mean_us": round(sum(values) / len(values) * 1e6, 1),
                "p50_share_of_remote_budget_pct": round(100 * p50 / budget_us, 3),
                "p99_share_of_remote_budget_pct": round(100 * p99 / budget_us, 3),
                "p50_across_rounds_us": spread([v * 1e6 for v in self.round_p50[name]]).as_dict(),
            }
        return {
            "remote_budget_ms": REMOTE_BUDGET_MS,
            "remote_budget_total_ms": sum(REMOTE_BUDGET_MS.values()),
            "rounds": self.rounds,
            "scenarios": scenarios,
            "aws_calls": dict(sorted(self.aws_calls.items())),
            "jit_configs_issued": self.jit_configs_issued,
        }


def _install_fakes(aws: FakeAws, github: FakeGitHubAdapter) -> None:
    """Create the handler's cached clients now and route them to the fakes."""
    from lambda_fn import aws as lambda_aws
    from lambda_fn.github import shared_session

    for service in ("ecs", "dynamodb", "secretsmanager", "ssm"):
        aws.install(lambda_aws.client(service))
    shared_session().mount(GITHUB_API + "/", github)


def lambda_aws_client_for_setup(aws: FakeAws) -> Any:
    """An SSM client answered by ``aws`` (to store the profiles before the handler runs)."""
    import boto3

    client = boto3.client(
        "ssm",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - a fake's credentials
    )
    aws.install(client)
    return client


def run(
    per_round: int = 600, rounds: int = 5, warmup: int = 50, *, check: bool = True
) -> WarmResult:
    """Time ``per_round`` deliveries of each scenario, ``rounds`` times, interleaved.

    With ``check`` every answer is verified (status code and body status); the
    check runs outside the timed region.
    """
    from lambda_fn.app import handler

    aws = FakeAws()
    github = FakeGitHubAdapter()
    ssm = lambda_aws_client_for_setup(aws)
    env = lambda_env(
        ssm=ssm,
        webhook_secret_arn=aws.webhook_secret_arn,
        token_secret_arn=aws.token_secret_arn,
        cluster=aws.cluster,
        subnet_id="subnet-0bench",
        security_group_id="sg-0bench",
        table="runners-idempotency",
        task_definitions={
            "default": "arn:aws:ecs:us-east-1:123456789012:task-definition/runner-default:1",
            "big": "arn:aws:ecs:us-east-1:123456789012:task-definition/runner-big:1",
        },
    )
    result = WarmResult(samples={name: [] for name in SCENARIOS}, rounds=rounds)
    result.round_p50 = {name: [] for name in SCENARIOS}
    context = LambdaContext()
    next_job = iter(range(1_000_000, 10_000_000))
    failures: list[str] = []

    with environment(env, unset=("AWS_ENDPOINT_URL", "POWERTOOLS_TRACE_DISABLED")):
        reset_caches()
        _install_fakes(aws, github)
        try:
            launched_jobs: list[int] = []
            with quiet_lambda_output():

                def batch(scenario: str, count: int, record: bool) -> None:
                    events = _events(scenario, count, next_job, launched_jobs)
                    timings = _time_deliveries(handler, events, context, failures, scenario)
                    if record:
                        result.samples[scenario].extend(timings)
                        result.round_p50[scenario].append(percentile(timings, 50))
                        result.deliveries += count

                for scenario in SCENARIOS:  # warm-up: clients, models, first validations
                    batch(scenario, warmup, record=False)
                for _ in range(rounds):
                    for scenario in SCENARIOS:
                        batch(scenario, per_round, record=True)
        finally:
            reset_caches()
    if check and failures:
        raise AssertionError(f"{len(failures)} unexpected answers, first: {failures[0]}")
    result.aws_calls = dict(aws.calls)
    result.jit_configs_issued = github.jit_configs_issued
    return result


def _events(
    scenario: str, count: int, next_job: Any, launched_jobs: list[int]
) -> list[tuple[int, dict[str, Any]]]:
    """Signed events for one batch, built before the timer starts."""
    events: list[tuple[int, dict[str, Any]]] = []
    for index in range(count):
        if scenario == "duplicate":
            job_id = launched_jobs[index % len(launched_jobs)]
            events.append((job_id, job_event(job_id, f"dup-{job_id}-{index}")))
        elif scenario == "ignored":
            job_id = next(next_job)
            events.append((job_id, job_event(job_id, f"ign-{job_id}", UNMATCHED_LABELS)))
        else:
            job_id = next(next_job)
            launched_jobs.append(job_id)
            events.append((job_id, job_event(job_id, f"new-{job_id}")))
    return events


def _time_deliveries(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    events: list[tuple[int, dict[str, Any]]],
    context: Any,
    failures: list[str],
    scenario: str,
) -> list[float]:
    timings: list[float] = []
    answers: list[dict[str, Any]] = []
    clock = time.perf_counter
    for _, event in events:
        started = clock()
        answer = handler(event, context)
        timings.append(clock() - started)
        answers.append(answer)
    _check_answers(answers, scenario, failures)
    return timings


def _check_answers(answers: list[dict[str, Any]], scenario: str, failures: list[str]) -> None:
    import json

    expected = EXPECTED_STATUS[scenario]
    for answer in answers:
        body = json.loads(answer.get("body") or "{}")
        if answer.get("statusCode") != 200 or body.get("status") != expected:
            failures.append(f"{scenario}: {answer.get('statusCode')} {body}")
