"""Container hook of a managed-steps profile: each job step runs as its own Fargate task.

The runner calls ``ACTIONS_RUNNER_CONTAINER_HOOKS`` (the ``managed-steps.sh``
wrapper that ``entrypoint.sh`` writes; it execs this file) once per container
operation, with one JSON object on stdin: ``command``, ``responseFile``,
``args``, ``state`` (actions/runner v2.332.0
``src/Runner.Worker/Container/ContainerHooks/HookInput.cs``; every fact used
here is in docs/runner.md with its source). What this hook does with each:

``prepare_job`` ("Initialize containers", after the job-started policy check)
    Refuses unless the policy check recorded ``allowed`` and the same policy
    (``job_started.py``, ``policy.py``) allows the job again; refuses a job
    container other than the profile's one image, services, user volumes,
    ``options``, ``ports`` and registry credentials. Starts nothing. Writes
    ``{"isAlpine": false}`` (required when the job has a container:
    ``HookResponse.cs``) and records ``steps-prepared`` in the state directory.
``run_script_step`` (every ``run:`` step, and every JavaScript action)
    Accepts only a ``run:`` step of the default shells (``sh -e <file>`` or
    ``bash --noprofile --norc -e -o pipefail <file>``) whose script, trimmed,
    is exactly the name of one managed command. The text is never executed:
    the step runs as one task of the profile's fixed step task definition,
    whose command override is that name (the step container maps the name to
    the managed command itself and refuses any other). Only the variables
    named in ``step_env`` go along; the step log says which were dropped.
    The step task is tagged ``runner:step-owner = <runner task role id>:<runner
    task id>`` (the role id from the configuration, the task id from the ECS task
    metadata endpoint): that is this runner session's ``aws:userid``, and the
    runner role may start step tasks only with that tag and stop only tasks that
    carry it (fargate_runners/steps.py, ``grant_runner``). No task id, no step.
    The hook prints the step task's CloudWatch log while it runs (it looks at
    the task and its log every ``--poll-seconds``, default 2; the entrypoint
    leaves the default) and exits with its exit code. JavaScript actions
    (``actions/checkout`` included) and any other shell are refused.
``run_container_step`` (Docker actions)
    Refused.
``cleanup_job`` ("Stop containers", always)
    Stops every step task this job started whose stop nobody has asked for yet.

SIGINT or SIGTERM (the runner cancelling the step) stops the running step
task. Refusals print ``::error::Managed steps (profile '<name>'): <why>`` and
exit 1: the runner then fails that step. A refusal in ``prepare_job`` also
fails every later step, since ``run_script_step`` requires ``steps-prepared``.

Standard library only (python3 on the stock runner image); AWS calls go
through ``aws_call.py`` (``curl --aws-sigv4`` with the task role's container
credentials), loaded by path from this file's directory, as is
``job_started.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

EXIT_REFUSED = 1
EXIT_CONFIG = 78
#: Exit code when the step task stopped without one (never started, killed).
EXIT_NO_CODE = 1
#: Seconds between two looks at a running step task and its log (``--poll-seconds``).
POLL_SECONDS = 2.0

_HERE = Path(__file__).resolve().parent

#: The runner writes a ``run:`` script to its temp directory and passes the path as the
#: container sees it (``/__w/_temp``): ScriptHandler.cs, ContainerInfo.TranslateToContainerPath.
CONTAINER_TEMP = "/__w/_temp/"
_SCRIPT_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.sh$")
#: How the runner starts a ``run:`` script in a container job (ScriptHandlerHelpers.cs):
#: the default shell is ``sh -e {0}``; ``shell: bash`` uses sh's format too (ScriptHandler.cs),
#: and a ``shell: bash --noprofile ...`` custom string arrives split on spaces.
SHELL_PREFIXES: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "sh": (("-e",),),
    "bash": (("-e",), ("--noprofile", "--norc", "-e", "-o", "pipefail")),
}
MAX_SCRIPT_BYTES = 4096
#: ECS RunTask: "the total size of overrides ... cannot exceed 8192 bytes" (API_RunTask).
MAX_OVERRIDE_BYTES = 8192
#: Variables the runner itself puts into every step's environment.
RUNNER_SET_PREFIXES = ("GITHUB_", "RUNNER_", "ACTIONS_")
RUNNER_SET_NAMES = frozenset({"CI", "HOME", "PATH", "ImageOS", "ImageVersion"})

#: ``step_env`` is an allowlist of one namespace, not a denylist: a name a workflow may pass
#: to a step is ``INPUT_<NAME>`` (GitHub's own spelling of action inputs), which no
#: interpreter, tool, proxy client or loader reads by itself. The names that do are open-ended
#: (``GIT_CONFIG_KEY_0=core.fsmonitor`` makes ``git status`` run a program, ``GOFLAGS`` can name
#: a ``-toolexec``, ``OPENSSL_CONF`` loads an engine, ``LESSOPEN`` runs a command, ...), so no
#: list of them is ever complete; a namespace is. docs/step-env.md has the reasons.
STEP_ENV_PREFIX = "INPUT_"
STEP_ENV_NAME = re.compile(r"^INPUT_[A-Z0-9_]{1,100}$")


def _prefix(*prefixes: str) -> Callable[[str], bool]:
    return lambda name: name.startswith(prefixes)


def _suffix(*suffixes: str) -> Callable[[str], bool]:
    return lambda name: name.endswith(suffixes)


def _named(*names: str) -> Callable[[str], bool]:
    return frozenset(names).__contains__


def _either(*matchers: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda name: any(match(name) for match in matchers)


#: Why a well-known name outside the namespace is refused (for the error message only: every
#: name outside the namespace is refused). Matched against the upper-cased name, in order.
STEP_ENV_FAMILIES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (_prefix("ACTIONS_", "RUNNER_", "GITHUB_"), "the runner sets it"),
    (_prefix("AWS_", "ECS_"), "AWS SDKs and ECS read it (credentials, endpoints, profiles)"),
    (_prefix("GIT_"), "git reads GIT_* to configure itself and to run programs "
        "(GIT_CONFIG_*, GIT_SSH_COMMAND, GIT_ASKPASS, GIT_EXEC_PATH, GIT_PAGER, ...)"),
    (_named("_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH"),
        "every JVM reads it as options (-javaagent runs code)"),
    (_prefix("PYTHON"), "Python reads PYTHON* at start-up (PYTHONPATH, PYTHONSTARTUP, "
        "PYTHONHOME load code)"),
    (_prefix("NODE_"), "Node.js reads it (NODE_OPTIONS --require loads code, "
        "NODE_EXTRA_CA_CERTS changes TLS trust)"),
    (_prefix("PERL"), "perl reads it (PERL5OPT, PERL5LIB load modules)"),
    (_prefix("RUBY", "GEM_", "BUNDLE_"), "Ruby reads it (RUBYOPT, RUBYLIB load code)"),
    (_suffix("_OPTS", "_OPTIONS", "_FLAGS", "FLAGS"),
        "interpreters and build tools read such names as command-line options"),
    (_either(_prefix("LD_", "MALLOC_"), _named("GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH",
            "NLSPATH", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "TZ", "TZDIR")),
        "the dynamic loader or the C library reads it (LD_PRELOAD loads a library into "
        "every program, GCONV_PATH a shared object)"),
    (_suffix("_PROXY"), "it sends the command's traffic through a proxy"),
    (_named("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        "it changes which TLS certificates are trusted"),
    (_prefix("OPENSSL_", "SSL", "SSH_", "GNUPG", "KRB5"),
        "it changes TLS, SSH or signing configuration (OPENSSL_CONF loads an engine)"),
    (_either(_named("PAGER", "EDITOR", "VISUAL", "BROWSER", "LESSOPEN", "LESSCLOSE",
            "MANPAGER"), _suffix("_PAGER", "_EDITOR", "_ASKPASS")),
        "tools run the program it names"),
    (_either(_named("BASH_ENV", "ENV", "PROMPT_COMMAND", "IFS", "PS4", "SHELLOPTS",
            "BASHOPTS", "CDPATH", "GLOBIGNORE", "SHELL"), _prefix("BASH_FUNC_")),
        "the shell reads it at start-up or while it runs commands"),
    (_either(_named("PATH", "HOME", "TMPDIR"), _prefix("XDG_")),
        "it chooses which programs and configuration files are used"),
)  # fmt: skip


def step_env_problem(name: str) -> str | None:
    """Why a workflow may not pass variable ``name`` to a step (None: it may).

    The one rule for ``step_env``: synth (``fargate_runners/config.py``) refuses such a
    name in a profile, and :meth:`StepsConfig.from_json` refuses a configuration with one.
    """
    if STEP_ENV_NAME.match(name):
        return None
    upper = name.upper()
    why = next((why for match, why in STEP_ENV_FAMILIES if match(upper)), None)
    return (
        f"{name!r} may not be passed to a step: "
        + (why or "it is outside the one namespace no tool reads")
        + f"; step_env names are {STEP_ENV_PREFIX}<NAME> (A-Z, 0-9, _), e.g. "
        f"{STEP_ENV_PREFIX}DEPLOY_TARGET, set in the step's env: from any expression"
    )


#: Consecutive DescribeTasks failures (or missing answers) before the step is given up.
MAX_DESCRIBE_MISSES = 15

#: ECS task metadata endpoint v4, injected into every container on Fargate platform 1.4.0+;
#: ``<it>/task`` answers this task's metadata, ``TaskARN`` included (ECS Developer Guide,
#: "Task metadata endpoint version 4 for tasks on Fargate").
METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
#: An IAM role's unique id (``RoleId``) and an ECS task id, as they appear in ``aws:userid``.
_ROLE_ID = re.compile(r"^AROA[A-Z0-9]{1,124}$")
_TASK_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

STATE_PREPARED = "steps-prepared"
STATE_TASKS = "step-tasks"

CONFIG_KEYS = frozenset(
    {
        "profile", "image", "commands", "env", "cluster", "task_definition", "container",
        "subnets", "security_groups", "assign_public_ip", "log_group", "log_stream_prefix",
        "region", "owner_tag", "owner_role_id",
    }
)  # fmt: skip


class Refusal(Exception):
    """Why this job or step may not run here (one line)."""


class ConfigProblem(Exception):
    """The profile's step configuration is unusable."""


