"""runner/entrypoint.sh run as the task runs it: bash -c "<contents>", with a fake run.sh."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdk.runner_files import encode
from lambda_fn.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "runner" / "entrypoint.sh"
BASH = shutil.which("bash") or "/bin/bash"
SHELLCHECK = shutil.which("shellcheck")
JIT = "eyJqaXQiOiJzZWNyZXQtY29uZmlnIn0="  # what a JIT config looks like: opaque base64

POLICY = Policy(
    profile="deploy",
    allowed_repositories=("octo/app",),
    allowed_refs=("refs/heads/main",),
    allowed_events=("push",),
    required_env=("DB_URL",),
)

FAKE_RUNNER = r"""#!/usr/bin/env bash
# Stand-in for /home/runner/run.sh: records what it was given, then behaves as told.
set -u
echo "$$" >"$FAKE_DIR/runner.pid"
env >"$FAKE_DIR/runner.env"
if [[ -n "${FAKE_IGNORE_TERM:-}" ]]; then trap '' TERM; fi
if [[ -n "${FAKE_EXIT_ON_TERM:-}" ]]; then trap 'exit "$FAKE_EXIT_ON_TERM"' TERM; fi
echo "$(date +%s.%N) ready" >"$FAKE_DIR/ready"
if [[ -n "${FAKE_TOUCH_MARKER:-}" ]]; then touch "$RUNNER_JOB_STARTED_MARKER"; fi
if [[ "${FAKE_SLEEP:-0}" != 0 ]]; then
  sleep "$FAKE_SLEEP" &
  wait "$!"
