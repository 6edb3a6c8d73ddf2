"""Scale: GitHub calls per job over its whole life, and the reconciler against history.

Two measurements, both with the product's own code against moto and the one GitHub
model (``localdev.github_model``, which records every request), time virtual:

1. **Steady load** at each rate (jobs an hour) for a window of simulated minutes: every
   job is delivered ``queued`` through the real webhook handler; its task's runner comes
   online ``start_delay_s`` later and takes the job (GitHub's ``in_progress`` delivery),
   runs ``job_s``, deregisters and its task exits (``completed`` delivery); the real
   reconciler runs every ``reconcile_every_s``. Each GitHub request is attributed to the
   dispatch path (deliveries) or to the reconciler. From the per-job figures and the
   reconciler's per-run cost: the jobs an hour one PAT (5,000 requests an hour) and one
   App installation (5,000 to 15,000) sustain. Checked: every job started, each on
   exactly one runner task.
2. **Reconciler against finished jobs in the last hour** (150, 500, 2,000 stopped tasks
   ECS still lists, their jobs recorded done by their deliveries) plus 10 busy ones: one
   run's GitHub calls and wall time, which must stay flat, not grow with history.

The model's figures are GitHub's documented limits; the job shape (start delay, job
length) is an assumption, labelled as such in docs/performance.md.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.fakes import FakeGitHubAdapter
from bench.fixtures import (
    BASE_ENV,
    GITHUB_API,
    PAT,
    REGION,
    WEBHOOK_SECRET,
    LambdaContext,
    api_event,
    environment,
    queued_payload,
    quiet_lambda_output,
)
from lambda_fn.aws import reset_caches
from lambda_fn.contract import TAG_GITHUB_JOB_ID, TAG_RUNNER_ID, TAG_RUNNER_NAME

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PAT_PER_HOUR = 5_000
APP_PER_HOUR = (5_000, 15_000)
FIRST_JOB = 9_000_000


@dataclass(frozen=True)
class Load:
    jobs_per_hour: int
    minutes: float
    start_delay_s: float = 45.0
    job_s: float = 120.0
    reconcile_every_s: float = 300.0


@dataclass
class LoadResult:
    load: Load
    jobs: int = 0
    dispatch_calls: int = 0
    reconciler_calls: int = 0
    reconciler_runs: int = 0
    started: set[int] = field(default_factory=set)
    tasks_per_job: dict[int, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        jobs = max(1, self.jobs)
        per_job_dispatch = self.dispatch_calls / jobs
        per_run = self.reconciler_calls / max(1, self.reconciler_runs)
        runs_per_hour = 3600 / self.load.reconcile_every_s
        # The reconciler's own calls do not grow with jobs (that is the point): a fixed
        # cost per hour, the rest of the budget is the jobs'.
        fixed_per_hour = per_run * runs_per_hour

        def sustained(limit: int) -> int:
            return int(max(0.0, limit - fixed_per_hour) / max(per_job_dispatch, 1e-9))

        lost = [j for j in range(FIRST_JOB, FIRST_JOB + self.jobs) if j not in self.started]
        doubled = [j for j, n in self.tasks_per_job.items() if n > 1]
        return {
            "jobs_per_hour": self.load.jobs_per_hour,
            "simulated_minutes": self.load.minutes,
            "jobs": self.jobs,
            "github_calls_per_job_dispatch": round(per_job_dispatch, 3),
            "github_calls_per_job_reconciler": round(self.reconciler_calls / jobs, 3),
            "github_calls_per_job_total": round(
                (self.dispatch_calls + self.reconciler_calls) / jobs, 3
            ),
            "reconciler_runs": self.reconciler_runs,
            "reconciler_calls_per_run": round(per_run, 2),
            "pat_sustains_jobs_per_hour": sustained(PAT_PER_HOUR),
            "app_sustains_jobs_per_hour": [sustained(n) for n in APP_PER_HOUR],
            "lost_jobs": len(lost),
            "jobs_with_two_runners": len(doubled),
            "violations": self.violations[:5],
            "correct": not lost and not doubled and not self.violations,
        }


class _World:
    """moto + the GitHub model + the product's environment, for one measurement."""

    def __init__(self, max_runners: int) -> None:
        self.max_runners = max_runners
        self.github = FakeGitHubAdapter()
        self.deliveries = itertools.count(1)

    def __enter__(self) -> _World:
        from moto import mock_aws
        from moto.moto_api import state_manager

        from localdev.provision import provision

        self._mock = mock_aws()
        self._mock.start()
        self._env = environment(BASE_ENV, unset=("AWS_ENDPOINT_URL",))
        self._env.__enter__()
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        context = {
            "stack_name": "bench",
            "profiles": [
                {
                    "name": "default",
                    "labels": ["self-hosted", "linux", "arm64", "fargate"],
                    "max_runners": self.max_runners,
                }
            ],
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": ["subnet-0123456789abcdef0"],
            "assign_public_ip": False,
        }
        stack = provision(
            None, context, REGION, github_api_url=GITHUB_API, webhook_secret=WEBHOOK_SECRET, pat=PAT
        )
        self.cluster = stack.cluster
        env = {k: v for k, v in stack.env.items() if not k.startswith("AWS_")}
        self._lambda_env = environment(env)
        self._lambda_env.__enter__()
        self._quiet = quiet_lambda_output()
        self._quiet.__enter__()
        reset_caches()
        from lambda_fn.github import shared_session

        shared_session().mount(GITHUB_API + "/", self.github)
        return self

    def __exit__(self, *exc: Any) -> None:
        from moto.moto_api import state_manager

        reset_caches()
        self._quiet.__exit__(*exc)
        self._lambda_env.__exit__(*exc)
        state_manager.unset_transition("ecs::task")
        self._env.__exit__(*exc)
        self._mock.stop()

    @property
    def calls(self) -> int:
        return len(self.github.model.requests)

    def deliver(self, payload: dict[str, Any]) -> int:
        from lambda_fn.app import handler

        body = json.dumps(payload).encode()
        answer = handler(api_event(body, f"d-{next(self.deliveries)}"), LambdaContext())
        return int(answer["statusCode"])

    def reconcile(self, at: datetime, budget_seconds: float | None = None) -> dict[str, int]:
        from lambda_fn.config import get_settings
        from lambda_fn.reconciler import reconcile

        return dict(reconcile(get_settings(), at, budget_seconds=budget_seconds))

    def stop(self, task_arn: str) -> None:
        from lambda_fn import aws

        aws.client("ecs").stop_task(cluster=self.cluster, task=task_arn, reason="runner exited")


