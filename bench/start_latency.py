"""Start latency: a burst of jobs with and without a warm pool, on a virtual clock.

The decisions are the product's own code: every queued and completed delivery goes
through the real webhook handler (``lambda_fn.app.handler``), jobs that wait on
``max_runners`` go through the real retry consumer (``lambda_fn.retry.handler``),
and the real reconciler (``lambda_fn.reconciler.reconcile``) keeps the warm pool,
all against moto (ECS, DynamoDB, SQS, Secrets Manager) and the one GitHub model
(``localdev.github_model``). The stack's resources come from ``localdev.provision``
with a ``cdk.json``-style profile, so the configuration model is exercised too.

What this file adds is what neither moto nor the model does: time, and GitHub's
job assignment. Time is virtual (nothing sleeps), so the ECS start delay is
simulated exactly, not scaled: a task's runner comes online ``start_delay_s``
after ``RunTask``. GitHub hands a queued job to an idle online runner whose
labels fit (an ephemeral JIT runner takes *any* such job, oldest first), after
``assign_s``; the runner is busy for ``job_s``, then deregisters and its task
exits, and GitHub sends ``completed``. The assignment and job figures are
assumptions, labelled as such in docs/performance.md.

Invariants checked on every event, for both runs: running tasks of the profile
never exceed ``max_runners``; a job is only ever handed to a runner whose
registration exists and whose task is running; no busy runner's task is stopped
by the product (it would strand its job); every job starts.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.fakes import FakeGitHubAdapter
from bench.fixtures import (
    BASE_ENV,
    GITHUB_API,
    MATCHING_LABELS,
    OWNER,
    PAT,
    REGION,
    REPO,
    WEBHOOK_SECRET,
    LambdaContext,
    api_event,
    environment,
    queued_payload,
    quiet_lambda_output,
)
from bench.stats import percentile
from lambda_fn.aws import reset_caches
from lambda_fn.contract import TAG_RUNNER_NAME

#: A Monday morning: inside any working-hours schedule.
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PROFILE = "default"
FIRST_JOB = 7_000_000


@dataclass(frozen=True)
class Scenario:
    """The workload; defaults are a busy repository's morning, not a measurement."""

    jobs: int = 60
    #: Jobs that arrive together at the burst's start (a matrix), the rest spread out.
    burst: int = 8
    #: Mean gap between the other jobs (exponential), seconds.
    mean_gap_s: float = 30.0
    start_delay_s: float = 45.0
    assign_s: float = 2.0
    job_s: float = 120.0
    max_runners: int = 16
    reconcile_every_s: float = 300.0
    retry_every_s: float = 20.0
    seed: int = 7


@dataclass
class RunResult:
    warm_runners: int
    waits_s: list[float] = field(default_factory=list)
    tasks_started: int = 0
    max_running: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "warm_runners": self.warm_runners,
            "jobs_started": len(self.waits_s),
            "queued_to_started_p50_s": round(percentile(self.waits_s, 50), 1),
            "queued_to_started_p90_s": round(percentile(self.waits_s, 90), 1),
            "queued_to_started_max_s": round(max(self.waits_s, default=0.0), 1),
            "tasks_started": self.tasks_started,
            "max_running_tasks": self.max_running,
            "violations": list(self.violations),
        }


@dataclass
class _Runner:
    task_arn: str
    name: str
    online_at: float
    job: int | None = None


