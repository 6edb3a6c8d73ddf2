"""What the runner task receives besides its image: the entrypoint, hook and policy.

There is no custom image to build: the task definition's command is
``bash -c <runner/entrypoint.sh>`` and the hook code travels as gzip+base64
environment values (non-secret), so the stock ``actions-runner`` image
enforces the profile's policy and
fetches its own JIT config. Plain Python (no ``aws_cdk``) so tests and
local tools can build the same values.
"""

from __future__ import annotations

import base64
import gzip
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambda_fn import admission_record, policy
from lambda_fn.contract import TASK_IDLE_TIMEOUT_ENV
from lambda_fn.policy import Policy

#: The task's files, shipped inside this package (package data), so an installed wheel has them.
RUNNER_DIR = Path(__file__).resolve().parent / "runner"
ENTRYPOINT = RUNNER_DIR / "entrypoint.sh"
HOOK = RUNNER_DIR / "job_started.py"
JIT_FETCH = RUNNER_DIR / "jit_config.py"
AWS_CALL = RUNNER_DIR / "aws_call.py"
STEPS_HOOK = RUNNER_DIR / "managed_steps.py"
#: The task runs the Lambda's own policy module: one implementation of the rules.
POLICY_MODULE = Path(policy.__file__).resolve()
#: ... and its own admission record format (what dispatch writes, the hook reads).
ADMISSION_MODULE = Path(admission_record.__file__).resolve()


def encode(path: Path) -> str:
    """gzip (fixed mtime, so synth output is stable) then base64."""
    return base64.b64encode(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)).decode()


def entrypoint_command() -> list[str]:
    """The container command: the entrypoint script, run by the image's bash."""
    return ["bash", "-c", ENTRYPOINT.read_text()]


#: The container's ``stopTimeout``: how long ECS waits after SIGTERM before SIGKILL.
#: 120 s is Fargate's maximum (the default is 30 s), so a cancelled job's steps get the
#: runner's own 7.5 s SIGINT + 2.5 s SIGTERM and the Worker can still upload the log.
STOP_TIMEOUT_SECONDS = 120
#: The entrypoint's grace before it kills the runner's session: inside ``stopTimeout``,
#: with time left to kill what remains and exit before ECS's SIGKILL.
STOP_GRACE_SECONDS = STOP_TIMEOUT_SECONDS - 15


def runner_environment(
    policy: Policy, idle_timeout_seconds: int, admission: tuple[str, str] | None = None
) -> dict[str, str]:
    """Environment of the runner container in the task definition (nothing secret).

    ``admission`` is (table name, region) of the admission records, for a restricted
    ``policy`` (its hook refuses every job without it; docs/admission.md).
    """
    if policy.restricted and admission is None:
        raise ValueError(f"profile {policy.profile}: a restricted profile needs admission records")
    return {
        "RUNNER_POLICY_JSON": policy.to_json(),
        "RUNNER_POLICY_PY_GZ_B64": encode(POLICY_MODULE),
        "RUNNER_HOOK_PY_GZ_B64": encode(HOOK),
        "RUNNER_JIT_PY_GZ_B64": encode(JIT_FETCH),
        "RUNNER_AWS_PY_GZ_B64": encode(AWS_CALL),
        "RUNNER_ADMISSION_PY_GZ_B64": encode(ADMISSION_MODULE),
        **(
            {"RUNNER_ADMISSION_TABLE": admission[0], "RUNNER_ADMISSION_REGION": admission[1]}
            if admission is not None and policy.restricted
            else {}
        ),
        TASK_IDLE_TIMEOUT_ENV: str(idle_timeout_seconds),
        "RUNNER_STOP_GRACE_SECONDS": str(STOP_GRACE_SECONDS),
    }


def runner_version_environment(profile: str, version: str | None) -> dict[str, str]:
    """What the entrypoint needs to report the runner version it finds (docs/runner.md)."""
    env = {"RUNNER_PROFILE": profile}
    if version:
        env["RUNNER_EXPECTED_VERSION"] = version
    return env


#: ``runner_event`` values of the entrypoint's JSON log lines -> the metric each one counts
#: (a metric filter on the runner log group, dimension ``profile``; docs/runner.md).
RUNNER_EVENT_METRICS = {
    "self_update": "RunnerSelfUpdates",
    "version_refused": "RunnerVersionRefused",
}


#: The step container's user: not root (any uid works without an /etc/passwd entry).
STEP_USER = "1000"
#: Exit code of the step dispatcher for a name that is not a managed command.
STEP_REFUSED_EXIT = 126


def step_entry_point(commands: Mapping[str, Sequence[str]]) -> list[str]:
    """The step container's fixed entry point: name (the one command override) -> argv.

    ECS lets ``RunTask`` override a container's ``command`` but not its
    ``entryPoint`` (API_ContainerOverride), so whoever may start a step task can
    choose only among the managed commands, never run anything else in the step image.
    """
    cases = "".join(
        f"  {shlex.quote(name)}) exec {shlex.join(argv)} ;;\n" for name, argv in commands.items()
    )
    script = (
        'case "${1-}" in\n'
        f"{cases}"
        '  *) echo "managed step: not a managed command: ${1-}" >&2; '
        f"exit {STEP_REFUSED_EXIT} ;;\n"
        "esac\n"
    )
    # sh -c SCRIPT NAME ARG...: $0 = "managed-step", $1 = the command override.
    return ["/bin/sh", "-c", script, "managed-step"]


def steps_environment(steps_json: str) -> dict[str, str]:
    """What a managed-steps runner container gets besides :func:`runner_environment`.

    ``steps_json`` is the hook's configuration (``managed_steps.StepsConfig``).
    """
    return {"RUNNER_STEPS_JSON": steps_json, "RUNNER_STEPS_PY_GZ_B64": encode(STEPS_HOOK)}
