"""Warm runners: how many idle runners a profile keeps online, for whom, and when.

A profile with ``warm`` keeps ``runners`` idle JIT runners registered in one
scope (a repository with repo scope, an organisation with org scope) during
its schedule, so a queued job is taken by a runner that is already online
instead of waiting for a Fargate task to start. Pure and stdlib-only: the
Lambda parses it from ``RUNNER_PROFILES`` and the construct validates the same
rules at synth.

Who does what (docs/warm-runners.md):

- every queued job still launches exactly one runner (``lambda_fn.launch``);
  while the pool is active and the job is in the pool's scope, that runner is
  launched *as a pool member*: if a warm runner took the job, the new runner
  refills the pool; if not, it takes the job itself;
- the reconciler (``lambda_fn.reconciler``) tops the pool up to its target,
  never past ``max_runners``, and releases members that are surplus (outside
  the schedule, after a burst) or older than ``max_age_seconds``, always in
  the release order of ``lambda_fn.cleanup`` (registration first: GitHub
  answers 422 for a busy runner, so a runner is never stopped under a job and
  never handed a job while it is being stopped);
- the task's own idle watchdog is raised to ``idle_bound_seconds`` for a pool
  member, so it outlives the reconciler's maximum age but not forever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambda_fn.errors import ConfigError

__all__ = ["DAYS", "MAX_AGE_RANGE", "WarmPool", "parse_hours"]

#: Schedule day names, Monday first (``datetime.weekday()``).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Bounds of ``max_age_seconds``: long enough to be worth a start, short enough that a
#: registration made with an old runner version or config does not sit for days.
MAX_AGE_RANGE = (900, 86_400)
DEFAULT_MAX_AGE_SECONDS = 4 * 3600
#: How long past its maximum age a pool member's own watchdog waits before stopping it:
#: the reconciler (every few minutes) releases it first; this bounds a member whose
#: reconciler is broken.
WATCHDOG_MARGIN_SECONDS = 900
_HOURS_RE = re.compile(r"^([01]?[0-9]|2[0-4])-([01]?[0-9]|2[0-4])$")


def parse_hours(value: str, where: str) -> tuple[int, int]:
    """``"08-18"`` -> ``(8, 18)``: UTC hours, start included, end excluded; may wrap midnight."""
    match = _HOURS_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{where}: {value!r} must be 'HH-HH' (UTC hours, e.g. '08-18')")
    start, end = int(match.group(1)), int(match.group(2))
    if start in (end, 24):
        raise ConfigError(f"{where}: {value!r} is an empty window")
    return start, end


def scope_problem(scope: str, runner_scope: str) -> str | None:
    """Why ``scope`` cannot be a pool's scope with this ``RUNNER_SCOPE``, or None.

    Names follow the project's one owner/repository rule (``lambda_fn.policy``), without
    the ``owner/*`` wildcard: a pool registers in exactly one place.
    """
    from lambda_fn.policy import repository_pattern_problem

    if runner_scope == "org":
        if "/" not in scope and repository_pattern_problem(f"{scope}/*") is None:
            return None
        return "must be an organisation name with runner_scope org"
    if not scope.endswith("/*") and repository_pattern_problem(scope) is None:
        return None
    return "must be a repository, owner/name, with runner_scope repo"


@dataclass(frozen=True)
class WarmPool:
    """One profile's warm pool (``RUNNER_PROFILES[i].warm``)."""

    runners: int
    #: ``owner/repo`` (repo scope) or the organisation (org scope) the runners register in.
    scope: str
    #: Days (Monday = 0) and UTC hours ``[start, end)`` when the pool is kept.
    days: tuple[int, ...] = tuple(range(7))
    hours: tuple[int, int] = (0, 24)
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS

    def target(self, now: datetime) -> int:
        """How many idle members the pool should hold at ``now``."""
        now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        start, end = self.hours
        if start < end:
            active = start <= now.hour < end and now.weekday() in self.days
        else:  # wraps midnight: the window belongs to the day it starts on
            day = now.weekday() if now.hour >= start else (now.weekday() - 1) % 7
            active = (now.hour >= start or now.hour < end) and day in self.days
        return self.runners if active else 0

    @property
    def idle_bound_seconds(self) -> int:
        """The idle watchdog of a pool member's task (``contract.TASK_IDLE_TIMEOUT_ENV``)."""
        return self.max_age_seconds + WATCHDOG_MARGIN_SECONDS

    def owner_repo(self, runner_scope: str) -> tuple[str, str]:
        """``(owner, repo)`` for ``lambda_fn.github.scope_path`` (repo is unused with org)."""
        owner, _, repo = self.scope.partition("/")
        return owner, repo if runner_scope != "org" else ""

    def serves(self, runner_scope: str, owner: str, repo: str) -> bool:
        """Whether a job of ``owner/repo`` would register its runner in this pool's scope."""
        wanted = owner if runner_scope == "org" else f"{owner}/{repo}"
        return wanted.lower() == self.scope.lower()

    def to_dict(self) -> dict[str, Any]:
        return {
            "runners": self.runners,
            "scope": self.scope,
            "days": [DAYS[d] for d in self.days],
            "hours": f"{self.hours[0]:02d}-{self.hours[1]:02d}",
            "max_age_seconds": self.max_age_seconds,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str, runner_scope: str) -> WarmPool:
        """Parse and validate; every problem is a ``ConfigError`` naming ``where``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be an object")
        unknown = set(data) - {"runners", "scope", "days", "hours", "max_age_seconds"}
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        runners = data.get("runners")
        if not isinstance(runners, int) or isinstance(runners, bool) or runners < 1:
            raise ConfigError(f"{where}.runners must be a positive integer")
        scope = data.get("scope")
        problem = scope_problem(scope, runner_scope) if isinstance(scope, str) else "is required"
        if problem:
            raise ConfigError(f"{where}.scope {problem}")
        days = data.get("days", list(DAYS))
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            raise ConfigError(f"{where}.days must be a non-empty list of {', '.join(DAYS)}")
        max_age = data.get("max_age_seconds", DEFAULT_MAX_AGE_SECONDS)
        low, high = MAX_AGE_RANGE
        if not isinstance(max_age, int) or isinstance(max_age, bool) or not low <= max_age <= high:
            raise ConfigError(f"{where}.max_age_seconds must be an integer in {low}..{high}")
        return cls(
            runners=runners,
            scope=str(scope),
            days=tuple(sorted({DAYS.index(d) for d in days})),
            hours=parse_hours(data.get("hours", "00-24"), f"{where}.hours"),
            max_age_seconds=max_age,
        )