class _Simulation:
    """One run: events on a heap, product code called at each event's virtual time."""

    def __init__(self, scenario: Scenario, warm_runners: int, github: FakeGitHubAdapter) -> None:
        self.scenario = scenario
        self.github = github
        self.result = RunResult(warm_runners)
        self.now = 0.0
        self.events: list[tuple[float, int, str, Any]] = []
        self.order = itertools.count()
        self.queued: dict[int, float] = {}  # job -> queued at
        self.runners: dict[str, _Runner] = {}  # task arn -> runner
        self.started: set[int] = set()
        self.deliveries = itertools.count(1)

    # -- the clock -------------------------------------------------------------------------

    def at(self, when: float, kind: str, item: Any = None) -> None:
        heapq.heappush(self.events, (when, next(self.order), kind, item))

    def run(self, cluster: str, retry_queue_url: str) -> RunResult:
        self.cluster, self.retry_queue_url = cluster, retry_queue_url
        rng = random.Random(self.scenario.seed)  # noqa: S311 - a reproducible workload
        start = self.scenario.start_delay_s + 60  # the pool (if any) is online by then
        arrival = start
        for index in range(self.scenario.jobs):
            if index >= self.scenario.burst:
                arrival += rng.expovariate(1 / self.scenario.mean_gap_s)
            self.at(arrival, "queued", FIRST_JOB + index)
        tick = 0.0
        horizon = arrival + 3600
        while tick < horizon:
            self.at(tick, "reconcile")
            tick += self.scenario.reconcile_every_s
        tick = 0.0
        while tick < horizon:
            self.at(tick, "retry")
            tick += self.scenario.retry_every_s
        while self.events and len(self.started) < self.scenario.jobs:
            self.now, _, kind, item = heapq.heappop(self.events)
            getattr(self, f"_on_{kind}")(item)
            # One look at ECS per event: assigning jobs changes only GitHub's state.
            running = self._tasks("RUNNING")
            self._discover_tasks(running)
            self._assign({t["taskArn"] for t in running})
            self._check(running)
        missing = self.scenario.jobs - len(self.started)
        if missing:
            self.result.violations.append(f"{missing} jobs never started")
        return self.result

    # -- events ----------------------------------------------------------------------------

    def _on_queued(self, job_id: int) -> None:
        self.queued[job_id] = self.now
        self._deliver(queued_payload(job_id))

    def _on_online(self, task_arn: str) -> None:
        runner = self.runners.get(task_arn)
        registration = self._registration(runner.name) if runner else None
        if registration is not None:
            registration["status"] = "online"

    def _on_finish(self, task_arn: str) -> None:
        from lambda_fn import aws

        runner = self.runners.pop(task_arn)
        model = self.github.model
        for runner_id, registration in list(model.runners.items()):
            if registration["name"] == runner.name:
                del model.runners[runner_id]  # an ephemeral runner deregisters after its job
        assert runner.job is not None
        model.job_status[runner.job] = "completed"
        aws.client("ecs").stop_task(cluster=self.cluster, task=task_arn, reason="runner exited")
        payload = queued_payload(runner.job)
        payload["action"] = "completed"
        payload["workflow_job"].update(status="completed", conclusion="success")
        payload["workflow_job"]["runner_name"] = runner.name
        self._deliver(payload)

    def _on_reconcile(self, _: Any) -> None:
        from lambda_fn.config import get_settings
        from lambda_fn.reconciler import reconcile

        reconcile(get_settings(), T0 + timedelta(seconds=self.now))

    def _on_retry(self, _: Any) -> None:
        from lambda_fn import aws
        from lambda_fn.retry import handler
        from localdev.sqs_source import deliver_batch

        # One batch per poll: a job still waiting on max_runners goes back on the queue.
        deliver_batch(aws.client("sqs"), self.retry_queue_url, handler, LambdaContext())

    # -- GitHub's side ---------------------------------------------------------------------

    def _deliver(self, payload: dict[str, Any]) -> None:
        from lambda_fn.app import handler

        body = json.dumps(payload).encode()
        answer = handler(api_event(body, f"d-{next(self.deliveries)}"), LambdaContext())
        if answer["statusCode"] >= 300:
            self.result.violations.append(f"delivery answered {answer['statusCode']}")

    def _registration(self, name: str) -> dict[str, Any] | None:
        for registration in self.github.model.runners.values():
            if registration["name"] == name:
                return registration
        return None

    def _discover_tasks(self, running: list[dict[str, Any]]) -> None:
        """Tasks the product started since the last event: their runner comes online later."""
        for task in running:
            if task["taskArn"] not in self.runners:
                tags = {t["key"]: t["value"] for t in task.get("tags", [])}
                online = self.now + self.scenario.start_delay_s
                self.runners[task["taskArn"]] = _Runner(
                    task["taskArn"], tags[TAG_RUNNER_NAME], online
                )
                self.result.tasks_started += 1
                self.at(online, "online", task["taskArn"])

    def _assign(self, running: set[str]) -> None:
        """GitHub: the oldest queued job to an idle online runner, after ``assign_s``."""
        waiting = sorted((t, j) for j, t in self.queued.items() if j not in self.started)
        for runner in sorted(self.runners.values(), key=lambda r: r.online_at):
            if not waiting:
                return
            registration = self._registration(runner.name)
            if (
                runner.job is not None
                or runner.online_at > self.now
                or registration is None
                or runner.task_arn not in running
            ):
                continue
            queued_at, job_id = waiting.pop(0)
            runner.job = job_id
            registration["busy"] = True
            self.github.model.job_status[job_id] = "in_progress"
            self.started.add(job_id)
            started = self.now + self.scenario.assign_s
            self.result.waits_s.append(started - queued_at)
            self.at(started + self.scenario.job_s, "finish", runner.task_arn)

    def _check(self, running: list[dict[str, Any]]) -> None:
        self.result.max_running = max(self.result.max_running, len(running))
        if len(running) > self.scenario.max_runners:
            self.result.violations.append(
                f"{len(running)} tasks running at t={self.now:.0f} s, above max_runners"
            )
        alive = {t["taskArn"] for t in running}
        for runner in self.runners.values():
            if runner.job is not None and runner.task_arn not in alive:
                self.result.violations.append(f"job {runner.job}'s runner was stopped under it")
                runner.job = None

    def _tasks(self, status: str) -> list[dict[str, Any]]:
        from lambda_fn import aws

        ecs = aws.client("ecs")
        arns = ecs.list_tasks(cluster=self.cluster, desiredStatus=status)["taskArns"]
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            tasks += ecs.describe_tasks(
                cluster=self.cluster, tasks=arns[start : start + 100], include=["TAGS"]
            )["tasks"]
        return tasks


