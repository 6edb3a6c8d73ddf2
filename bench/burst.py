"""Burst: shuffled duplicate deliveries through the local HTTP endpoint and a moto server.

``jobs`` distinct queued jobs, each delivered twice (the second time as
GitHub's "Redeliver": same body, signature and delivery GUID), shuffled, and
POSTed by ``clients`` concurrent HTTP clients to the real handler behind
``localdev.endpoint.WebhookServer``, with AWS in a moto server
(``localdev.moto_server``) and GitHub in ``localdev.github_stub``.

The endpoint runs invocations concurrently (``concurrent=True``) so two
deliveries of one job really race on the idempotency record, as two Lambda
execution environments would. The proof: tasks in moto (``list_tasks``) ==
JIT configs issued by the stand-in == ``jobs``, every job has exactly one
task (grouped by the ``github:job-id`` tag), no delivery failed.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.fixtures import MATCHING_LABELS
from bench.stats import percentile
from lambda_fn.contract import TAG_GITHUB_JOB_ID

FIRST_JOB_ID = 5_000_000
#: One delivery before the clock starts, so the burst measures warm handling
#: (client creation, model loading) rather than the first invocation's one-off cost.
WARMUP_JOB_ID = FIRST_JOB_ID - 1


@dataclass
class BurstResult:
    jobs: int
    deliveries: int
    clients: int
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    http_errors: list[str] = field(default_factory=list)
    tasks_started: int = 0
    tasks_total_with_warmup: int = 0
    jit_configs_total_with_warmup: int = 0
    tasks_per_job: Counter[str] = field(default_factory=Counter)
    jit_configs_issued: int = 0
    uses_localdev: bool = True

    @property
    def lost_jobs(self) -> int:
        expected = {str(FIRST_JOB_ID + index) for index in range(self.jobs)}
        return len(expected - set(self.tasks_per_job))

    @property
    def duplicate_launches(self) -> int:
        return sum(count - 1 for count in self.tasks_per_job.values() if count > 1)

    @property
    def correct(self) -> bool:
        return (
            self.tasks_started == self.jobs
            and self.jit_configs_issued == self.jobs
            and self.lost_jobs == 0
            and self.duplicate_launches == 0
            and not self.http_errors
        )

    def summary(self) -> dict[str, Any]:
        latencies = self.latencies_s or [0.0]
        return {
            "status": "ok",
            "harness": "localdev (moto server + GitHub stand-in + WebhookServer)",
            "jobs": self.jobs,
            "deliveries": self.deliveries,
            "clients": self.clients,
            "wall_s": round(self.wall_s, 3),
            "throughput_per_s": round(self.deliveries / self.wall_s, 1) if self.wall_s else 0.0,
            "latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "latency_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "latency_max_ms": round(max(latencies) * 1000, 2),
            "answers": dict(sorted(self.statuses.items())),
            "http_errors": self.http_errors[:5],
            "tasks_started": self.tasks_started,
            "jit_configs_issued": self.jit_configs_issued,
            "tasks_total_with_warmup": self.tasks_total_with_warmup,
            "jit_configs_total_with_warmup": self.jit_configs_total_with_warmup,
            "distinct_jobs_with_task": len(self.tasks_per_job),
            "lost_jobs": self.lost_jobs,
            "duplicate_launches": self.duplicate_launches,
            "correct": self.correct,
        }


def run(  # noqa: PLR0915 - one linear script: start, send, collect the proof
    jobs: int = 250, clients: int = 8, seed: int = 1234
) -> BurstResult:
    """Send ``2 * jobs`` deliveries with ``clients`` concurrent clients; collect the proof."""
    from localdev import deliveries as localdev_deliveries
    from localdev.provision import read_cdk_context
    from localdev.runtime import local_runtime

    context = read_cdk_context()
    result = BurstResult(jobs=jobs, deliveries=2 * jobs, clients=clients)
    with (
        warnings.catch_warnings(),
        local_runtime(context, capture_output=True, concurrent=True) as runtime,
    ):
        # Concurrent invocations share Powertools' process-wide metrics, so one may
        # flush another's; the resulting "no metrics" warning is noise here.
        warnings.filterwarnings("ignore", "No application metrics", UserWarning)
        secret = runtime.webhook_secret
        originals = [
            localdev_deliveries.build(
                localdev_deliveries.workflow_job_payload(FIRST_JOB_ID + index, MATCHING_LABELS),
                secret,
            )
            for index in range(jobs)
        ]
        batch = originals + [localdev_deliveries.redelivery(d) for d in originals]
        random.Random(seed).shuffle(batch)  # noqa: S311 (not crypto)
        url = runtime.webhook_url
        warmup = localdev_deliveries.build(
            localdev_deliveries.workflow_job_payload(WARMUP_JOB_ID, MATCHING_LABELS), secret
        )
        warmup.send(url, timeout=60).raise_for_status()
        local = threading.local()
        lock = threading.Lock()

        def send(delivery: Any) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            started = time.perf_counter()
            try:
                response = delivery.send(url, session=session, timeout=60)
            except requests.RequestException as exc:
                with lock:
                    result.http_errors.append(f"{type(exc).__name__}: {exc}")
                return
            elapsed = time.perf_counter() - started
            try:
                status = str(response.json().get("status") or response.status_code)
            except ValueError:
                status = str(response.status_code)
            with lock:
                result.latencies_s.append(elapsed)
                result.statuses[f"{response.status_code} {status}"] += 1
                if response.status_code >= 300 and response.status_code != 202:
                    result.http_errors.append(f"{response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="burst") as pool:
            list(pool.map(send, batch))
        result.wall_s = time.perf_counter() - started

        tasks = runtime.stack.tasks()
        result.tasks_total_with_warmup = len(tasks)
        for task in tasks:
            tags = {tag["key"]: tag["value"] for tag in task.get("tags", [])}
            job = tags.get(TAG_GITHUB_JOB_ID, "?")
            if job != str(WARMUP_JOB_ID):
                result.tasks_per_job[job] += 1
        result.tasks_started = sum(result.tasks_per_job.values())
        jit_names = [
            str(request.body.get("name", ""))
            for request in runtime.github.calls("POST", "generate-jitconfig")
            if isinstance(request.body, dict)
        ]
        result.jit_configs_total_with_warmup = len(runtime.github.issued_configs)
        result.jit_configs_issued = result.jit_configs_total_with_warmup - sum(
            1 for name in jit_names if f"-{WARMUP_JOB_ID}-" in name
        )
    return result