def job_payload(job_id: int, action: str, runner: str | None) -> dict[str, Any]:
    payload = queued_payload(job_id)
    job = payload["workflow_job"]
    payload["action"] = action
    job.update(status=action, runner_name=runner)
    if action != "queued":
        job["started_at"] = job["created_at"]
    if action == "completed":
        job["conclusion"] = "success"
    return payload


def steady(load: Load) -> LoadResult:
    """Jobs arriving evenly at ``load.jobs_per_hour`` for ``load.minutes`` (virtual)."""
    result = LoadResult(load)
    gap = 3600 / load.jobs_per_hour
    result.jobs = int(load.minutes * 60 / gap)
    events: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    for index in range(result.jobs):
        heapq.heappush(events, (index * gap, next(order), "queued", FIRST_JOB + index))
    horizon = load.minutes * 60 + load.start_delay_s + load.job_s + load.reconcile_every_s
    tick = load.reconcile_every_s
    while tick <= horizon:
        heapq.heappush(events, (tick, next(order), "reconcile", None))
        tick += load.reconcile_every_s
    concurrent = int(load.jobs_per_hour * (load.start_delay_s + load.job_s) / 3600) + 20
    with _World(max_runners=max(64, 2 * concurrent)) as world:
        model = world.github.model
        launched: dict[int, dict[str, Any]] = {}
        while events:
            now, _, kind, item = heapq.heappop(events)
            before = world.calls
            if kind == "queued":
                status = world.deliver(job_payload(item, "queued", None))
                if status != 200:
                    result.violations.append(f"job {item}: queued answered {status}")
                heapq.heappush(events, (now + load.start_delay_s, next(order), "take", item))
                result.dispatch_calls += world.calls - before
            elif kind == "take":
                task = _task_for(world, item)
                if task is None:
                    result.violations.append(f"job {item}: no task to take it")
                    continue
                launched[item] = task
                model.job_status[item] = "in_progress"
                _registration(model, task["runner"])["busy"] = True
                world.deliver(job_payload(item, "in_progress", task["runner"]))
                result.started.add(item)
                heapq.heappush(events, (now + load.job_s, next(order), "finish", item))
                result.dispatch_calls += world.calls - before
            elif kind == "finish":
                task = launched[item]
                model.job_status[item] = "completed"
                for runner_id, reg in list(model.runners.items()):
                    if reg["name"] == task["runner"]:
                        del model.runners[runner_id]  # ephemeral: deregisters after its job
                world.deliver(job_payload(item, "completed", task["runner"]))
                world.stop(task["arn"])
                result.dispatch_calls += world.calls - before
            else:
                world.reconcile(T0 + timedelta(seconds=now))
                result.reconciler_runs += 1
                result.reconciler_calls += world.calls - before
        result.tasks_per_job = _tasks_per_job(world)
    return result


