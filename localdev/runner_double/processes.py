"""Runner double: the ``Runner.Listener`` and ``Runner.Worker`` processes.

Written for this repository from the behaviour of actions/runner v2.332.0 (paths are
in that repository; docs/runner.md lists the facts). Standard library only: the
generated ``bin/Runner.Listener`` and ``bin/Runner.Worker`` launchers import this
file by path and call :func:`main`.

Listener (``src/Runner.Listener/Runner.cs``, ``JobDispatcher.cs``):

* ``ACTIONS_RUNNER_INPUT_JITCONFIG`` is base64 of a JSON object ``{file: base64}``;
  each entry is written as a file in the runner root (``.runner``, ``.credentials``,
  ``.credentials_rsaparams``) and the variable is not passed to the Worker. Without
  it, the files must already be there (``LoadSettings``), else exit 1.
* SIGINT (``Console.CancelKeyPress``) and SIGTERM (``AssemblyLoadContext.Unloading``)
  shut the runner down. A SIGINT that was *ignored* when the process started stays
  ignored: .NET does not install a handler over an inherited ``SIG_IGN``
  (dotnet/runtime ``src/native/libs/System.Native/pal_signal.c``). After SIGTERM the
  process exits at the latest ``ExitOnUnloadTimeout`` (30 s) later.
* Shutting down with a job running sends ``RunnerShutdown`` to the Worker and waits
  for it to exit (no kill timeout on that path), then completes the job, deletes the
  session and, for an ephemeral (JIT) runner, its local config files; exit code 0.
* A Worker that exits with a code outside 100-105 crashed: the job fails.

Versions and updates (actions/runner v2.332.0 and v2.336.0, same unless marked):

* ``Runner.Listener --version`` prints the runner version and exits 0 (``Runner.cs``,
  ``command.Version``).
* An outdated runner gets a refresh message instead of its job (GitHub updates a
  self-hosted runner "when a job is assigned", docs.github.com "Communicating with
  self-hosted runners"): the Listener downloads the target version into
  ``bin.<version>``, starts the update script (``src/Misc/layoutbin/update.sh.template``:
  wait for the Listener's pid to be gone, move ``bin`` to ``bin.<old>``, symlink ``bin``
  to ``bin.<new>``, ``touch update.finished`` in its working directory) and exits 4
  (``RunOnceRunnerUpdating``; 3 for a non-ephemeral runner) without touching the job,
  which stays queued for the updated runner (``Runner.cs``: job messages are not deleted
  while ``autoUpdateInProgress``; ``SelfUpdaterV2.cs``). Its config files stay: an
  ephemeral runner deletes them only after its job.
* A runner whose version GitHub refuses gets ``RunnerVersionTooOld`` from the broker
  (``BrokerHttpClient.cs``: ``AccessDeniedException{ErrorCode=1}``); the Listener writes
  "An error occurred: ..." and exits 1, or 7 (``ReturnCode.RunnerVersionDeprecated``) from
  v2.333.0 when ``ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE`` is true
  (``Program.cs``, ``GetRunnerVersionDeprecatedExitCode``).

Worker (``src/Runner.Worker/``):

* SIGINT does not end it (``Terminal`` cancels Ctrl-C so the Listener drives the stop);
  SIGTERM shuts the runner down like ``RunnerShutdown`` (``Worker_Unloading``).
* "Set up job" (``JobExtension.InitializeJob``): with
  ``ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true`` a job without ``container`` fails here
  and nothing else runs; then actions are downloaded (``setup_seconds`` models it);
  then the pre-job steps are, in order: the job-started hook
  (``ACTIONS_RUNNER_HOOK_JOB_STARTED``, display name "Set up runner", condition
  ``always()``, the Worker's environment plus ``GITHUB_*``/``RUNNER_*`` but not the
  job's ``env``), "Initialize containers" (``success()``, through
  ``ACTIONS_RUNNER_CONTAINER_HOOKS`` ``prepare_job``) and action ``pre`` steps
  (``pre-if`` default ``always()``, ``ActionManifestManager.cs``).
* Every step's condition is evaluated when it is reached (``StepsRunner.cs``); a
  failed step does not stop the job: ``always()``, ``failure()`` and ``!cancelled()``
  steps still run. An action's ``post`` step is registered when its main step runs
  and runs after the main steps in reverse order (``post-if`` default ``always()``).
* On runner shutdown no condition is evaluated any more: every remaining step is
  skipped, and a running step is cancelled. On a job cancel (``CancelRequest``) the
  running step's condition is evaluated again and the step keeps running if it still
  holds; later steps run only if their condition holds for a cancelled job.
* Cancelling a step process (``Runner.Sdk/ProcessInvoker.cs``): SIGINT, 7.5 s, SIGTERM,
  2.5 s, then the process tree is killed.
* The job's result: a user cancel ends it ``Canceled``; a runner shutdown once its steps
  have started ends it ``Failed`` (``StepsRunner.cs`` sets ``Failed`` when the runner
  shutdown token is cancelled), with the error "The runner has received a shutdown
  signal..." in its log (``JobRunner.cs``); a shutdown during "Set up job" ends it
  ``Canceled`` (``JobRunner.cs``, cancelled during initialize). For a GitHub (run
  service) job the Worker's result is the one GitHub records: the Listener skips its
  own completion call (``JobDispatcher.cs``, ``CompleteJobRequestAsync``).
* Worker exit code = 100 + ``TaskResult`` (Succeeded 0, Failed 2, Canceled 3).

A step here is a shell script run with ``bash --noprofile --norc -e -o pipefail``
(``ScriptHandlerHelpers.cs``); an action's ``pre``/``main``/``post`` are shell scripts
too (the double does not run node). ``RUNNER_DOUBLE_TIME_SCALE`` (default 1) scales
the 7.5/2.5/30 s timeouts so tests can run quickly.

GitHub's side is a folder, ``<root>/_double``: ``inbox/job.json`` (a job offered to
this runner), ``inbox/cancel`` (the user cancelled it), ``events.log``, ``job.log``
and ``result.json``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG"
HOOK_JOB_STARTED_ENV = "ACTIONS_RUNNER_HOOK_JOB_STARTED"
CONTAINER_HOOKS_ENV = "ACTIONS_RUNNER_CONTAINER_HOOKS"
REQUIRE_JOB_CONTAINER_ENV = "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"
STATE_DIR = "_double"
RUNNER_FILES = (".runner", ".credentials", ".credentials_rsaparams")

#: The error JobRunner.cs adds to the job when the runner shuts down (ShutdownReason.UserCancelled).
SHUTDOWN_ISSUE = (
    "The runner has received a shutdown signal. This can happen when the runner service "
    "is stopped, or a manually started runner is canceled."
)
#: TaskResult values; the Worker exits with 100 + the value (TaskResultUtil.cs).
TASK_RESULTS = {"Succeeded": 0, "SucceededWithIssues": 1, "Failed": 2, "Canceled": 3}
RETURN_CODE_OFFSET = 100
SIGINT_TIMEOUT = 7.5  # ProcessInvoker._sigintTimeout
SIGTERM_TIMEOUT = 2.5  # ProcessInvoker._sigtermTimeout
EXIT_ON_UNLOAD_TIMEOUT = 30.0  # Constants.Runner.ExitOnUnloadTimeout
STEP_SHELL = ("bash", "--noprofile", "--norc", "-e", "-o", "pipefail")
VERSION_DEPRECATED_EXIT_ENV = "ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE"
#: The first release whose Listener can exit 7 (actions/runner PR #4285).
VERSION_DEPRECATED_EXIT_SINCE = (2, 333, 0)
#: What update.sh.template does on Linux, in short (module docstring).
UPDATE_SCRIPT = """
while [ -e /proc/{pid} ]; do sleep 0.1; done
mv -f "{root}/bin" "{root}/bin.{old}"
ln -s "{root}/bin.{new}" "{root}/bin"
touch update.finished
"""
_LAUNCHER = """#!{python}
# Runner double launcher (generated by localdev.runner_double.install).
import sys
from pathlib import Path