class Cancelled(BaseException):
    """SIGINT or SIGTERM arrived: the runner is cancelling the step."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _job_started() -> ModuleType:
    """``job_started.py`` from this file's directory, by path: the policy check, and
    ``load_sibling`` for the other siblings (``aws_call.py``)."""
    sys.dont_write_bytecode = True  # no __pycache__ in the read-only hooks directory
    spec = importlib.util.spec_from_file_location("runner_job_started", _HERE / "job_started.py")
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise ImportError("job_started.py not found next to managed_steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def escape_data(text: str) -> str:
    """Escape a workflow-command message so it stays one line and one command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# -- configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class StepsConfig:
    """``RUNNER_STEPS_JSON``: what the hook may start (built by fargate_runners/runner_files.py)."""

    profile: str
    image: str
    commands: tuple[str, ...]
    env: frozenset[str]
    cluster: str
    task_definition: str
    container: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    log_group: str
    log_stream_prefix: str
    region: str
    #: Tag key, and first half of its value, that binds a step task to this runner session.
    owner_tag: str
    owner_role_id: str

    @classmethod
    def from_json(cls, text: str) -> StepsConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigProblem(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigProblem("must be a JSON object")
        missing = CONFIG_KEYS - set(data)
        unknown = set(data) - CONFIG_KEYS
        if missing or unknown:
            raise ConfigProblem(f"missing keys: {sorted(missing)}, unknown keys: {sorted(unknown)}")

        def text_of(key: str) -> str:
            value = data[key]
            if not isinstance(value, str) or not value or value != value.strip():
                raise ConfigProblem(f"{key}: must be a non-empty string")
            return value

        def texts(key: str, allow_empty: bool = False) -> tuple[str, ...]:
            value = data[key]
            if (
                not isinstance(value, list)
                or (not value and not allow_empty)
                or not all(isinstance(item, str) and item for item in value)
            ):
                raise ConfigProblem(f"{key}: must be a list of non-empty strings")
            return tuple(value)

        if not isinstance(data["assign_public_ip"], bool):
            raise ConfigProblem("assign_public_ip: must be true or false")
        refused = [problem for name in texts("env", allow_empty=True)
                   if (problem := step_env_problem(name)) is not None]  # fmt: skip
        if refused:
            raise ConfigProblem(f"env: {refused[0]}")
        if not _ROLE_ID.match(str(data["owner_role_id"])):
            raise ConfigProblem("owner_role_id: must be an IAM role id (AROA...)")
        return cls(
            profile=text_of("profile"),
            image=text_of("image"),
            commands=texts("commands"),
            env=frozenset(texts("env", allow_empty=True)),
            cluster=text_of("cluster"),
            task_definition=text_of("task_definition"),
            container=text_of("container"),
            subnets=texts("subnets"),
            security_groups=texts("security_groups"),
            assign_public_ip=data["assign_public_ip"],
            log_group=text_of("log_group"),
            log_stream_prefix=text_of("log_stream_prefix"),
            region=text_of("region"),
            owner_tag=text_of("owner_tag"),
            owner_role_id=text_of("owner_role_id"),
        )


# -- the hook ------------------------------------------------------------------------


Call = Callable[[str, Mapping[str, Any]], dict[str, Any]]


@dataclass
class Hook:
    """One invocation of the hook; ``ecs``/``logs`` make the AWS calls (lazily created)."""

    config: StepsConfig
    state_dir: Path
    policy_file: str
    env: Mapping[str, str]
    out: TextIO
    ecs: Call | None = None
    logs: Call | None = None
    poll_seconds: float = POLL_SECONDS
    #: After the task stopped, keep reading its log this long for late lines.
    drain_seconds: float = 6.0
    #: ``job_started.AdmissionSource`` of a restricted profile: the re-check in
    #: ``prepare_job`` reads dispatch's admission record again (docs/admission.md).
    admission: Any = None

    # -- output and state

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def refuse(self, why: str) -> int:
        line = f"Managed steps (profile '{self.config.profile}'): {why}"
        self.say(f"::error::{escape_data(line)}")
        return EXIT_REFUSED

    def _state(self, name: str) -> Path:
        return self.state_dir / name

    def _record_task(self, task_arn: str) -> None:
        with self._state(STATE_TASKS).open("a", encoding="utf-8") as handle:
            handle.write(task_arn + "\n")

    def recorded_tasks(self) -> list[str]:
        try:
            text = self._state(STATE_TASKS).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line]

    def _aws(self) -> tuple[Call, Call]:
        if self.ecs is None or self.logs is None:
            aws = _job_started().load_sibling("runner_aws_call", (_HERE / "aws_call.py",))
            self.ecs = aws.api("ecs", self.config.region, self.env).call
            self.logs = aws.api("logs", self.config.region, self.env).call
        assert self.ecs is not None and self.logs is not None
        return self.ecs, self.logs

    # -- dispatch

    def handle(self, data: Mapping[str, Any]) -> int:
        command = data.get("command")
        args = data.get("args")
        if not isinstance(args, Mapping):
            args = {}
        try:
            if command == "prepare_job":
                return self.prepare_job(args, data.get("responseFile"))
            if command == "run_script_step":
                return self.run_script_step(args)
            if command == "run_container_step":
                raise Refusal(
                    "Docker container actions cannot run here; only managed commands "
                    f"({', '.join(self.config.commands)}) run, each as a `run:` step"
                )
            if command == "cleanup_job":
                return self.cleanup_job()
            raise Refusal(f"unknown container hook command {command!r}")
        except Refusal as exc:
            return self.refuse(str(exc))

    # -- prepare_job

    def prepare_job(self, args: Mapping[str, Any], response_file: Any) -> int:
        self._check_policy()
        container = args.get("container")
        if not isinstance(container, Mapping):
            raise Refusal(f"the job must run in `container: {self.config.image}`")
        if args.get("services"):
            raise Refusal("service containers (`services:`) are not allowed")
        image = container.get("image")
        if image != self.config.image:
            raise Refusal(
                f"job container {image!r} is not this profile's step image "
                f"(`container: {self.config.image}`)"
            )
        for key, what in (
            ("userMountVolumes", "volumes (`container.volumes`)"),
            ("createOptions", "container options (`container.options`)"),
            ("portMappings", "ports (`container.ports`)"),
            ("registry", "registry credentials (`container.credentials`)"),
        ):
            if container.get(key):
                raise Refusal(f"{what} are not allowed")
        if not isinstance(response_file, str) or not response_file:
            raise Refusal("the runner gave no response file")
        self._state(STATE_PREPARED).write_text(self.config.image + "\n", encoding="utf-8")
        # isAlpine is required when the job has a container (HookResponse.cs); nothing is
        # started, so there is no container id, network or state to report.
        Path(response_file).write_text(json.dumps({"isAlpine": False}), encoding="utf-8")
        self.say(
            f"Managed steps (profile '{self.config.profile}'): each step runs as its own task "
            f"of image {self.config.image}; allowed commands: {', '.join(self.config.commands)}"
        )
        return 0

    def _check_policy(self) -> None:
        """The job-started check's verdict, and the same policy evaluated again."""
        if not self._state("allowed").is_file():
            raise Refusal("the job-started policy check did not allow this job")
        if _job_started().run_hook(self.policy_file, None, self.env, self.admission) != 0:
            raise Refusal("the runner profile's policy refuses this job")

    # -- run_script_step

    def run_script_step(self, args: Mapping[str, Any]) -> int:
        if not self._state(STATE_PREPARED).is_file():
            raise Refusal("the job was not prepared for managed steps; no step runs")
        name = self._managed_command(args)
        variables = args.get("environmentVariables") or {}
        if not isinstance(variables, Mapping):
            variables = {}
        environment = self._step_environment(variables)
        return self._run_task(name, environment)

    def _managed_command(self, args: Mapping[str, Any]) -> str:
        """The managed command a ``run:`` step names; refuses anything else."""
        entry_point = args.get("entryPoint")
        entry_args = args.get("entryPointArgs")
        if not isinstance(entry_args, list) or not all(isinstance(a, str) for a in entry_args):
            entry_args = []
        allowed = SHELL_PREFIXES.get(entry_point) if isinstance(entry_point, str) else None
        if allowed is None or tuple(entry_args[:-1]) not in allowed or not entry_args:
            if isinstance(entry_point, str) and "/node" in entry_point:
                raise Refusal(
                    "JavaScript actions (`uses:`, actions/checkout included) cannot run here; "
                    "no source code is fetched. Use a `run:` step naming a managed command: "
                    f"{', '.join(self.config.commands)}"
                )
            raise Refusal(
                f"only `run:` steps with the default shell can run here (got {entry_point!r}); "
                f"managed commands: {', '.join(self.config.commands)}"
            )
        script = self._read_script(entry_args[-1])
        name = script.strip()
        if name not in self.config.commands:
            raise Refusal(
                "a `run:` step must be exactly one managed command "
                f"({', '.join(self.config.commands)}); this step's script is not one, "
                "and it is never executed"
            )
        return name

    def _read_script(self, container_path: str) -> str:
        """The ``run:`` text the runner wrote for this step, read from its host path."""
        file_name = container_path[len(CONTAINER_TEMP) :]
        if not container_path.startswith(CONTAINER_TEMP) or not _SCRIPT_NAME.match(file_name):
            raise Refusal(f"unexpected step script path {container_path!r}")
        # RUNNER_TEMP is the host path of the runner's temp directory (TempDirectoryManager.cs).
        temp = self.env.get("RUNNER_TEMP", "")
        if not temp:
            raise Refusal("RUNNER_TEMP is not set; cannot read the step's script")
        path = Path(temp) / file_name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as handle:
                content = handle.read(MAX_SCRIPT_BYTES + 1)
        except OSError as exc:
            raise Refusal(f"cannot read the step's script: {exc.strerror or exc}") from None
        if len(content) > MAX_SCRIPT_BYTES:
            raise Refusal("the step's script is not a managed command (too long)")
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("the step's script is not UTF-8 text") from None

    def _step_environment(self, variables: Mapping[str, Any]) -> dict[str, str]:
        """Only the ``step_env`` names; say (names only) what was dropped."""
        passed = {
            name: str(value)
            for name, value in variables.items()
            if name in self.config.env and isinstance(value, str)
        }
        dropped = sorted(name for name in variables if name not in passed)
        runner_set = [
            name for name in dropped
            if name.startswith(RUNNER_SET_PREFIXES) or name in RUNNER_SET_NAMES
        ]  # fmt: skip
        others = [name for name in dropped if name not in runner_set]
        self.say(f"Passing to the step: {', '.join(sorted(passed)) or 'no variables'}")
        if others:
            dropped_line = f"Dropped (not in this profile's step_env): {', '.join(others)}"
            self.say(f"::warning::{escape_data(dropped_line)}")
        if runner_set:
            self.say(
                f"Dropped {len(runner_set)} variable(s) the runner sets (GITHUB_*, RUNNER_*, ...)"
            )
        return passed

    # -- the step task

    def owner(self) -> str:
        """This runner session's ``aws:userid``: ``<task role id>:<task id>``.

        ECS names a task-role session after the task id (docs/jit-config.md), and the
        runner role's RunTask/StopTask conditions compare the step task's owner tag
        with ``${aws:userid}``; a wrong value is denied, never widened.
        """
        base = self.env.get(METADATA_ENV, "")
        if not base.startswith(("http://", "https://")):
            raise Refusal(
                f"{METADATA_ENV} is not set, so this runner task's id is unknown and its "
                "step task could not be tagged as its own; no step runs"
            )
        try:
            url = base.rstrip("/") + "/task"
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - scheme checked
                task_arn = json.load(answer).get("TaskARN")
        except (OSError, ValueError, AttributeError) as exc:
            raise Refusal(
                f"cannot read this runner task's metadata ({type(exc).__name__}); no step runs"
            ) from None
        task_id = task_arn.rsplit("/", 1)[-1] if isinstance(task_arn, str) else ""
        if not _TASK_ID.match(task_id):
            raise Refusal("the task metadata gave no usable TaskARN; no step runs")
        return f"{self.config.owner_role_id}:{task_id}"

    def _run_task(self, name: str, environment: Mapping[str, str]) -> int:
        ecs, _ = self._aws()
        owner = self.owner()
        override = {
            "containerOverrides": [
                {
                    "name": self.config.container,
                    "command": [name],
                    "environment": [
                        {"name": key, "value": value} for key, value in sorted(environment.items())
                    ],
                }
            ]
        }
        if len(json.dumps(override)) > MAX_OVERRIDE_BYTES:
            raise Refusal(
                f"the step's variables exceed ECS's {MAX_OVERRIDE_BYTES}-byte override limit"
            )
        request = {
            "cluster": self.config.cluster,
            "taskDefinition": self.config.task_definition,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": f"managed-step/{self.config.profile}"[:128],
            "enableExecuteCommand": False,
            # The runner role may start step tasks only with this tag, and stop only tasks
            # whose tag equals its own session (fargate_runners/steps.py, grant_runner).
            "tags": [{"key": self.config.owner_tag, "value": owner}],
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": list(self.config.subnets),
                    "securityGroups": list(self.config.security_groups),
                    "assignPublicIp": "ENABLED" if self.config.assign_public_ip else "DISABLED",
                }
            },
            "overrides": override,
        }
        # A cancel that arrives while RunTask is in flight is held until the task is
        # recorded, so that it can always be stopped.
        task_arn = ""
        try:
            with _signals_held():
                answer = ecs("RunTask", request)
                tasks = answer.get("tasks") or []
                if not tasks:
                    failures = answer.get("failures") or [{}]
                    reason = failures[0].get("reason", "no task and no failure reason")
                    self.say(f"::error::The step task did not start: {escape_data(str(reason))}")
                    return EXIT_NO_CODE
                task_arn = str(tasks[0]["taskArn"])
                self._record_task(task_arn)
            self.say(f"Managed command '{name}' started as step task {task_arn}")
            return self._follow(task_arn)
        except Cancelled as cancel:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if task_arn:
                self._stop(task_arn, "the runner cancelled the step")
                self.say(f"::error::Step cancelled; step task {task_arn} stopped")
            return 128 + cancel.signum
        except Exception:
            if task_arn:  # whatever went wrong here, the step does not outlive its hook
                self._stop(task_arn, "the managed-steps hook failed")
            raise

    def _follow(self, task_arn: str) -> int:
        """Print the task's log while it runs; its container's exit code."""
        ecs, _ = self._aws()
        stream = LogStream(self, task_arn)
        # Output of the step must not issue workflow commands to the runner
        # (docs.github.com "Stopping and starting workflow commands").
        token = secrets.token_hex(16)
        self.say(f"::stop-commands::{token}")
        task: dict[str, Any] | None = None
        misses = 0
        try:
            while True:
                try:
                    task = self._describe(ecs, task_arn)
                except Exception as exc:
                    self.say(f"(could not describe the step task: {escape_data(str(exc))})")
                    task = None
                misses = misses + 1 if task is None else 0
                if misses > MAX_DESCRIBE_MISSES:
                    self._stop(task_arn, "the managed-steps hook lost track of the step")
                    self.say("::error::The step task could not be followed; it was stopped")
                    return EXIT_NO_CODE
                stream.read()
                if task is not None and task.get("lastStatus") == "STOPPED":
                    break
                time.sleep(self.poll_seconds)
            deadline = time.monotonic() + self.drain_seconds
            while stream.read() and time.monotonic() < deadline:
                time.sleep(min(1.0, self.poll_seconds))
        finally:
            self.say(f"::{token}::")
        return self._exit_code(task)

    def _describe(self, ecs: Call, task_arn: str) -> dict[str, Any] | None:
        answer = ecs("DescribeTasks", {"cluster": self.config.cluster, "tasks": [task_arn]})
        tasks = answer.get("tasks") or []
        return dict(tasks[0]) if tasks else None

    def _exit_code(self, task: dict[str, Any] | None) -> int:
        containers = (task or {}).get("containers") or []
        mine = [c for c in containers if c.get("name") == self.config.container]
        code = mine[0].get("exitCode") if mine else None
        if isinstance(code, int):
            if code != 0:
                self.say(f"::error::The managed command exited with code {code}")
            return code if 0 <= code <= 255 else EXIT_NO_CODE
        reason = (task or {}).get("stoppedReason") or "unknown"
        self.say(f"::error::The step task stopped without an exit code: {escape_data(str(reason))}")
        return EXIT_NO_CODE

    def _stop(self, task_arn: str, reason: str) -> bool:
        ecs, _ = self._aws()
        try:
            ecs("StopTask", {"cluster": self.config.cluster, "task": task_arn, "reason": reason})
        except Exception as exc:
            self.say(f"::warning::Could not stop step task {task_arn}: {escape_data(str(exc))}")
            return False
        return True

    # -- cleanup_job

    def cleanup_job(self) -> int:
        tasks = self.recorded_tasks()
        if not tasks:
            return 0
        ecs, _ = self._aws()
        answer = ecs("DescribeTasks", {"cluster": self.config.cluster, "tasks": tasks})
        # A task whose stop was already asked for (cancel, the hook's own stop) needs no
        # second StopTask, and would be refused one: StopTask deletes a task's tags.
        running = [
            str(task["taskArn"])
            for task in answer.get("tasks") or []
            if task.get("desiredStatus") != "STOPPED"
        ]
        for task_arn in running:
            if self._stop(task_arn, "job ended (cleanup_job)"):
                self.say(f"Stopped step task {task_arn}")
        return 0