def _run_once(scenario: Scenario, warm_runners: int) -> RunResult:
    from moto import mock_aws
    from moto.moto_api import state_manager

    from localdev.provision import provision

    profile: dict[str, Any] = {
        "name": PROFILE,
        "labels": ["self-hosted", "linux", "arm64", "fargate"],
        "max_runners": scenario.max_runners,
    }
    if warm_runners:
        profile |= {"warm_runners": warm_runners, "warm_scope": f"{OWNER}/{REPO}"}
    context = {
        "stack_name": "bench",
        "profiles": [profile],
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0"],
        "assign_public_ip": False,
    }
    github = FakeGitHubAdapter()
    with mock_aws(), environment(BASE_ENV, unset=("AWS_ENDPOINT_URL",)):
        # A runner's task stays RUNNING until it exits or is stopped (moto would move it on).
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        stack = provision(
            None, context, REGION, github_api_url=GITHUB_API, webhook_secret=WEBHOOK_SECRET, pat=PAT
        )
        env = {k: v for k, v in stack.env.items() if not k.startswith("AWS_")}
        try:
            with environment(env), quiet_lambda_output():
                reset_caches()
                from lambda_fn import retry, retry_queue
                from lambda_fn.github import shared_session

                shared_session().mount(GITHUB_API + "/", github)
                # Virtual time: SQS delays would be real seconds in moto; the clock polls the
                # queue every ``retry_every_s`` instead.
                saved = retry.WAIT_DELAY_SECONDS, retry_queue.backoff_seconds
                retry.WAIT_DELAY_SECONDS = 0
                retry_queue.backoff_seconds = lambda attempt, base: 0
                try:
                    simulation = _Simulation(scenario, warm_runners, github)
                    return simulation.run(stack.cluster, stack.retry_queue_url)
                finally:
                    retry.WAIT_DELAY_SECONDS, retry_queue.backoff_seconds = saved
        finally:
            state_manager.unset_transition("ecs::task")
            reset_caches()


def run(scenario: Scenario | None = None, warm_runners: int = 4) -> dict[str, Any]:
    """The same burst without and with a pool of ``warm_runners``."""
    scenario = scenario or Scenario()
    cold, warm = _run_once(scenario, 0), _run_once(scenario, warm_runners)
    return {
        "scenario": {k: getattr(scenario, k) for k in scenario.__dataclass_fields__},
        "without_pool": cold.summary(),
        "with_pool": warm.summary(),
        "labels": list(MATCHING_LABELS),
    }