sys.path.insert(0, {source!r})
from processes import main

sys.exit(main({program!r}, sys.argv[1:], Path(__file__).absolute().parent.parent, {version!r}))
"""


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def write_launchers(bin_dir: Path, version: str, python: str) -> None:
    """``bin_dir/Runner.Listener`` and ``Runner.Worker`` of runner ``version``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    source = str(Path(__file__).resolve().parent)
    for program in ("Runner.Listener", "Runner.Worker"):
        launcher = bin_dir / program
        launcher.write_text(
            _LAUNCHER.format(python=python, source=source, program=program, version=version)
        )
        launcher.chmod(0o755)


STATUS_FUNCTIONS = ("always()", "success()", "failure()", "cancelled()")


def time_scale() -> float:
    return float(os.environ.get("RUNNER_DOUBLE_TIME_SCALE", "1"))


class Broker:
    """GitHub's side of one runner, as files under ``<root>/_double``."""

    def __init__(self, root: Path) -> None:
        self.dir = root / STATE_DIR
        (self.dir / "inbox").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _append(self, name: str, line: str) -> None:
        with self._lock, (self.dir / name).open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def event(self, who: str, what: str) -> None:
        self._append("events.log", f"{time.time():.3f} {who}[{os.getpid()}] {what}")

    def log(self, line: str) -> None:
        self._append("job.log", line)

    def take_job(self) -> dict[str, Any] | None:
        offered = self.dir / "inbox" / "job.json"
        taken = self.dir / "taken.json"
        try:
            offered.rename(taken)
        except FileNotFoundError:
            return None
        job: dict[str, Any] = json.loads(taken.read_text(encoding="utf-8"))
        return job

    def take_update(self) -> dict[str, Any] | None:
        offered = self.dir / "inbox" / "update.json"
        try:
            text = offered.read_text(encoding="utf-8")
            offered.unlink()
        except FileNotFoundError:
            return None
        update: dict[str, Any] = json.loads(text)
        return update

    def minimum_version(self) -> str | None:
        path = self.dir / "minimum_version"
        return path.read_text(encoding="utf-8").strip() if path.exists() else None

    def cancel_requested(self) -> bool:
        return (self.dir / "inbox" / "cancel").exists()

    def complete(self, name: str, result: str, detail: str = "") -> None:
        record = {"job": name, "result": result, "detail": detail}
        (self.dir / "result.json").write_text(json.dumps(record), encoding="utf-8")
        self.event("github", f"job '{name}' completed: {result}")


