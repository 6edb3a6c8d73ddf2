"""runner/jit_config.py, the task side: real curl --aws-sigv4 against moto.

moto stores secrets but evaluates no IAM condition: the task-role statement
(``secretsmanager:ResourceTag/runner:task-userid == ${aws:userid}``) is applied
by localdev.task_identity's double, which also verifies curl's SigV4 signature
with botocore's signer and serves the container credentials.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from fargate_runners.runner import jit_config
from localdev import moto_server
from localdev.runner_double import configured_files
from localdev.runner_double import jit_config as encoded_jit_config
from localdev.task_identity import TaskIdentities

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "fargate_runners" / "runner" / "jit_config.py"
PREFIX = "unit/jit"
ROLE_ID = "AROAEXAMPLETASKROLE01"


@pytest.fixture(scope="module")
def identities() -> Iterator[TaskIdentities]:
    with moto_server.start() as moto, TaskIdentities(moto.url, PREFIX) as double:
        yield double


def secretsmanager(identities: TaskIdentities) -> Any:
    return boto3.client(
        "secretsmanager",
        endpoint_url=identities.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


class Launch:
    """One launched task: its id, its sealed config's name and the config itself."""

    def __init__(self, identities: TaskIdentities) -> None:
        self.identities = identities
        self.task_id = secrets.token_hex(16)
        self.task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/c/{self.task_id}"
        self.name = f"{PREFIX}/runner-{self.task_id[:8]}"
        self.encoded = encoded_jit_config(configured_files(f"runner-{self.task_id[:8]}"))

    def seal(self, value: str | None = None) -> None:
        """What the Lambda does right after run_task (lambda_fn.jit_secret.seal itself)."""
        from lambda_fn import jit_secret
        from lambda_fn.github import JitConfig

        profile: Any = SimpleNamespace(name="default", task_role_id=ROLE_ID)
        jit = JitConfig(runner_id=1, runner_name=self.name, encoded=value or self.encoded)
        jit_secret.seal(secretsmanager(self.identities), self.name, jit, profile, self.task_arn)

    def env(self, userid: str | None = None) -> dict[str, str]:
        """The task's environment; ``userid`` = run with another identity's credentials."""
        identity = (
            self.identities.identity(userid)
            if userid
            else self.identities.session(ROLE_ID, self.task_arn)
        )
        return {
            "PATH": "/usr/bin:/bin",
            **self.identities.task_environment(identity),
            "RUNNER_JIT_SECRET_ID": self.name,
            "RUNNER_JIT_SECRET_REGION": "us-east-1",
        }


@pytest.fixture
def launch(identities: TaskIdentities) -> Launch:
    return Launch(identities)


#: Seconds between two reads of a secret not readable yet (production: 2, the default).
RETRY_SECONDS = "0.1"