class LogStream:
    """The step container's awslogs stream, read forward from the start.

    The awslogs driver names it ``<prefix>/<container name>/<task id>``
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html).
    """

    def __init__(self, hook: Hook, task_arn: str) -> None:
        self.hook = hook
        config = hook.config
        self.name = f"{config.log_stream_prefix}/{config.container}/{task_arn.rsplit('/', 1)[-1]}"
        self.token: str | None = None

    def read(self) -> bool:
        """Print new lines; True if there were any."""
        _, logs = self.hook._aws()
        request: dict[str, Any] = {
            "logGroupName": self.hook.config.log_group,
            "logStreamName": self.name,
            "startFromHead": True,
        }
        if self.token:
            request["nextToken"] = self.token
        try:
            answer = logs("GetLogEvents", request)
        except Exception as exc:
            if getattr(exc, "code", "") != "ResourceNotFoundException":
                self.hook.say(f"(step log not readable: {exc})")
            return False
        events = answer.get("events") or []
        for event in events:
            self.hook.say(str(event.get("message", "")))
        token = answer.get("nextForwardToken")
        if isinstance(token, str):
            self.token = token
        return bool(events)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for the block; a held one is delivered after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _cancel(signum: int, _frame: FrameType | None) -> None:
    raise Cancelled(signum)


