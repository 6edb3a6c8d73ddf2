"""Fargate running step tasks: the part of ECS that moto does not model.

moto's ``RunTask`` creates a task that stays ``RUNNING`` until ``StopTask``,
which marks it ``STOPPED`` at once with exit code 0; no container ever runs,
so nothing writes a log, exits non-zero or takes time to stop. This double
plays the container for each task it sees in one cluster of a moto server
running **in this process** (``localdev.moto_server``):

* it writes the command's log lines to the task's awslogs stream
  (``<prefix>/<container>/<task id>``, as the awslogs driver names it:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html)
  through the real CloudWatch Logs API of that moto server;
* after ``seconds`` it stops the task with the command's exit code
  (``containers[].exitCode``, ``stoppedReason`` "Essential container in task
  exited", as ECS reports an essential container's exit);
* a ``StopTask`` sends SIGTERM: ECS keeps ``lastStatus`` short of ``STOPPED``
  until the container has exited (up to its ``stopTimeout``;
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html);
  here the task reads ``DEACTIVATING`` for ``stop_seconds``, then ``STOPPED``
  with exit code 143 (128 + SIGTERM).

moto would also advance a task to ``STOPPED`` the first time it is described
(its state manager's default "immediate" progression); while this double runs,
``ecs::task`` progression is manual (moto's ``/moto-api/state-manager`` API), so
a task's status is what ECS and this double make it.

Only moto's backend objects can be given those states (no API sets them), so
this reaches into ``moto.ecs.models.ecs_backends``; every read by the code
under test still goes through the ECS and CloudWatch Logs APIs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from localdev._background import Service

ACCOUNT_ID = "123456789012"
EXIT_STOPPED = 143


@dataclass(frozen=True)
class Behaviour:
    """What the container does for one command name."""

    lines: tuple[str, ...] = ()
    exit_code: int = 0
    seconds: float = 0.5


@dataclass
class StepTasks(Service):
    """Plays each step task of ``cluster`` by its ``command`` override."""

    moto_url: str
    cluster: str
    log_group: str
    stream_prefix: str
    container: str
    behaviours: Mapping[str, Behaviour]
    region: str = "us-east-1"
    stop_seconds: float = 1.0
    #: task ARN -> command name, for every task seen.
    seen: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _backend: Any = field(default=None, repr=False)

    def start(self) -> StepTasks:
        self._state_manager("set-transition", {"progression": "manual", "times": 10**9})
        self._thread = threading.Thread(target=self._loop, name="step-tasks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._state_manager("unset-transition", None)

    def _state_manager(self, action: str, transition: dict[str, Any] | None) -> None:
        import requests

        body: dict[str, Any] = {"model_name": "ecs::task"}
        if transition is not None:
            body["transition"] = transition
        requests.post(
            f"{self.moto_url}/moto-api/state-manager/{action}", json=body, timeout=10
        ).raise_for_status()

    def _tasks(self) -> dict[str, Any]:
        if self._backend is None:
            # Looked up once: each lookup scans moto's list of every service's backends,
            # which at 20 polls a second cost more CPU than the rest of a step test.
            from moto.ecs.models import ecs_backends

            self._backend = ecs_backends[ACCOUNT_ID][self.region]
        return dict(self._backend.tasks.get(self.cluster, {}))

    def _logs(self) -> Any:
        return boto3.client(
            "logs",
            endpoint_url=self.moto_url,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            for arn, task in self._tasks().items():
                if arn not in self.seen:
                    command = task.overrides.get("containerOverrides", [{}])[0].get("command")
                    name = command[0] if command else ""
                    self.seen[arn] = name
                    threading.Thread(
                        target=self._play, args=(task, name), name=f"step-{name}", daemon=True
                    ).start()
            time.sleep(0.05)

    def _play(self, task: Any, name: str) -> None:
        behaviour = self.behaviours.get(
            name, Behaviour(lines=(f"no such command: {name}",), exit_code=127)
        )
        # A StopTask (moto marks the task STOPPED at once) is seen as "desired STOPPED".
        task.last_status = "RUNNING"
        logs = self._logs()
        stream = f"{self.stream_prefix}/{self.container}/{task.id}"
        logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        now = int(time.time() * 1000)
        if behaviour.lines:
            logs.put_log_events(
                logGroupName=self.log_group,
                logStreamName=stream,
                logEvents=[{"timestamp": now, "message": line} for line in behaviour.lines],
            )
        deadline = time.monotonic() + behaviour.seconds
        while time.monotonic() < deadline and task.desired_status != "STOPPED":
            if task.last_status == "STOPPED":  # moto's immediate StopTask: not yet, for ECS
                task.last_status = "DEACTIVATING"
            time.sleep(0.05)
        if task.desired_status == "STOPPED":
            task.last_status = "DEACTIVATING"
            time.sleep(self.stop_seconds)
            self._exit(task, EXIT_STOPPED, task.stopped_reason or "Task stopped by user")
        else:
            self._exit(task, behaviour.exit_code, "Essential container in task exited")

    @staticmethod
    def _exit(task: Any, code: int, reason: str) -> None:
        task.containers[0].exitCode = code
        task.containers[0].last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        task.last_status = "STOPPED"