def fetch(
    root: Path, env: dict[str, str], wait: float = 0.5, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--runner-root",
            str(root),
            "--wait-seconds",
            str(wait),
            "--retry-seconds",
            RETRY_SECONDS,
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_reads_once_writes_the_runner_files_and_consumes_the_secret(
    launch: Launch, tmp_path: Path
) -> None:
    launch.seal()
    done = fetch(tmp_path, launch.env())
    assert done.returncode == 0, done.stderr
    files = json.loads(base64.b64decode(launch.encoded))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == base64.b64decode(content)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert done.stderr.strip() == (
        f"jit_config: wrote .credentials, .credentials_rsaparams, .runner to {tmp_path} "
        f"from {launch.name}; the secret is consumed"
    )
    assert launch.encoded not in done.stdout + done.stderr
    # Consumed: the same task reading again gets nothing (the secret is gone).
    again = fetch(tmp_path, launch.env())
    assert again.returncode == 1
    assert "was not readable within 0.5 s" in again.stderr
    with pytest.raises(secretsmanager(launch.identities).exceptions.ResourceNotFoundException):
        secretsmanager(launch.identities).describe_secret(SecretId=launch.name)


@pytest.mark.parametrize(
    "who",
    [
        "another task of the same profile",
        "a task of another profile",
        "a principal with ReadOnlyAccess",
    ],
)
def test_nobody_else_can_read_it(launch: Launch, tmp_path: Path, who: str) -> None:
    launch.seal()
    userid = {
        "another task of the same profile": f"{ROLE_ID}:{secrets.token_hex(16)}",
        "a task of another profile": f"AROAOTHERPROFILEROLE1:{launch.task_id}",
        "a principal with ReadOnlyAccess": "AROAREADONLYAUDITOR01:alice",
    }[who]
    denied = fetch(tmp_path, launch.env(userid))
    assert denied.returncode == 1
    assert "AccessDeniedException" in denied.stderr
    assert list(tmp_path.iterdir()) == []
    # ... and the rightful task still gets it afterwards.
    assert fetch(tmp_path, launch.env()).returncode == 0


def test_a_rewritten_binding_tag_opens_it_to_nobody_else(launch: Launch, tmp_path: Path) -> None:
    """The identity policy trusts the tag; the secret's resource policy names the session
    itself. Were the tag rewritten to another task's session (the Lambda role could before
    the policy's FixedAtCreation), that task is still refused."""
    launch.seal()
    other = f"{ROLE_ID}:{secrets.token_hex(16)}"
    sm = secretsmanager(launch.identities)  # moto directly: it enforces no deny itself
    sm.tag_resource(SecretId=launch.name, Tags=[{"Key": "runner:task-userid", "Value": other}])
    denied = fetch(tmp_path, launch.env(other))
    assert denied.returncode == 1
    assert "AccessDeniedException" in denied.stderr
    assert list(tmp_path.iterdir()) == []


def test_task_started_before_the_secret_exists_waits_for_it(launch: Launch, tmp_path: Path) -> None:
    sealed_at: list[float] = []

    def seal_after_the_first_read() -> None:
        """The Lambda stores it after run_task returns: here, once the task has read."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(call[2] == launch.name for call in launch.identities.calls):
                break
            time.sleep(0.02)
        sealed_at.append(time.monotonic())
        launch.seal()

    lambda_ = threading.Thread(target=seal_after_the_first_read)
    lambda_.start()
    try:
        done = fetch(tmp_path, launch.env(), 20)
        finished = time.monotonic()
    finally:
        lambda_.join()
    assert done.returncode == 0, done.stderr
    assert finished >= sealed_at[0]
    denied = [c for c in launch.identities.calls if c[2] == launch.name and c[3] != "forwarded 200"]
    assert denied and all(c[3] == "AccessDeniedException" for c in denied)


def test_never_stored_gives_up_after_the_bound_with_one_line(
    launch: Launch, tmp_path: Path
) -> None:
    begun = time.monotonic()
    done = fetch(tmp_path, launch.env(), 1)
    assert done.returncode == 1
    assert 1 <= time.monotonic() - begun < 15
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"jit_config: {launch.name} was not readable within 1 s")
    assert "did not store its config" in line


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!", "not base64 JSON of base64 files"),
        (base64.b64encode(b'{".runner": "e30="}').decode(), "lacks .credentials"),
        (
            base64.b64encode(
                json.dumps({".runner": "e30=", ".credentials": "e30=", "../x": "e30="}).encode()
            ).decode(),
            "outside the runner root",
        ),
    ],
)
def test_malformed_config_is_refused(
    launch: Launch, tmp_path: Path, value: str, reason: str
) -> None:
    launch.seal(value)
    done = fetch(tmp_path, launch.env())
    assert done.returncode == 1
    assert reason in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_never_writes_through_a_symlink(launch: Launch, tmp_path: Path) -> None:
    launch.seal()
    target = tmp_path / "elsewhere"
    (tmp_path / ".runner").symlink_to(target)
    done = fetch(tmp_path, launch.env())
    assert done.returncode == 1 and "cannot write" in done.stderr
    assert not target.exists()


def test_credentials_are_never_on_curls_command_line(
    launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch.seal()
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: Any) -> Any:
        seen.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(jit_config.aws.subprocess, "run", spy)
    env = launch.env()
    args = jit_config.parse_args(["--runner-root", str(tmp_path), "--wait-seconds", "5"])
    assert jit_config.run(args, env) == 0
    creds = jit_config.aws.container_credentials(env)
    assert [argv[1:3] for argv in seen] == [["--config", "-"], ["--config", "-"]]
    flat = " ".join(" ".join(argv) for argv in seen)
    for secret in (creds.secret_access_key, creds.token, creds.access_key_id, launch.encoded):
        assert secret not in flat


def test_a_failed_delete_warns_and_still_starts_the_runner(
    launch: Launch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    launch.seal()
    real_call = jit_config.aws.AwsJsonApi.call

    def no_delete(self: Any, action: str, body: Any) -> Any:
        if action == "DeleteSecret":
            raise jit_config.AwsError("ThrottlingException", "Rate exceeded", 400)
        return real_call(self, action, body)

    monkeypatch.setattr(jit_config.aws.AwsJsonApi, "call", no_delete)
    args = jit_config.parse_args(["--runner-root", str(tmp_path), "--wait-seconds", "5"])
    assert jit_config.run(args, launch.env()) == 0
    err = capsys.readouterr().err
    assert f"warning: could not delete {launch.name} (ThrottlingException: Rate exceeded)" in err
    assert (tmp_path / ".runner").exists()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "no container credentials"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "file:///etc/passwd"}, "is not http(s)"),
        (
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
            "cannot read the task role's credentials",
        ),
    ],
)
def test_credential_problems_are_one_line_reasons(
    tmp_path: Path, env: dict[str, str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full_env = {
        "RUNNER_JIT_SECRET_ID": f"{PREFIX}/x",
        "RUNNER_JIT_SECRET_REGION": "us-east-1",
        **env,
    }
    args = jit_config.parse_args(["--runner-root", str(tmp_path)])
    with pytest.raises(
        jit_config.JitConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")
    ):
        jit_config.run(args, full_env)


def test_curl_missing_is_retried_then_reported(launch: Launch, tmp_path: Path) -> None:
    launch.seal()
    done = fetch(tmp_path, launch.env(), 0.5, "--curl", str(tmp_path / "no-curl"))
    assert done.returncode == 1
    assert "CurlFailed: FileNotFoundError" in done.stderr


@pytest.mark.parametrize("value", ["x", "0", "-1", "99999"])
def test_wait_seconds_from_the_environment_is_validated(tmp_path: Path, value: str) -> None:
    args = jit_config.parse_args(["--runner-root", str(tmp_path)])
    with pytest.raises(jit_config.JitConfigError, match="RUNNER_JIT_WAIT_SECONDS"):
        jit_config.wait_seconds(args, {"RUNNER_JIT_WAIT_SECONDS": value})


def test_curl_config_quotes_every_value() -> None:
    text = jit_config.aws.AwsJsonApi(
        "secretsmanager",
        "https://secretsmanager.eu-west-1.amazonaws.com/",
        "eu-west-1",
        jit_config.aws.Credentials("AKID", 'se"cr\\et', "tok"),
    ).curl_config("GetSecretValue", {"SecretId": 'a"b'})
    assert 'user = "AKID:se\\"cr\\\\et"\n' in text
    assert 'data-binary = "{\\"SecretId\\":\\"a\\\\\\"b\\"}"\n' in text
    assert 'aws-sigv4 = "aws:amz:eu-west-1:secretsmanager"\n' in text
    assert 'header = "X-Amz-Security-Token: tok"\n' in text
    with pytest.raises(jit_config.JitConfigError):
        jit_config.aws.AwsJsonApi(
            "secretsmanager", "u", "r", jit_config.aws.Credentials("a\nb", "s")
        ).curl_config("A", {})
