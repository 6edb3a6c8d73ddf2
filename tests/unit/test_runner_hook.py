"""runner/job_started.py run as the runner would: a subprocess with a job's environment."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_fn.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "fargate_runners" / "runner" / "job_started.py"
POLICY_PY = ROOT / "lambda_fn" / "policy.py"

DEPLOY = Policy(
    profile="deploy",
    allowed_repositories=("octo/app",),
    allowed_refs=("refs/heads/main", "refs/tags/v*"),
    allowed_workflows=(".github/workflows/deploy.yml",),
    allowed_events=("push", "workflow_dispatch", "pull_request"),
    required_env=("DB_URL",),
)


@functools.cache
def python310() -> str | None:
    """A Python 3.10 interpreter (the runner image's), if this machine has one."""
    candidates = [
        shutil.which("python3.10"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))),
    ]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 10)":
            return candidate
    return None


@pytest.fixture(params=["current", "py310"])
def interpreter(request: pytest.FixtureRequest) -> str:
    if request.param == "current":
        return sys.executable
    found = python310()
    if found is None:
        pytest.skip("no python3.10 on this machine")
    return found


@dataclass
class Job:
    tmp: Path
    python: str
    hook: Path
    policy_file: Path
    event_file: Path
    state: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, str(self.hook), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture
def job(tmp_path: Path, interpreter: str) -> Job:
    hooks = tmp_path / "_hooks"
    hooks.mkdir()
    shutil.copy(HOOK, hooks / "job_started.py")
    shutil.copy(POLICY_PY, hooks / "policy.py")
    policy_file = hooks / "policy.json"
    policy_file.write_text(DEPLOY.to_json())
    event_file = tmp_path / "event.json"
    event_file.write_text(
        json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "octo/app"}})
    )
    state = tmp_path / "state"
    state.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "RUNNER_POLICY_FILE": str(policy_file),
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event_file),
    }
    return Job(tmp_path, interpreter, hooks / "job_started.py", policy_file, event_file, state, env)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("::error::")]


def test_allowed_job_exits_zero_and_records_its_verdict(job: Job) -> None:
    result = job.run("--state-dir", str(job.state))
    assert result.returncode == 0, result.stdout + result.stderr
    assert error_lines(result) == []
    assert sorted(path.name for path in job.state.iterdir()) == ["allowed", "hook-started"]
    assert "job allowed" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("changes", "rule", "fragment"),
    [
        (
            {"GITHUB_REPOSITORY": "evil/app"},
            "allowed_repositories",
            "repository evil/app is not allowed",
        ),
        ({"GITHUB_EVENT_NAME": "schedule"}, "allowed_events", "event schedule is not allowed"),
        (
            {"GITHUB_REF": "refs/heads/feature-x"},
            "allowed_refs",
            "ref refs/heads/feature-x is not allowed (allowed: refs/heads/main, refs/tags/v*)",
        ),
        (
            {"GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/ci.yml@refs/heads/main"},
            "allowed_workflows",
            "workflow .github/workflows/ci.yml is not allowed",
        ),
        ({"GITHUB_REF": None}, "allowed_refs", "ref could not be determined"),
        ({"GITHUB_WORKFLOW_REF": None}, "allowed_workflows", "workflow could not be determined"),
    ],
)
def test_refused_job(job: Job, changes: dict[str, str | None], rule: str, fragment: str) -> None:
    for key, value in changes.items():
        if value is None:
            job.env.pop(key)
        else:
            job.env[key] = value
    result = job.run()
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith(f"::error::Job refused by runner profile 'deploy': {rule}: ")
    assert fragment in line


def write_event(job: Job, payload: Any) -> None:
    job.event_file.write_text(json.dumps(payload))


