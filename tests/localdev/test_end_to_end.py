"""The real handler behind the local endpoint, against moto and the GitHub stand-in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from lambda_fn import contract
from localdev import deliveries, demo
from localdev.runtime import LocalRuntime, local_runtime

CONTEXT: dict[str, Any] = {
    "stack_name": "E2E",
    "profiles": [{"name": "default", "labels": ["self-hosted", "linux", "arm64"]}],
}
LABELS = ["self-hosted", "linux", "arm64"]


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with local_runtime(CONTEXT) as running:
        yield running


#: More jobs than the 8 sending threads, so threads send again while others wait.
BURST = 12


def test_burst_of_distinct_jobs_starts_one_task_each(runtime: LocalRuntime) -> None:
    burst = deliveries.queued_burst(runtime.webhook_secret, LABELS, BURST, first_job_id=5000)
    with requests.Session() as session, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda d: d.send(runtime.webhook_url, session=session), burst))
    assert [a.status_code for a in answers] == [200] * BURST
    assert {a.json()["status"] for a in answers} == {"launched"}
    tasks = runtime.stack.tasks()
    job_ids = [
        {t["key"]: t["value"] for t in task["tags"]}[contract.TAG_GITHUB_JOB_ID] for task in tasks
    ]
    assert sorted(job_ids) == sorted(str(5000 + i) for i in range(BURST))
    assert len(runtime.github.calls("POST", "generate-jitconfig")) == BURST


def test_same_job_from_many_threads_starts_one_task(runtime: LocalRuntime) -> None:
    delivery = deliveries.build(
        deliveries.workflow_job_payload(7777, LABELS), runtime.webhook_secret
    )
    before = len(runtime.stack.tasks())
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: delivery.send(runtime.webhook_url), range(6)))
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses.count("launched") == 1
    assert set(statuses) <= {"launched", "duplicate", "in_progress"}
    assert len(runtime.stack.tasks()) == before + 1


def test_handler_output_is_captured_as_emf(runtime: LocalRuntime) -> None:
    records = runtime.endpoint.emf_records()
    launched = [r for r in records if "RunnersLaunched" in r]
    assert launched
    dimensions = launched[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert dimensions == [["profile", "service"]]


def test_demo_passes(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    assert demo.run(demo.read_cdk_context(), out=lines.append) == 0
    text = "\n".join(lines)
    assert "5 deliveries, 1 tasks started, 1 JIT configs issued, 0 duplicates" in text
    # The override names the secret; the config itself is in no task and no table cell.
    assert "RUNNER_JIT_SECRET_ID=" in text and "/jit/" in text
    assert "ACTIONS_RUNNER_INPUT_JITCONFIG" not in text
    assert "same-profile task/…/01234567…: AccessDeniedException" in text
    assert "jit_config.py wrote .credentials, .credentials_rsaparams, .runner (0600)" in text
    assert "a second read, by anyone, fails" in text
    assert text.count("launched") == 1 and "duplicate" in text
    assert "all outcomes as expected" in text


def test_demo_fails_naming_the_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_plan = demo.plan

    def wrong_expectation(secret: str, labels: Any, job_id: int = 4242) -> list[demo.Row]:
        rows = real_plan(secret, labels, job_id)
        rows[3].expect = demo.Expectation("accept", 200)
        return rows

    monkeypatch.setattr(demo, "plan", wrong_expectation)
    # Playing the task (two jit_config.py processes) is test_demo_passes's; failing here,
    # after it, is only about naming the step and the row.
    monkeypatch.setattr(demo, "play_task", lambda started, task_arn, tasks: [])
    assert demo.main([]) == 1
    err = capsys.readouterr().err
    assert "demo FAILED at step 'check outcomes'" in err
    assert "#4 queued, bad signature: HTTP 401, expected 200" in err


def test_demo_reports_a_bad_cdk_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--cdk-json", str(tmp_path / "missing.json")]) == 1
    assert "step 'read cdk.json'" in capsys.readouterr().err


def test_serve_local_mode_accepts_deliveries() -> None:
    from runners_cli.serve import serve_local

    stop = threading.Event()
    ready: dict[str, str] = {}
    lines: list[str] = []

    def on_ready(url: str, secret: str) -> None:
        ready.update(url=url, secret=secret)
        delivery = deliveries.build(
            deliveries.workflow_job_payload(31337, ["self-hosted", "linux", "arm64", "fargate"]),
            secret,
        )
        ready["status"] = delivery.send(url).json()["status"]
        stop.set()

    code = serve_local(
        cdk_json=None,
        port=0,
        secret="relay-secret",
        region="us-east-1",
        stop=stop,
        out=lines.append,
        on_ready=on_ready,
    )
    assert code == 0
    assert ready["secret"] == "relay-secret" and ready["status"] == "launched"
    assert any(line.startswith("webhook secret:   relay-secret") for line in lines)
    assert any("gh webhook forward" in line for line in lines)
    assert any('"launched"' in line for line in lines)  # the per-delivery log line
