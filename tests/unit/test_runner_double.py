"""The runner double behaves like the real runner where our safety depends on it.

Each test pins one fact from docs/runner.md (actions/runner v2.332.0). Several show
the defects the entrypoint and hook had to fix: a double that did not model them
would let those defects pass again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localdev.runner_double import RunnerDouble, configured_files, install, jit_config
from localdev.runner_double.processes import SHUTDOWN_ISSUE, evaluate, session_members

BASH = shutil.which("bash") or "/bin/bash"
GITHUB = {"repository": "octo/app", "ref": "refs/heads/main", "event_name": "push"}


def wait_for(predicate: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@dataclass
class Runner:
    double: RunnerDouble
    markers: Path
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None

    def start(self, shell: str = 'exec env --default-signal=INT "$0"') -> None:
        """Start run.sh through ``bash -c <shell>`` ($0 is run.sh)."""
        self.process = subprocess.Popen(
            [BASH, "-c", shell, str(self.double.root / "run.sh")],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        wait_for(lambda: self.double.said("session created"))

    def run_job(self, job: dict[str, Any]) -> dict[str, str]:
        self.double.offer({"name": "job", "github": GITHUB, **job})
        assert self.process is not None
        self.process.wait(timeout=30)
        result = self.double.result()
        assert result is not None
        return result

    def step(self, name: str, script: str = "", **extra: Any) -> dict[str, Any]:
        return {"name": name, "run": f"touch {self.markers / name}\n{script}", **extra}

    def ran(self) -> set[str]:
        return {path.name for path in self.markers.iterdir()}

    def hook(self, script: str) -> None:
        path = self.double.root / "hook.sh"
        path.write_text(script)
        self.env["ACTIONS_RUNNER_HOOK_JOB_STARTED"] = str(path)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "RUNNER_MANUALLY_TRAP_SIG": "1",
        # The Worker's cancel timeouts (SIGINT 7.5 s, SIGTERM 2.5 s) in 0.15 s and 0.05 s.
        "RUNNER_DOUBLE_TIME_SCALE": "0.02",
        "ACTIONS_RUNNER_INPUT_JITCONFIG": jit_config(),
    }
    runner = Runner(install(tmp_path / "runner"), markers, env)
    yield runner
    if runner.process is not None:
        # run.sh's `set -m` puts run-helper.sh and the Listener in process groups of their
        # own, so kill the whole session (the bash started with start_new_session leads it).
        for pid in session_members(runner.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if runner.process.poll() is None:
            runner.process.wait()


def test_run_sh_started_with_amp_never_stops_the_listener(runner: Runner) -> None:
    """`run.sh &` from a script: SIGINT ignored, run.sh's trap cannot reach the Listener."""
    runner.start('"$0" & pid=$!; trap "kill -TERM $pid" TERM; wait $pid; wait $pid')
    assert runner.double.said("SIGINT ignored at start: stays ignored")
    assert runner.process is not None
    runner.process.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        runner.process.wait(timeout=2)
    assert not runner.double.said("runner shutdown")


def test_default_sigint_lets_run_sh_stop_the_listener(runner: Runner) -> None:
    runner.start()
    assert runner.process is not None
    runner.process.send_signal(signal.SIGTERM)  # run.sh: kill -INT -<run-helper's group>
    assert runner.process.wait(timeout=60) == 143
    assert runner.double.said("SIGINT: runner shutdown")
    assert runner.double.said("session deleted")


def test_a_failing_hook_does_not_stop_the_job(runner: Runner) -> None:
    """What made restricted runners unrestricted: exit 1 only fails the hook's step."""
    runner.hook("echo '::error::refused'\nexit 1\n")
    runner.start()
    result = runner.run_job(
        {
            "steps": [
                runner.step("success"),
                runner.step("always", **{"if": "always()"}),
                runner.step("failure", **{"if": "failure()"}),
                runner.step("not-cancelled", **{"if": "!cancelled()"}),
                {**runner.step("action"), "pre": f"touch {runner.markers}/pre"},
                {**runner.step("b", **{"if": "always()"}), "post": f"touch {runner.markers}/post"},
            ]
        }
    )
    assert result["result"] == "Failed"
    assert runner.ran() == {"always", "failure", "not-cancelled", "pre", "b", "post"}


def test_required_job_container_fails_in_set_up_job(runner: Runner) -> None:
    runner.hook(f"touch {runner.markers}/hook\n")
    runner.env["ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"] = "true"
    runner.start()
    result = runner.run_job({"steps": [runner.step("s", **{"if": "always()"})]})
    assert result["result"] == "Failed"
    assert runner.ran() == set()
    assert "Jobs without a job container are forbidden" in runner.double.job_log()