def _utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())


def process_table() -> dict[int, list[str]]:
    """Every process: pid -> the /proc/<pid>/stat fields after the command name
    (state, ppid, pgrp, session, ...)."""
    table: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
    return table


def alive(pid: int) -> bool:
    """Running (a zombie has exited; only its parent has not collected it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def session_members(sid: int) -> list[int]:
    """Processes whose session id is ``sid``."""
    return [pid for pid, fields in process_table().items() if int(fields[3]) == sid]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (by parent pid in /proc)."""
    children: dict[int, list[int]] = {}
    for child, fields in process_table().items():
        children.setdefault(int(fields[1]), []).append(child)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill_tree(pid: int) -> None:
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


# --- Listener ----------------------------------------------------------------------------


class Listener:
    def __init__(self, root: Path, version: str = "") -> None:
        self.root = root
        self.version = version
        self.broker = Broker(root)
        self.shutdown = threading.Event()

    def install_signal_handlers(self) -> None:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            self.broker.event("listener", "SIGINT ignored at start: stays ignored")
        else:
            signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        print("Exiting...", flush=True)
        self.broker.event("listener", "SIGINT: runner shutdown")
        self.shutdown.set()

    def _on_sigterm(self, _signum: int, _frame: FrameType | None) -> None:
        self.broker.event("listener", "SIGTERM: runner shutdown")
        self.shutdown.set()

        def exit_after_unload_timeout() -> None:
            time.sleep(EXIT_ON_UNLOAD_TIMEOUT * time_scale())
            self.broker.event("listener", "exit after the unload timeout")
            os._exit(143)

        threading.Thread(target=exit_after_unload_timeout, daemon=True).start()

    def write_jit_files(self, encoded: str) -> str | None:
        """Do what Runner.cs does with a JIT config; an error message, or None."""
        try:
            entries = json.loads(base64.b64decode(encoded, validate=True))
            for name, content in entries.items():
                (self.root / name).write_bytes(base64.b64decode(content, validate=True))
        except (ValueError, binascii.Error, AttributeError, OSError) as exc:
            return f"invalid JIT config: {exc}"
        return None

    def run(self) -> int:
        encoded = os.environ.pop(JIT_CONFIG_ENV, "")
        if encoded:
            error = self.write_jit_files(encoded)
            if error:
                print(error, file=sys.stderr, flush=True)
                return 1
        try:
            settings = json.loads((self.root / ".runner").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print("Not configured. Run config.(sh/cmd) to configure the runner.", flush=True)
            return 1
        refused = self.version_refused()
        if refused is not None:
            return refused
        self.broker.event(
            "listener",
            f"session created for {settings.get('agentName', '?')} (runner {self.version})",
        )
        print("\u221a Connected to GitHub", flush=True)
        print(f"{_utc()}: Listening for Jobs", flush=True)
        job: dict[str, Any] | None = None
        while not self.shutdown.is_set():
            update = self.broker.take_update()
            if update is not None:
                return self.self_update(update)
            job = self.broker.take_job()
            if job is not None:
                break
            self.shutdown.wait(0.05)
        if job is not None:
            self.run_job(job)
        self.broker.event("listener", "session deleted")
        if job is not None:  # an ephemeral runner removes its config after its one job
            for name in RUNNER_FILES:
                (self.root / name).unlink(missing_ok=True)
        self.broker.event("listener", "exit 0")
        return 0

    def version_refused(self) -> int | None:
        """The broker's ``RunnerVersionTooOld`` answer, as ``Program.cs`` turns it into an
        exit code; None when this version is served."""
        minimum = self.broker.minimum_version()
        if minimum is None or _version(self.version) >= _version(minimum):
            return None
        print(
            f"An error occurred: Runner version v{self.version} is deprecated and cannot "
            "receive messages.",
            file=sys.stderr,
            flush=True,
        )
        self.broker.event("listener", f"runner version {self.version} refused")
        flag = os.environ.get(VERSION_DEPRECATED_EXIT_ENV, "").lower() in ("1", "true")
        if flag and _version(self.version) >= VERSION_DEPRECATED_EXIT_SINCE:
            return 7
        return 1

    def self_update(self, update: Mapping[str, Any]) -> int:
        """``SelfUpdaterV2.SelfUpdate`` for an ephemeral runner (module docstring)."""
        target = str(update["target_version"])
        print("Runner update in progress, do not shutdown runner.", flush=True)
        print(f"Downloading {target} runner", flush=True)
        time.sleep(float(update.get("download_seconds", 0)))
        write_launchers(self.root / f"bin.{target}", target, sys.executable)
        script = UPDATE_SCRIPT.format(pid=os.getpid(), root=self.root, old=self.version, new=target)
        subprocess.Popen(["bash", "-c", script])  # noqa: S603, S607 - the update script
        self.broker.event("listener", f"self-update {self.version} -> {target}; exit 4")
        print("Runner will exit shortly for update, should be back online within 10 seconds.")
        return 4

    def run_job(self, job: Mapping[str, Any]) -> None:
        name = str(job.get("name", "job"))
        print(f"{_utc()}: Running job: {name}", flush=True)
        worker = subprocess.Popen(  # noqa: S603 - our own Worker launcher
            [str(self.root / "bin" / "Runner.Worker"), "spawnclient", "0", "1"],
            stdin=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        self.broker.event("listener", f"job '{name}' assigned; worker {worker.pid} started")
        channel = worker.stdin
        assert channel is not None
        send(channel, json.dumps(job))
        sent: set[str] = set()
        while True:
            try:
                code = worker.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            message = ""
            if self.shutdown.is_set():
                message = "RunnerShutdown"
            elif self.broker.cancel_requested():
                message = "CancelRequest"
            if message and message not in sent:
                sent.add(message)
                self.broker.event("listener", f"sent {message} to the worker")
                if not send(channel, message):
                    _kill_tree(worker.pid)
        detail = ""
        if RETURN_CODE_OFFSET <= code < RETURN_CODE_OFFSET + 6:
            result = next(
                (k for k, v in TASK_RESULTS.items() if v == code - RETURN_CODE_OFFSET), "Failed"
            )
        else:
            result, detail = "Failed", f"worker crashed with exit code {code}"
        self.broker.complete(name, result, detail)
        print(f"{_utc()}: Job {name} completed with result: {result}", flush=True)


def send(channel: IO[str], message: str) -> bool:
    try:
        channel.write(message + "\n")
        channel.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True


# --- Worker ------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    condition: str
    script: str
    kind: str = "run"  # run | hook | container
    post: Step | None = None
    env: dict[str, str] = field(default_factory=dict)


def evaluate(condition: str, status: str) -> bool:
    """A step condition for job status ``success``, ``failure`` or ``cancelled``.

    The grammar is what the tests need: status functions, ``true``/``false``, ``!``,
    ``&&`` and ``||`` (no parentheses). As on GitHub, a condition without a status
    function means ``success() && (<condition>)``.
    """
    text = condition.strip().removeprefix("${{").removesuffix("}}").strip() or "success()"
    if not any(function in text for function in STATUS_FUNCTIONS):
        text = f"success() && {text}"
    values = {
        "always()": True,
        "success()": status == "success",
        "failure()": status == "failure",
        "cancelled()": status == "cancelled",
        "true": True,
        "false": False,
    }

    def atom(token: str) -> bool:
        token = token.strip()
        negate = token.startswith("!")
        token = token.removeprefix("!").strip()
        if token not in values:
            raise ValueError(f"unsupported condition term {token!r}")
        return values[token] != negate

    return any(all(atom(term) for term in part.split("&&")) for part in text.split("||"))


class Worker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = Broker(root)
        self.shutdown = threading.Event()
        self.cancelled = threading.Event()
        self.failed = False
        self.temp = root / "_work" / "_temp"

    def install_signal_handlers(self) -> None:
        # Ctrl-C is cancelled (the Worker lives on); as in .NET, an inherited SIG_IGN stays,
        # and steps then start with SIGINT ignored too (exec keeps SIG_IGN, resets handlers).
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, lambda _signum, _frame: None)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, _signum: int, _frame: FrameType | None) -> None:
        self.broker.event("worker", "SIGTERM: runner shutdown")
        self._shut_down()

    def _shut_down(self) -> None:
        self.shutdown.set()
        self.cancelled.set()

    def read_channel(self, channel: IO[str]) -> None:
        for line in channel:
            message = line.strip()
            self.broker.event("worker", f"received {message}")
            if message == "RunnerShutdown":
                self._shut_down()
            elif message == "CancelRequest":
                self.cancelled.set()

    def status(self) -> str:
        if self.cancelled.is_set():
            return "cancelled"
        return "failure" if self.failed else "success"

    def run(self, channel: IO[str]) -> int:
        job: dict[str, Any] = json.loads(channel.readline())
        threading.Thread(target=self.read_channel, args=(channel,), daemon=True).start()
        result = self.run_job(job)
        self.broker.event("worker", f"job result {result}")
        return RETURN_CODE_OFFSET + TASK_RESULTS[result]

    def base_env(self, job: Mapping[str, Any]) -> dict[str, str]:
        github: Mapping[str, Any] = job.get("github", {})
        event_path = self.temp / "_github_workflow" / "event.json"
        event_path.parent.mkdir(parents=True, exist_ok=True)
        event_path.write_text(json.dumps(github.get("event", {})), encoding="utf-8")
        env = dict(os.environ)
        env.update(
            {
                "GITHUB_ACTIONS": "true",
                "CI": "true",
                "GITHUB_EVENT_PATH": str(github.get("event_path", event_path)),
                "RUNNER_TEMP": str(self.temp),
                "RUNNER_WORKSPACE": str(self.root / "_work"),
            }
        )
        # A few of the run's GITHUB_* (actions/runner src/Runner.Worker/GitHubContext.cs,
        # the allow-list: repository, ref, workflow_ref, event_name, sha, run_id, run_attempt).
        for key in (
            "repository", "ref", "workflow_ref", "event_name", "sha", "run_id", "run_attempt",
        ):  # fmt: skip
            if key in github:
                env[f"GITHUB_{key.upper()}"] = str(github[key])
        return env

    def plan(self, job: Mapping[str, Any]) -> list[Step]:
        steps: list[Step] = []
        hook = os.environ.get(HOOK_JOB_STARTED_ENV)
        if hook:
            steps.append(Step("Set up runner", "always()", hook, kind="hook"))
        if job.get("container"):
            steps.append(Step("Initialize containers", "success()", "", kind="container"))
        main: list[Step] = []
        for spec in job.get("steps", []):
            name = str(spec.get("name", "step"))
            step = Step(name, str(spec.get("if", "success()")), str(spec.get("run", "")))
            step.env = {str(k): str(v) for k, v in spec.get("env", {}).items()}
            if "pre" in spec:
                steps.append(Step(f"Pre {name}", str(spec.get("pre_if", "always()")), spec["pre"]))
            if "post" in spec:
                step.post = Step(f"Post {name}", str(spec.get("post_if", "always()")), spec["post"])
            main.append(step)
        return steps + main

    def run_job(self, job: Mapping[str, Any]) -> str:
        self.broker.event("worker", "step 'Set up job' started")
        if os.environ.get(REQUIRE_JOB_CONTAINER_ENV, "").lower() == "true" and not job.get(
            "container"
        ):
            self.broker.log(
                "##[error]Jobs without a job container are forbidden on this runner, please "
                "add a 'container:' to your job or contact your self-hosted runner administrator."
            )
            return "Failed"
        if self.cancelled.wait(float(job.get("setup_seconds", 0))):
            self._log_shutdown_issue()
            return "Canceled"
        base = self.base_env(job)
        job_env = {str(k): str(v) for k, v in job.get("env", {}).items()}
        posts: list[Step] = []
        for step in self.plan(job):
            if self.run_step(step, base, job_env, job) and step.post is not None:
                posts.append(step.post)
        for post in reversed(posts):
            self.run_step(post, base, job_env, job)
        self._log_shutdown_issue()
        if self.shutdown.is_set():
            return "Failed"  # StepsRunner.cs: Failed, not Canceled, on a runner shutdown
        if self.cancelled.is_set():
            return "Canceled"
        return "Failed" if self.failed else "Succeeded"

    def _log_shutdown_issue(self) -> None:
        """JobRunner.cs logs this error when the runner shuts down during the job.

        Logged here, from the job's thread, rather than from the signal handler: the
        handler may interrupt a thread that holds the log's lock.
        """
        if self.shutdown.is_set():
            self.broker.log(f"##[error]{SHUTDOWN_ISSUE}")

    def run_step(
        self, step: Step, base: Mapping[str, str], job_env: Mapping[str, str], job: Any
    ) -> bool:
        """Run one step if its condition holds; True when it ran."""
        if self.shutdown.is_set():
            self.broker.event("worker", f"step '{step.name}' skipped (runner shutdown)")
            return False
        try:
            holds = evaluate(step.condition, self.status())
        except ValueError as exc:
            self.broker.log(f"##[error]{exc}")
            self.failed = True
            return False
        if not holds:
            self.broker.event("worker", f"step '{step.name}' skipped (condition)")
            return False
        self.broker.event("worker", f"step '{step.name}' started")
        code: int | None
        if step.kind == "container":
            code = self.prepare_containers(base, job)
        else:
            env = dict(base)
            if step.kind == "hook":  # JobHookProvider: no job `env:`
                self.broker.log(
                    f"[{step.name}] A job started hook has been configured by the "
                    "self-hosted runner administrator"
                )
                command = [*STEP_SHELL, step.script]
            else:
                env.update(job_env)
                env.update(step.env)
                script = self.temp / f"{uuid.uuid4()}.sh"
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(step.script, encoding="utf-8")
                command = [*STEP_SHELL, str(script)]
            code = self.run_process(step, command, env)
        outcome = "cancelled" if code is None else ("success" if code == 0 else "failure")
        self.broker.event("worker", f"step '{step.name}' {outcome}")
        if outcome == "failure":
            self.failed = True
        return True

    def prepare_containers(self, base: Mapping[str, str], job: Any) -> int:
        hooks = os.environ.get(CONTAINER_HOOKS_ENV)
        if not hooks:
            self.broker.log("##[error]Docker is not available on this runner")
            return 1
        request = {
            "command": "prepare_job",
            "responseFile": str(self.temp / "response.json"),
            "args": {"container": {"image": str(job.get("container"))}},
        }
        step = Step("Initialize containers", "success()", hooks, kind="container")
        code = self.run_process(step, [*STEP_SHELL, hooks], dict(base), json.dumps(request))
        return 1 if code is None else code

    def run_process(
        self, step: Step, command: list[str], env: Mapping[str, str], stdin: str = ""
    ) -> int | None:
        """Exit code, or None when the step was cancelled."""
        process = subprocess.Popen(  # noqa: S603 - the job's own step, as the runner runs it
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env),
            cwd=self.root,
        )
        assert process.stdin is not None and process.stdout is not None
        # A step may exit without reading its input (a container hook that refuses at
        # once). The runner writes stdin from a background task (ProcessInvoker.cs,
        # StartWriteStream, actions/runner v2.332.0), so a failed write never stops it from
        # taking the exit code; the double does the same.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        output = process.stdout

        def copy_output() -> None:
            for line in output:
                self.broker.log(f"[{step.name}] {line.rstrip()}")

        reader = threading.Thread(target=copy_output)
        reader.start()
        cancelling: threading.Thread | None = None
        while True:
            try:
                code = process.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancelling is None and self.cancelled.is_set() and self._stop_running(step):
                cancelling = threading.Thread(target=self.cancel_process, args=(process.pid,))
                cancelling.start()
        # The step's output is copied until its pipe closes; a loaded machine can take
        # seconds to drain it (5 s lost the container hook's last line under CI load). A
        # process the step left behind holding the pipe only delays the step this long.
        reader.join(timeout=30)
        return None if cancelling is not None else code

    def _stop_running(self, step: Step) -> bool:
        """On cancel the running step's condition is tested again; never on shutdown."""
        if self.shutdown.is_set():
            return True
        try:
            return not evaluate(step.condition, "cancelled")
        except ValueError:
            return True

    def cancel_process(self, pid: int) -> None:
        scale = time_scale()
        for sig, wait in ((signal.SIGINT, SIGINT_TIMEOUT), (signal.SIGTERM, SIGTERM_TIMEOUT)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait * scale
            while time.monotonic() < deadline:
                if not alive(pid):
                    return
                time.sleep(0.02)
        self.broker.event("worker", f"killing the process tree of {pid}")
        _kill_tree(pid)


def main(program: str, argv: list[str], root: Path, version: str = "") -> int:
    """Entry point of the generated ``bin/Runner.Listener`` and ``bin/Runner.Worker``."""
    roles: dict[str, Callable[[], int]] = {}

    def listener() -> int:
        if argv[:1] == ["--version"]:
            print(version, flush=True)
            return 0
        if argv[:1] != ["run"]:
            print("usage: Runner.Listener run", file=sys.stderr)
            return 1
        process = Listener(root, version)
        process.install_signal_handlers()
        return process.run()

    def worker() -> int:
        process = Worker(root)
        process.install_signal_handlers()
        return process.run(sys.stdin)

    roles.update({"Runner.Listener": listener, "Runner.Worker": worker})
    return roles[program]()