def test_fork_pull_request_refused(job: Job) -> None:
    job.env.update({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/heads/main"})
    write_event(job, {"pull_request": {"head": {"repo": {"full_name": "evil/app", "fork": True}}}})
    result = job.run()
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "'deploy': deny_fork_pull_requests: jobs for pull requests from forks" in line


def test_same_repository_pull_request_allowed(job: Job) -> None:
    job.env.update({"GITHUB_EVENT_NAME": "pull_request"})
    write_event(job, {"pull_request": {"head": {"repo": {"full_name": "octo/app", "fork": False}}}})
    assert job.run().returncode == 0


def test_pull_request_without_event_file_is_refused(job: Job) -> None:
    job.env.update({"GITHUB_EVENT_NAME": "pull_request"})
    del job.env["GITHUB_EVENT_PATH"]
    result = job.run()
    assert result.returncode == 1
    assert "deny_fork_pull_requests: could not determine" in error_lines(result)[0]


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_bad_event_file_fails_closed(job: Job, content: str | None) -> None:
    if content is None:
        job.event_file.unlink()
    else:
        job.event_file.write_text(content)
    result = job.run()
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith("::error::Job refused by runner profile 'deploy': event_file: ")


@pytest.mark.parametrize(
    ("content", "profile", "fragment"),
    [
        (None, "unknown", "could not read policy file"),
        ("{oops", "unknown", "not valid JSON"),
        ('{"profile": "deploy", "allowed_refs": ["main"]}', "deploy", "allowed_refs[0]"),
        ('{"profile": "deploy", "surprise": true}', "deploy", "unknown key(s) surprise"),
    ],
)
def test_bad_policy_file_fails_closed(
    job: Job, content: str | None, profile: str, fragment: str
) -> None:
    if content is None:
        job.policy_file.unlink()
    else:
        job.policy_file.write_text(content)
    result = job.run()
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith(f"::error::Job refused by runner profile '{profile}': policy_file: ")
    assert fragment in line


def test_no_policy_file_configured_fails_closed(job: Job) -> None:
    del job.env["RUNNER_POLICY_FILE"]
    result = job.run()
    assert result.returncode == 1
    assert "policy_file: no policy file given" in error_lines(result)[0]


def test_missing_policy_module_fails_closed(job: Job) -> None:
    (job.hook.parent / "policy.py").unlink()
    result = job.run()
    assert result.returncode == 1
    assert "policy_file: could not load policy.py" in error_lines(result)[0]


def test_command_line_wins_over_job_env(job: Job) -> None:
    """A job-level `env:` cannot point the hook at a laxer policy."""
    lax = job.tmp / "lax.json"
    lax.write_text(Policy(profile="lax").to_json())
    job.env["RUNNER_POLICY_FILE"] = str(lax)
    job.env["GITHUB_REPOSITORY"] = "evil/app"
    assert job.run().returncode == 0
    result = job.run("--policy-file", str(job.policy_file))
    assert result.returncode == 1
    assert "allowed_repositories" in error_lines(result)[0]


def test_unrestricted_policy_allows_anything_without_event_file(job: Job) -> None:
    job.policy_file.write_text(Policy(profile="general").to_json())
    job.env = {"PATH": job.env["PATH"], "RUNNER_POLICY_FILE": str(job.policy_file)}
    result = job.run("--state-dir", str(job.state))
    assert result.returncode == 0
    assert (job.state / "allowed").exists()


def test_error_line_cannot_be_split_by_hostile_values(job: Job) -> None:
    job.env["GITHUB_REF"] = "refs/heads/x\n::add-mask::y%"
    result = job.run()
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(lines) == 1
    assert lines[0].startswith("::error::")


def test_unwritable_state_dir_does_not_block_the_check(job: Job) -> None:
    result = job.run("--state-dir", str(job.tmp / "missing-dir"))
    assert result.returncode == 0
    assert "could not write" in result.stderr


def test_refusal_is_recorded_for_the_entrypoint(job: Job) -> None:
    job.env["GITHUB_REPOSITORY"] = "evil/app"
    result = job.run("--state-dir", str(job.state))
    assert result.returncode == 1
    assert result.stdout.startswith(
        "::error::Job refused by runner profile 'deploy': allowed_repositories"
    )
    assert "no further step of this job will run" in result.stdout
    refused = (job.state / "refused").read_text()
    assert refused.startswith("Job refused by runner profile 'deploy': allowed_repositories")
    assert not (job.state / "allowed").exists()


def test_runs_from_a_source_checkout(job: Job) -> None:
    """Next to ../lambda_fn/policy.py (no copy beside it) it still finds the rules."""
    job.hook = HOOK
    assert job.run().returncode == 0


def test_preflight_checks_required_env(job: Job) -> None:
    result = job.run("--preflight")
    assert result.returncode == 78
    assert result.stderr.strip() == "required environment variable(s) not set: DB_URL"
    job.env["DB_URL"] = "postgres://db"
    assert job.run("--preflight").returncode == 0
    job.policy_file.write_text("{}")
    result = job.run("--preflight")
    assert result.returncode == 78
    assert result.stderr.startswith("invalid runner policy: ")
