"""The benchmarks at their smallest sizes: correctness only, never timing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import ab, coldstart, package, report, warm
from bench.__main__ import main
from bench._coldchild import SHARED_LOADER_ENV


@pytest.fixture(scope="module", autouse=True)
def quick_cold_children() -> Iterator[None]:
    """The cold-start children's fakes parse botocore's data once (2.3 of 5.7 CPU seconds;
    it moves their figures, which these tests never look at: ``bench._coldchild``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SHARED_LOADER_ENV, "1")
        yield


def test_warm_launches_once_per_job_and_never_for_ignored_or_duplicates() -> None:
    result = warm.run(per_round=4, rounds=2, warmup=2)
    launched = 2 + 4 * 2  # warm-up + measured
    assert result.jit_configs_issued == launched
    assert result.aws_calls["RunTask"] == launched
    assert result.aws_calls["UpdateItem"] == launched  # idempotency record completed
    # every delivery (new, ignored label set aside) tried to claim its job exactly once
    assert result.aws_calls["PutItem"] == launched * 2
    summary = result.summary()
    assert set(summary["scenarios"]) == {"launched", "ignored", "duplicate"}
    assert all(item["deliveries"] == 8 for item in summary["scenarios"].values())


def test_burst_starts_exactly_one_task_per_job() -> None:
    burst = pytest.importorskip("bench.burst")
    result = burst.run(jobs=6, clients=4)
    assert result.tasks_started == 6
    assert result.jit_configs_issued == 6
    assert result.lost_jobs == 0
    assert result.duplicate_launches == 0
    assert not result.http_errors
    assert sum(result.statuses.values()) == 12
    assert result.correct


def test_cold_child_traced_launches_two_jobs() -> None:
    """The untraced child (``first``) is checked the same way in the A/B test below: it is
    the child ``bench.ab`` runs for this tree (one cold child is seconds)."""
    assert_cold_child_launched_two_jobs(*coldstart.run_child("first-traced", importtime=True))


def assert_cold_child_launched_two_jobs(child: dict[str, Any], stderr: str) -> None:
    xray = child["mode"] == "first-traced"
    assert child["statuses"] == ["launched", "launched"]
    assert child["tasks_started"] == 2
    assert child["jit_configs_issued"] == 2
    lines = coldstart.parse_importtime(stderr, after_marker=True)
    assert any(line.module == "lambda_fn.app" for line in lines)
    assert not any(line.module == "moto" for line in lines)  # the fakes load before the marker
    # The X-Ray SDK is imported only when remote calls are traced; pydantic never.
    assert any(line.module == "aws_xray_sdk.core" for line in lines) is xray
    assert not any(line.module.startswith("pydantic") for line in lines)


def test_parse_importtime() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 | early",
            coldstart.MARKER,
            "import time:       200 |        200 |   pkg.child",
            "import time:        50 |        250 | pkg",
        ]
    )
    lines = coldstart.parse_importtime(stderr, after_marker=True)
    assert [(line.module, line.depth) for line in lines] == [("pkg.child", 1), ("pkg", 0)]
    assert coldstart.by_package(lines) == [{"package": "pkg", "self_ms": 0.25, "modules": 2}]


def test_asset_is_measured_from_cached_dependencies(tmp_path: Path) -> None:
    deps = tmp_path / package.requirements_key()
    (deps / "pydantic").mkdir(parents=True)
    (deps / "pydantic" / "__init__.py").write_text("x = 1\n" * 1000)
    (deps / "pydantic-2.0.dist-info").mkdir()
    (deps / "pydantic-2.0.dist-info" / "METADATA").write_text("Name: pydantic\n")
    (deps / "typing_extensions.py").write_text("y = 2\n")
    (deps / ".bench-meta.json").write_text(
        json.dumps({"python_version": "3.14", "platform": "manylinux2014_aarch64"})
    )
    size = package.measure(cache=tmp_path, zip_path=tmp_path / "asset.zip")
    assert size.cached
    assert set(size.unzipped) == {"lambda_fn", "pydantic", "typing_extensions"}
    summary = size.summary()
    layer = summary["with_powertools_layer"]
    assert layer["unzipped_bytes"] == size.unzipped["lambda_fn"]
    assert (tmp_path / "asset.zip").stat().st_size == summary["zip_file_bytes"]


