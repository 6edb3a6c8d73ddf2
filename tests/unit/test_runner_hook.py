"""runner/job_started.py run as the runner would: a subprocess with a job's environment.

A restricted profile's hook also reads dispatch's admission record of the job
(docs/admission.md): here from moto's DynamoDB behind localdev.task_identity, which
verifies the hook's SigV4 signature and applies the task role's LeadingKeys statement.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_fn import admission_record
from lambda_fn.policy import Policy
from localdev import moto_server
from localdev.task_identity import TaskIdentities

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "fargate_runners" / "runner" / "job_started.py"
POLICY_PY = ROOT / "lambda_fn" / "policy.py"
AWS_CALL = ROOT / "fargate_runners" / "runner" / "aws_call.py"
RECORD_PY = ROOT / "lambda_fn" / "admission_record.py"
TABLE = "unit-idempotency"
REGION = "us-east-1"
ROLE_ID = "AROAEXAMPLEDEPLOYROLE"
OTHER_ROLE_ID = "AROAEXAMPLEOTHERROLE1"
RUN_ID = 4242
SHA = "a" * 40


@pytest.fixture(scope="module")
def identities() -> Iterator[TaskIdentities]:
    """moto (DynamoDB) behind the task-role IAM double, with the admission table."""
    with (
        moto_server.start() as moto,
        TaskIdentities(moto.url, "unit/jit", admission_table=TABLE) as double,
    ):
        dynamodb(double).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        double.grant_admissions(ROLE_ID, "deploy")
        double.grant_admissions(OTHER_ROLE_ID, "other")
        yield double


def dynamodb(identities: TaskIdentities) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=identities.moto_url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def admit(
    identities: TaskIdentities,
    *,
    profile: str = "deploy",
    repository: str = "octo/app",
    run_id: int = RUN_ID,
    run_attempt: int = 1,
    head_sha: str = SHA,
    expires_in: int = admission_record.TTL_SECONDS,
) -> str:
    """Write an admission record as dispatch does (lambda_fn.admission.record_admission)."""
    entry = admission_record.item(
        admission_record.Admission(
            profile, repository, run_id, run_attempt, head_sha, int(time.time()) + expires_in, 1
        )
    )
    dynamodb(identities).put_item(TableName=TABLE, Item=entry)
    return entry["id"]["S"]


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
    #: What entrypoint.sh passes for a restricted profile (RUNNER_ADMISSION_*).
    admission_args: list[str] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, str(self.hook), *self.admission_args, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture
def job(tmp_path: Path, interpreter: str, identities: TaskIdentities) -> Job:
    hooks = tmp_path / "_hooks"
    hooks.mkdir()
    shutil.copy(HOOK, hooks / "job_started.py")
    shutil.copy(POLICY_PY, hooks / "policy.py")
    shutil.copy(AWS_CALL, hooks / "aws_call.py")
    shutil.copy(RECORD_PY, hooks / "admission_record.py")
    admit(identities)  # dispatch admitted the job's run (the same item every time)
    session = identities.session(ROLE_ID, f"arn:aws:ecs:{REGION}:1:task/c/{tmp_path.name}")
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
        "GITHUB_RUN_ID": str(RUN_ID),
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": SHA,
        **identities.task_environment(session),
    }
    args = ["--admission-table", TABLE, "--admission-region", REGION, "--admission-wait", "0"]
    hook = hooks / "job_started.py"
    return Job(tmp_path, interpreter, hook, policy_file, event_file, state, env, args)


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


# --- the admission record: the runner runs only what dispatch admitted -----------------


def admission_line(result: subprocess.CompletedProcess[str]) -> str:
    [line] = error_lines(result)
    assert line.startswith("::error::Job refused by runner profile 'deploy': admission: "), line
    return line


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        # Another run of the allowed repository, at allowed names: dispatch never saw it.
        ({"GITHUB_RUN_ID": "999"}, "dispatch did not admit octo/app run 999 attempt 1"),
        # A re-run: attempt 2 is admitted only when dispatch admits its own queued jobs.
        ({"GITHUB_RUN_ATTEMPT": "2"}, f"dispatch did not admit octo/app run {RUN_ID} attempt 2"),
        # The admitted run, but the runner sees another commit.
        ({"GITHUB_SHA": "b" * 40}, f"dispatch admitted commit {SHA}, the job runs at {'b' * 40}"),
        ({"GITHUB_RUN_ATTEMPT": None}, "GITHUB_RUN_ATTEMPT '' is not a positive integer"),
        ({"GITHUB_SHA": "HEAD"}, "GITHUB_SHA 'HEAD' is not a commit id"),
    ],
)
def test_job_dispatch_did_not_admit_is_refused(
    job: Job, changes: dict[str, str | None], fragment: str
) -> None:
    for key, value in changes.items():
        if value is None:
            job.env.pop(key)
        else:
            job.env[key] = value
    result = job.run("--state-dir", str(job.state))
    assert result.returncode == 1
    assert fragment in admission_line(result)
    assert (job.state / "refused").exists() and not (job.state / "allowed").exists()


def test_expired_record_is_refused(job: Job, identities: TaskIdentities) -> None:
    admit(identities, run_id=5001, expires_in=-1)  # DynamoDB's TTL deletes lazily
    job.env["GITHUB_RUN_ID"] = "5001"
    assert "the record has expired" in admission_line(job.run())


def test_record_of_another_profile_does_not_admit(job: Job, identities: TaskIdentities) -> None:
    admit(identities, profile="other", run_id=5002)
    job.env["GITHUB_RUN_ID"] = "5002"
    assert "no admission record admitted#deploy#octo/app#5002#1" in admission_line(job.run())


def test_another_profiles_role_cannot_read_the_record(
    job: Job, identities: TaskIdentities, tmp_path: Path
) -> None:
    """The task role of profile 'other' reads only admitted#other#*: deploy's is denied."""
    other = identities.session(OTHER_ROLE_ID, f"arn:aws:ecs:{REGION}:1:task/c/{tmp_path.name}")
    job.env.update(identities.task_environment(other))
    line = admission_line(job.run())
    assert "AccessDeniedException" in line
    assert "dynamodb:LeadingKeys is not like admitted#other" in line