def _registration(model: Any, name: str) -> dict[str, Any]:
    for reg in model.runners.values():
        if reg["name"] == name:
            return reg  # type: ignore[no-any-return]
    return {}


def _task_for(world: _World, job_id: int) -> dict[str, str] | None:
    from lambda_fn import aws

    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster=world.cluster, startedBy=f"gh-job-{job_id}")["taskArns"]
    if not arns:
        return None
    task = ecs.describe_tasks(cluster=world.cluster, tasks=arns[:1], include=["TAGS"])["tasks"][0]
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    return {"arn": task["taskArn"], "runner": tags[TAG_RUNNER_NAME]}


def _tasks_per_job(world: _World) -> dict[int, int]:
    from lambda_fn import aws

    ecs = aws.client("ecs")
    counts: dict[int, int] = {}
    for status in ("RUNNING", "STOPPED"):
        arns: list[str] = []
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=world.cluster, desiredStatus=status
        ):
            arns += page["taskArns"]
        for start in range(0, len(arns), 100):
            for task in ecs.describe_tasks(
                cluster=world.cluster, tasks=arns[start : start + 100], include=["TAGS"]
            )["tasks"]:
                tags = {t["key"]: t["value"] for t in task.get("tags", [])}
                if TAG_GITHUB_JOB_ID in tags:
                    job = int(tags[TAG_GITHUB_JOB_ID])
                    counts[job] = counts.get(job, 0) + 1
    return counts


def history(finished: int, busy: int = 10) -> dict[str, Any]:
    """One reconciler run with ``finished`` stopped jobs (recorded done) and ``busy`` ones."""
    from lambda_fn import aws, job_records
    from lambda_fn.config import get_settings

    with _World(max_runners=busy + 64) as world:
        model = world.github.model
        settings = get_settings()
        ecs = aws.client("ecs")
        # Launch through the real handler (task tags, JIT registration), then finish them
        # as the deliveries would have: stopped task, job recorded done, runner gone.
        for index in range(finished + busy):
            job_id = FIRST_JOB + index
            world.deliver(job_payload(job_id, "queued", None))
        arns: list[str] = []
        for page in ecs.get_paginator("list_tasks").paginate(cluster=world.cluster):
            arns += page["taskArns"]
        tasks = []
        for start in range(0, len(arns), 100):
            tasks += ecs.describe_tasks(
                cluster=world.cluster, tasks=arns[start : start + 100], include=["TAGS"]
            )["tasks"]
        for task in tasks:
            tags = {t["key"]: t["value"] for t in task.get("tags", [])}
            job_id = int(tags[TAG_GITHUB_JOB_ID])
            if job_id < FIRST_JOB + finished:
                job_records.mark_job(settings, job_id, "completed")
                model.runners.pop(int(tags[TAG_RUNNER_ID]), None)
                world.stop(task["taskArn"])
            else:
                model.runners[int(tags[TAG_RUNNER_ID])].update(status="online", busy=True)
        before = world.calls
        started = time.perf_counter()
        report = world.reconcile(T0)
        wall = time.perf_counter() - started
        calls = [f"{r.method} {r.path}" for r in model.requests[before:]]
    from lambda_fn.reconciler import DEFAULT_BUDGET_SECONDS

    return {
        "finished_jobs": finished,
        "busy_jobs": busy,
        "github_calls": len(calls),
        "job_lookups": sum(1 for c in calls if "/actions/jobs/" in c),
        "wall_s": round(wall, 2),
        "budget_s": DEFAULT_BUDGET_SECONDS,
        "over_budget": bool(report.get("over_budget")),
        "within_budget": wall < DEFAULT_BUDGET_SECONDS and not report.get("over_budget"),
    }


def run(rates: tuple[int, ...], minutes: float, histories: tuple[int, ...]) -> dict[str, Any]:
    loads = [steady(Load(rate, minutes)).summary() for rate in rates]
    reconciler = [history(n) for n in histories]
    flat = len({r["github_calls"] for r in reconciler}) == 1
    return {
        "status": "ok",
        "loads": loads,
        "reconciler": reconciler,
        "reconciler_calls_flat": flat,
        "correct": all(item["correct"] for item in loads)
        and all(item["within_budget"] and item["job_lookups"] == 0 for item in reconciler)
        and flat,
    }