def test_distribution_names() -> None:
    assert package.distribution("pydantic_core-2.50.4.dist-info") == "pydantic_core"
    assert package.distribution("aws_xray_sdk") == "aws_xray_sdk"
    assert package.distribution("typing_extensions.py") == "typing_extensions"


def test_main_writes_json_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main's part is the plumbing (sizes, JSON, report, verdict); the warm benchmark's own
    # correctness is test_warm_...'s, at these sizes (the smoke sizes are make bench-smoke's).
    tiny = dataclasses.replace(bench_main.SMOKE, warm_per_round=4, warm_rounds=2, warm_warmup=2)
    monkeypatch.setattr(bench_main, "SMOKE", tiny)
    out = tmp_path / "report.json"
    assert main(["--smoke", "--only", "warm", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["parts"]["warm"]["scenarios"]["launched"]["deliveries"] > 0
    assert "2. Warm handler overhead" in capsys.readouterr().out
    assert report.all_correct(data)


def test_ab_runs_a_baseline_tree_and_this_one() -> None:
    tree = ab.baseline_tree("HEAD")
    assert (tree / "lambda_fn" / "app.py").is_file()
    children: dict[Path, tuple[dict[str, Any], str]] = {}

    def child(mode: str, *, root: Path) -> tuple[dict[str, Any], str]:
        importtime = root == coldstart.ROOT  # for the import checks below
        children[root] = coldstart.run_child(mode, importtime=importtime, root=root)
        return children[root]

    seconds = ab.compare("HEAD", runs=1, child=child)
    assert set(seconds) == {"HEAD", "this tree"}
    assert all(len(values) == 1 and values[0] > 0 for values in seconds.values())
    assert set(children) == {tree, coldstart.ROOT}  # each tree ran its own child
    # This tree's child is the untraced cold child (first delivery as deployed).
    assert children[coldstart.ROOT][0]["mode"] == "first"
    assert_cold_child_launched_two_jobs(*children[coldstart.ROOT])


def test_start_latency_burst_holds_its_invariants_with_and_without_a_pool() -> None:
    from bench import start_latency

    # The retry queue polled every 60 s, not 20: fewer "still no capacity" re-checks of the
    # jobs waiting on max_runners (7 instead of 21 here); every retry outcome of the 20 s
    # run still happens (waiting, launched from the queue, dropped once GitHub assigned the
    # job to a pool runner), and the invariants are checked at every event either way.
    scenario = start_latency.Scenario(jobs=10, burst=4, max_runners=6, retry_every_s=60)
    result = start_latency.run(scenario, warm_runners=3)
    cold, warm_pool = result["without_pool"], result["with_pool"]
    for run in (cold, warm_pool):
        assert run["violations"] == []
        assert run["jobs_started"] == 10
        assert run["max_running_tasks"] <= 6  # the pool counts under max_runners
    # Without a pool no job can start before its own task has: the ECS delay is the floor.
    assert cold["queued_to_started_p50_s"] >= scenario.start_delay_s
    assert cold["tasks_started"] == 10  # one launch per job
    # With a pool the first jobs find a runner online: only GitHub's assignment remains.
    assert warm_pool["queued_to_started_p50_s"] < scenario.start_delay_s
    assert warm_pool["tasks_started"] > cold["tasks_started"]  # the pool itself


def test_scale_counts_calls_per_job_and_keeps_the_reconciler_flat() -> None:
    from bench import scale

    result = scale.run((1000,), 1, (3, 12))
    (load,) = result["loads"]
    assert load["jobs"] == 16
    assert load["lost_jobs"] == 0
    assert load["jobs_with_two_runners"] == 0
    assert load["github_calls_per_job_total"] <= 2  # the JIT config, and the reconciler's share
    assert load["pat_sustains_jobs_per_hour"] >= 2500
    small, large = result["reconciler"]
    assert small["job_lookups"] == large["job_lookups"] == 0
    assert small["github_calls"] == large["github_calls"]
    assert result["correct"]