def test_the_task_role_cannot_write_a_record(identities: TaskIdentities, tmp_path: Path) -> None:
    """A job on a deploy runner has the task role's credentials: it may read, never write."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("hook_aws_call", AWS_CALL)
    assert spec is not None and spec.loader is not None
    aws = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = aws
    spec.loader.exec_module(aws)
    session = identities.session(ROLE_ID, f"arn:aws:ecs:{REGION}:1:task/c/{tmp_path.name}")
    client = aws.api("dynamodb", REGION, identities.task_environment(session))
    forged = admission_record.item(
        admission_record.Admission("deploy", "octo/app", 6001, 1, SHA, 2**40, 1)
    )
    for action, body in (
        ("PutItem", {"TableName": TABLE, "Item": forged}),
        ("UpdateItem", {"TableName": TABLE, "Key": {"id": forged["id"]}}),
        ("DeleteItem", {"TableName": TABLE, "Key": {"id": forged["id"]}}),
    ):
        with pytest.raises(aws.AwsError) as denied:
            client.call(action, body)
        assert denied.value.code == "AccessDeniedException"
    assert "Item" not in dynamodb(identities).get_item(TableName=TABLE, Key={"id": forged["id"]})


def test_pull_request_is_recorded_at_its_head_commit(job: Job, identities: TaskIdentities) -> None:
    """For pull-request events GITHUB_SHA is the merge (or base) commit, while the run's
    head_sha, which dispatch records, is the pull request's head."""
    admit(identities, run_id=5003, head_sha="c" * 40)
    job.env.update(
        {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_RUN_ID": "5003", "GITHUB_SHA": "d" * 40}
    )
    write_event(
        job,
        {"pull_request": {"head": {"sha": "c" * 40, "repo": {"full_name": "octo/app"}}}},
    )
    result = job.run()
    assert result.returncode == 0, result.stdout


def test_warm_runner_waits_for_the_record_dispatch_is_writing(
    job: Job, identities: TaskIdentities
) -> None:
    """A warm runner can get its job before the webhook has admitted it: it waits.

    The record is written only once the hook has looked and said it waits, so the
    first lookup certainly found nothing.
    """
    run_id = 10**6 + secrets.randbelow(10**6)  # a run no other test admitted
    job.env["GITHUB_RUN_ID"] = str(run_id)
    job.admission_args[-1] = "20"
    # Looks again every 0.1 s instead of 2 s (ADMISSION_POLL_SECONDS), so it ends moments
    # after the write.
    job.admission_args += ["--admission-poll", "0.1"]
    argv = [job.python, str(job.hook), *job.admission_args, "--state-dir", str(job.state)]
    with subprocess.Popen(
        argv, env=job.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as hook:
        assert hook.stderr is not None
        said = hook.stderr.readline()
        assert said.startswith(
            f"waiting up to 20 s for admission record admitted#deploy#octo/app#{run_id}#1"
        ), said
        assert hook.poll() is None
        admit(identities, run_id=run_id)
        out, _ = hook.communicate(timeout=20)
    assert hook.returncode == 0, out
    assert (job.state / "allowed").exists()


def test_warm_runner_refuses_when_no_record_comes(job: Job) -> None:
    job.env["GITHUB_RUN_ID"] = "5005"
    job.admission_args[-1] = "1"
    job.admission_args += ["--admission-poll", "0.2"]
    started = time.monotonic()
    line = admission_line(job.run())
    assert time.monotonic() - started >= 1
    assert "dispatch did not admit octo/app run 5005 attempt 1" in line


def test_admission_poll_must_be_positive(job: Job) -> None:
    result = job.run("--admission-poll", "0")
    assert result.returncode == 2
    assert "--admission-poll must be a positive number of seconds" in result.stderr


def test_restricted_profile_without_admission_table_fails_closed(job: Job) -> None:
    job.admission_args = []
    assert "admission: no admission table is configured" in admission_line(job.run())
    job.env["DB_URL"] = "postgres://db"
    result = job.run("--preflight")
    assert result.returncode == 78
    assert result.stderr.startswith("RUNNER_ADMISSION_TABLE is not set")