# -- main ----------------------------------------------------------------------------


def run(args: argparse.Namespace, env: Mapping[str, str], stdin: TextIO, out: TextIO) -> int:
    try:
        config = StepsConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
    except (OSError, ConfigProblem) as exc:
        print(f"::error::Managed steps: invalid step configuration: {exc}", file=out, flush=True)
        return EXIT_CONFIG
    if args.preflight:
        return 0
    try:
        data = json.loads(stdin.read())
    except ValueError as exc:
        print(f"::error::Managed steps: the hook input is not JSON: {exc}", file=out, flush=True)
        return EXIT_REFUSED
    if not isinstance(data, dict):
        print("::error::Managed steps: the hook input is not a JSON object", file=out, flush=True)
        return EXIT_REFUSED
    hook = Hook(
        config, Path(args.state_dir), args.policy_file, env, out, poll_seconds=args.poll_seconds
    )
    if args.admission_table:
        # Read once, no wait: the job-started hook found the record moments ago.
        hook.admission = _job_started().AdmissionSource(
            args.admission_table, args.admission_region or env.get("AWS_REGION", ""), 0.0
        )
    try:
        return hook.handle(data)
    except Exception as exc:
        return hook.refuse(f"hook error: {type(exc).__name__}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Managed-steps container hook")
    parser.add_argument("--config", required=True, help="steps.json (RUNNER_STEPS_JSON)")
    parser.add_argument("--policy-file", default="", help="the profile's policy.json")
    parser.add_argument("--state-dir", default="", help="the entrypoint's state directory")
    parser.add_argument("--preflight", action="store_true", help="validate --config only")
    parser.add_argument("--admission-table", default="", help="the admission records' table")
    parser.add_argument("--admission-region", default="", help="default: $AWS_REGION")
    parser.add_argument("--admission-wait", default="", help="accepted; the re-check waits 0 s")
    parser.add_argument("--admission-poll", default="", help="accepted; the re-check looks once")
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=POLL_SECONDS,
        help=f"seconds between two looks at a running step task (default {POLL_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if not args.poll_seconds > 0:
        parser.error("--poll-seconds must be a positive number of seconds")
    signal.signal(signal.SIGINT, _cancel)
    signal.signal(signal.SIGTERM, _cancel)
    try:
        return run(args, os.environ, sys.stdin, sys.stdout)
    except Cancelled as cancel:
        return 128 + cancel.signum


if __name__ == "__main__":
    sys.exit(main())