fi
exit "${FAKE_RC:-0}"
"""


@dataclass
class Task:
    tmp: Path
    home: Path
    fake_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hooks(self) -> Path:
        return self.home / "_hooks"

    def command(self) -> list[str]:
        return [BASH, "-c", ENTRYPOINT.read_text()]

    def run(self, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def runner_env(self) -> dict[str, str]:
        path = self.fake_dir / "runner.env"
        assert path.exists(), "the runner was not started"
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return dict(pairs)

    def runner_pid(self) -> int:
        return int((self.fake_dir / "runner.pid").read_text())

    def wait_for_runner(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.fake_dir / "ready").exists():
                return self.runner_pid()
            time.sleep(0.05)
        raise AssertionError("the fake runner never started")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def task(tmp_path: Path) -> Task:
    home = tmp_path / "home"
    home.mkdir()
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir()
    run_cmd = fake_dir / "run.sh"
    run_cmd.write_text(FAKE_RUNNER)
    run_cmd.chmod(0o755)
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "RUNNER_HOME": str(home),
        "RUNNER_RUN_CMD": str(run_cmd),
        "RUNNER_POLICY_JSON": POLICY.to_json(),
        "RUNNER_POLICY_PY_GZ_B64": encode(ROOT / "lambda_fn" / "policy.py"),
        "RUNNER_HOOK_PY_GZ_B64": encode(ROOT / "runner" / "job_started.py"),
        "RUNNER_IDLE_TIMEOUT_SECONDS": "0",
        "ACTIONS_RUNNER_INPUT_JITCONFIG": JIT,
        "DB_URL": "postgres://db.internal/app",
        "FAKE_DIR": str(fake_dir),
    }
    return Task(tmp_path, home, fake_dir, env)


def test_runner_gets_jit_config_and_hook_but_not_the_inputs(task: Task) -> None:
    result = task.run()
    assert result.returncode == 0, result.stderr
    env = task.runner_env()
    assert env["ACTIONS_RUNNER_INPUT_JITCONFIG"] == JIT
    for name in ("RUNNER_POLICY_JSON", "RUNNER_POLICY_PY_GZ_B64", "RUNNER_HOOK_PY_GZ_B64"):
        assert name not in env
    hook = Path(env["ACTIONS_RUNNER_HOOK_JOB_STARTED"])
    assert hook == task.hooks / "job-started.sh"
    assert hook.is_file()
    assert os.access(hook, os.R_OK | os.X_OK)
    assert env["RUNNER_POLICY_FILE"] == str(task.hooks / "policy.json")
    assert env["RUNNER_JOB_STARTED_MARKER"] == str(task.home / "_state" / "job-started")
    assert env["RUNNER_MANUALLY_TRAP_SIG"] == "1"
    assert Path(env["ACTIONS_RUNNER_CONTAINER_HOOKS"]).is_file()
    assert env["DB_URL"] == "postgres://db.internal/app"


def test_hook_files_are_read_only(task: Task) -> None:
    assert task.run().returncode == 0
    modes = {path.name: path.stat().st_mode & 0o777 for path in task.hooks.iterdir()}
    assert modes == {
        "policy.py": 0o444,
        "job_started.py": 0o444,
        "policy.json": 0o444,
        "job-started.sh": 0o555,
        "no-containers.sh": 0o555,
    }
    assert task.hooks.stat().st_mode & 0o777 == 0o555
    assert (task.hooks / "policy.py").read_bytes() == (
        ROOT / "lambda_fn" / "policy.py"
    ).read_bytes()


def test_jit_config_is_written_nowhere(task: Task) -> None:
    assert task.run().returncode == 0
    for path in task.home.rglob("*"):
        if path.is_file():
            assert JIT not in path.read_text(errors="replace"), path


def test_written_hook_runs_with_bash_and_enforces_the_policy(task: Task) -> None:
    assert task.run().returncode == 0
    runner_env = task.runner_env()
    event = task.tmp / "event.json"
    event.write_text("{}")
    job_env = {
        "PATH": task.env["PATH"],
        # A job-level `env:` trying to swap the policy has no effect: the wrapper passes paths.
        "RUNNER_POLICY_FILE": "/nonexistent.json",
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
    }
    hook = runner_env["ACTIONS_RUNNER_HOOK_JOB_STARTED"]
    marker = Path(runner_env["RUNNER_JOB_STARTED_MARKER"])
    assert not marker.exists()
    allowed = subprocess.run(
        [BASH, "-e", hook], env=job_env, capture_output=True, text=True, check=False
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert marker.exists()
    job_env["GITHUB_REF"] = "refs/heads/feature-x"
    refused = subprocess.run(
        [BASH, "-e", hook], env=job_env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert refused.stdout.startswith(
        "::error::Job refused by runner profile 'deploy': allowed_refs: ref refs/heads/feature-x"
    )


def test_container_hook_refuses_containers(task: Task) -> None:
    assert task.run().returncode == 0
    hook = task.runner_env()["ACTIONS_RUNNER_CONTAINER_HOOKS"]
    result = subprocess.run([BASH, "-e", hook], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("::error::This runner cannot run containers")


def test_image_container_hook_is_kept(task: Task) -> None:
    task.env["ACTIONS_RUNNER_CONTAINER_HOOKS"] = "/opt/hooks/index.js"
    assert task.run().returncode == 0
    assert task.runner_env()["ACTIONS_RUNNER_CONTAINER_HOOKS"] == "/opt/hooks/index.js"


def test_runner_exit_code_is_propagated(task: Task) -> None:
    task.env["FAKE_RC"] = "3"
    result = task.run()
    assert result.returncode == 3
    assert "runner exited with code 3" in result.stderr


def test_second_start_replaces_read_only_hooks(task: Task) -> None:
    assert task.run().returncode == 0
    task.env["RUNNER_POLICY_JSON"] = Policy(profile="other").to_json()
    assert task.run().returncode == 0
    assert '"profile":"other"' in (task.hooks / "policy.json").read_text()


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (["DB_URL"], "required environment variable(s) not set: DB_URL"),
        ([], "required environment variable(s) not set: DB_URL, API_KEY"),
    ],
)
def test_missing_required_env_stops_before_the_runner(
    task: Task, unset: list[str], message: str
) -> None:
    if not unset:
        task.env["DB_URL"] = ""
        task.env["RUNNER_POLICY_JSON"] = Policy(
            profile="deploy", required_env=("DB_URL", "API_KEY")
        ).to_json()
    for name in unset:
        del task.env[name]
    result = task.run()
    assert result.returncode == 78
    assert message in result.stderr
    assert not (task.fake_dir / "runner.env").exists()


@pytest.mark.parametrize("jit", ["", None])
def test_empty_jit_config_refuses_to_start(task: Task, jit: str | None) -> None:
    if jit is None:
        del task.env["ACTIONS_RUNNER_INPUT_JITCONFIG"]
    else:
        task.env["ACTIONS_RUNNER_INPUT_JITCONFIG"] = jit
    result = task.run()
    assert result.returncode == 78
    assert "ACTIONS_RUNNER_INPUT_JITCONFIG is empty" in result.stderr
    assert not (task.fake_dir / "runner.env").exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RUNNER_POLICY_JSON", None, "RUNNER_POLICY_JSON is not set"),
        ("RUNNER_HOOK_PY_GZ_B64", None, "RUNNER_HOOK_PY_GZ_B64 is not set"),
        (
            "RUNNER_POLICY_PY_GZ_B64",
            "not*base64",
            "RUNNER_POLICY_PY_GZ_B64 is not valid gzip+base64",
        ),
        (
            "RUNNER_POLICY_JSON",
            '{"profile": "deploy", "allowed_refs": ["main"]}',
            "invalid runner policy",
        ),
        (
            "RUNNER_IDLE_TIMEOUT_SECONDS",
            "10m",
            "RUNNER_IDLE_TIMEOUT_SECONDS must be a whole number",
        ),
    ],
)
def test_bad_task_configuration_exits_78(
    task: Task, name: str, value: str | None, message: str
) -> None:
    if value is None:
        del task.env[name]
    else:
        task.env[name] = value
    result = task.run()
    assert result.returncode == 78
    assert message in result.stderr
    assert not (task.fake_dir / "runner.env").exists()


def test_idle_runner_is_stopped(task: Task) -> None:
    task.env.update({"RUNNER_IDLE_TIMEOUT_SECONDS": "1", "FAKE_SLEEP": "30"})
    started = time.monotonic()
    result = task.run()
    assert time.monotonic() - started < 6
    assert result.returncode == 0
    assert "no job arrived within 1 s; stopping" in result.stderr
    assert not alive(task.runner_pid())


def test_runner_ignoring_sigterm_is_killed_after_the_grace(task: Task) -> None:
    task.env.update(
        {
            "RUNNER_IDLE_TIMEOUT_SECONDS": "1",
            "RUNNER_STOP_GRACE_SECONDS": "1",
            "FAKE_SLEEP": "30",
            "FAKE_IGNORE_TERM": "1",
        }
    )
    started = time.monotonic()
    result = task.run()
    assert time.monotonic() - started < 8
    assert result.returncode == 0
    assert "runner did not stop within 1 s; killing it" in result.stderr
    assert not alive(task.runner_pid())


def test_runner_with_a_job_is_not_stopped(task: Task) -> None:
    task.env.update(
        {
            "RUNNER_IDLE_TIMEOUT_SECONDS": "1",
            "FAKE_TOUCH_MARKER": "1",
            "FAKE_SLEEP": "2.5",
            "FAKE_RC": "0",
        }
    )
    result = task.run()
    assert result.returncode == 0
    assert "no job arrived" not in result.stderr
    assert "runner exited with code 0" in result.stderr


def test_sigterm_is_forwarded_to_the_runner(task: Task) -> None:
    task.env.update({"FAKE_SLEEP": "30", "FAKE_EXIT_ON_TERM": "42"})
    process = task.start()
    try:
        runner_pid = task.wait_for_runner()
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 42, stderr
    assert "received SIGTERM; stopping the runner" in stderr
    assert not alive(runner_pid)


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed")
def test_shellcheck_clean() -> None:
    result = subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--severity=style", str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