def test_hook_sees_run_context_but_not_job_env(runner: Runner) -> None:
    runner.hook(f'echo "$GITHUB_REPOSITORY ${{JOB_SECRET:-unset}}" > {runner.markers}/hook-env\n')
    runner.start()
    step = runner.step("s", f'echo "${{JOB_SECRET:-unset}}" > {runner.markers}/step-env')
    runner.run_job({"env": {"JOB_SECRET": "from-job"}, "steps": [step]})
    assert (runner.markers / "hook-env").read_text() == "octo/app unset\n"
    assert (runner.markers / "step-env").read_text() == "from-job\n"


def test_jit_config_becomes_files_and_is_not_passed_on(runner: Runner) -> None:
    step = runner.step(
        "s", f'echo "${{ACTIONS_RUNNER_INPUT_JITCONFIG:-none}}" > {runner.markers}/e'
    )
    runner.start()
    for name, content in configured_files().items():
        assert (runner.double.root / name).read_bytes() == content
    runner.run_job({"steps": [step]})
    assert (runner.markers / "e").read_text() == "none\n"
    assert not (runner.double.root / ".runner").exists()  # ephemeral: removed after its job


def test_without_config_the_listener_exits(runner: Runner) -> None:
    del runner.env["ACTIONS_RUNNER_INPUT_JITCONFIG"]
    process = subprocess.run(
        [str(runner.double.root / "run.sh")],
        env=runner.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 0  # run-helper.sh maps the Listener's 1 to 0
    assert "Not configured" in process.stdout


def test_worker_crash_fails_the_job(runner: Runner) -> None:
    runner.start()
    step = runner.step("s", "kill -KILL $PPID; sleep 5")  # the step's parent is the Worker
    result = runner.run_job({"steps": [step]})
    assert result["result"] == "Failed"
    assert result["detail"] == "worker crashed with exit code -9"


def test_user_cancel_keeps_always_steps(runner: Runner) -> None:
    runner.start()
    steps = [
        runner.step("running-always", "sleep 1", **{"if": "always()"}),
        runner.step("success"),
        runner.step("on-cancel", **{"if": "cancelled()"}),
    ]
    runner.double.offer({"name": "job", "github": GITHUB, "steps": steps})
    wait_for((runner.markers / "running-always").exists)
    runner.double.cancel()
    assert runner.process is not None
    runner.process.wait(timeout=30)
    assert runner.double.result() == {"job": "job", "result": "Canceled", "detail": ""}
    assert runner.double.said("step 'running-always' success")  # not cut short
    assert runner.ran() == {"running-always", "on-cancel"}


def test_runner_shutdown_fails_the_job_and_skips_every_later_step(runner: Runner) -> None:
    """Unlike a user cancel: no condition is evaluated, and the job ends Failed, not
    Canceled (StepsRunner.cs, JobRunner.cs), with the shutdown error in its log."""
    runner.start()
    steps = [
        # Survives run.sh's SIGINT to the group (as the refused hook does), so the
        # Worker surely hears the shutdown while it runs; the marker says it is ignoring.
        {
            "name": "running",
            "run": f"trap '' INT\ntouch {runner.markers / 'running'}\nexec sleep 30",
        },
        runner.step("always", **{"if": "always()"}),
        runner.step("on-cancel", **{"if": "cancelled()"}),
    ]
    runner.double.offer({"name": "job", "github": GITHUB, "steps": steps})
    wait_for((runner.markers / "running").exists)
    assert runner.process is not None
    runner.process.send_signal(signal.SIGTERM)  # run.sh -> SIGINT -> RunnerShutdown
    runner.process.wait(timeout=30)
    assert runner.double.result() == {"job": "job", "result": "Failed", "detail": ""}
    assert f"##[error]{SHUTDOWN_ISSUE}" in runner.double.job_log()
    assert runner.double.said("step 'always' skipped (runner shutdown)")
    assert runner.ran() == {"running"}


@pytest.mark.parametrize(
    ("condition", "status", "expected"),
    [
        ("", "success", True),
        ("", "failure", False),
        ("always()", "cancelled", True),
        ("failure()", "failure", True),
        ("${{ !cancelled() }}", "failure", True),
        ("!cancelled()", "cancelled", False),
        ("true", "failure", False),  # no status function: success() && (...)
        ("failure() || cancelled()", "cancelled", True),
    ],
)
def test_conditions(condition: str, status: str, expected: bool) -> None:
    assert evaluate(condition, status) is expected


def test_unsupported_condition_is_an_error() -> None:
    with pytest.raises(ValueError, match="unsupported condition term"):
        evaluate("github.ref == 'x'", "success")
