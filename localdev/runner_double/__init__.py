"""A double of the GitHub Actions runner, for the runner task's entrypoint and hook.

``install(root)`` lays out in ``root`` what the ``actions-runner`` image has in
``/home/runner``: ``run.sh``, ``run-helper.sh.template`` and ``bin/Runner.Listener`` /
``bin/Runner.Worker`` (launchers of :mod:`localdev.runner_double.processes`). The
process tree, the signal handling and the step semantics follow the real runner (see
``processes.py`` and docs/runner.md); GitHub's side is the ``_double`` folder that
:class:`RunnerDouble` reads and writes.

A job is a dict::

    {"name": "deploy",
     "github": {"repository": "octo/app", "ref": "refs/heads/main",
                "workflow_ref": "octo/app/.github/workflows/deploy.yml@refs/heads/main",
                "event_name": "push", "event": {...}},
     "env": {...},                 # job-level env (never reaches the job-started hook)
     "container": "image:tag",    # optional job container
     "setup_seconds": 0.5,         # how long "Set up job" takes (downloading actions)
     "steps": [{"name": "build", "run": "make", "if": "always()", "env": {...},
                "pre": "...", "pre_if": "always()", "post": "...", "post_if": "always()"}]}
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_fn.contract import RUNNER_VERSION
from localdev.runner_double.processes import STATE_DIR, write_launchers

HERE = Path(__file__).resolve().parent
LAYOUT = HERE / "layout"


@dataclass(frozen=True)
class Event:
    at: float
    who: str  # listener | worker | github
    pid: int
    what: str


@dataclass(frozen=True)
class RunnerDouble:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    def offer(self, job: dict[str, Any]) -> None:
        """GitHub assigns ``job`` to this runner (atomically, as one message)."""
        inbox = self.state / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        pending = inbox / ".job.json"
        pending.write_text(json.dumps(job), encoding="utf-8")
        pending.rename(inbox / "job.json")

    def offer_update(self, target_version: str, download_seconds: float = 0.2) -> None:
        """GitHub tells this runner to update itself first (a ``RunnerRefreshMessage``), as it
        does for an outdated runner when a job is assigned (docs/runner.md)."""
        inbox = self.state / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        pending = inbox / ".update.json"
        pending.write_text(
            json.dumps({"target_version": target_version, "download_seconds": download_seconds}),
            encoding="utf-8",
        )
        pending.rename(inbox / "update.json")

    def refuse_versions_below(self, version: str) -> None:
        """GitHub refuses message polls of runners older than ``version`` (enforcement)."""
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "minimum_version").write_text(version, encoding="utf-8")

    def cancel(self) -> None:
        """The user cancels the job (GitHub sends the runner a cancel message)."""
        (self.state / "inbox").mkdir(parents=True, exist_ok=True)
        (self.state / "inbox" / "cancel").touch()

    def events(self) -> list[Event]:
        path = self.state / "events.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(encoding="utf-8").splitlines():
            at, process, what = line.split(" ", 2)
            who, pid = process.rstrip("]").split("[", 1)
            found.append(Event(float(at), who, int(pid), what))
        return found

    def said(self, text: str) -> bool:
        return any(text in event.what for event in self.events())

    def job_log(self) -> str:
        path = self.state / "job.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def result(self) -> dict[str, str] | None:
        path = self.state / "result.json"
        if not path.exists():
            return None
        result: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return result


def install(
    root: Path, python: str = sys.executable, version: str = RUNNER_VERSION
) -> RunnerDouble:
    """Lay the double out in ``root`` (the runner's home) and return its handle; its
    ``bin/Runner.Listener --version`` prints ``version``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("run.sh", "run-helper.sh.template"):
        shutil.copyfile(LAYOUT / name, root / name)
        (root / name).chmod(0o755)
    write_launchers(root / "bin", version, python)
    (root / STATE_DIR / "inbox").mkdir(parents=True, exist_ok=True)
    return RunnerDouble(root)


def configured_files(agent_name: str = "runner-double") -> dict[str, bytes]:
    """What a JIT config holds, file name to content (values are base64 in the config)."""
    return {
        ".runner": json.dumps({"agentName": agent_name, "ephemeral": True}).encode(),
        ".credentials": json.dumps({"scheme": "OAuth", "data": {"clientId": "x"}}).encode(),
        ".credentials_rsaparams": json.dumps({"d": "secret-key-material"}).encode(),
    }


def jit_config(files: dict[str, bytes] | None = None) -> str:
    """An ``encoded_jit_config`` as GitHub returns it: base64 of ``{file: base64}``."""
    import base64

    entries = {
        name: base64.b64encode(content).decode()
        for name, content in (files or configured_files()).items()
    }
    return base64.b64encode(json.dumps(entries).encode()).decode()


__all__ = ["Event", "RunnerDouble", "configured_files", "install", "jit_config"]
