"""``lambda_fn.warm_pool``: when a pool is kept, for whom, and what a bad setting says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lambda_fn.errors import ConfigError
from lambda_fn.warm_pool import WarmPool

# 2026-11-23 is a Monday.
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def pool(**data: Any) -> WarmPool:
    return WarmPool.from_dict({"runners": 3, "scope": "octo/app", **data}, "warm", "repo")


@pytest.mark.parametrize(
    ("day", "hour", "expected"),
    [
        (0, 8, 3),  # Monday 08:00, the window's first hour
        (0, 17, 3),
        (0, 18, 0),  # the end hour is excluded
        (0, 7, 0),
        (4, 12, 3),  # Friday
        (5, 12, 0),  # Saturday
    ],
)
def test_working_hours(day: int, hour: int, expected: int) -> None:
    working = pool(days=["mon", "tue", "wed", "thu", "fri"], hours="08-18")
    assert working.target(MONDAY.replace(day=23 + day, hour=hour)) == expected


@pytest.mark.parametrize(
    ("day", "hour", "expected"),
    [
        (4, 22, 3),  # Friday night: the window starts on a listed day
        (5, 3, 3),  # ... and runs into Saturday morning
        (5, 6, 0),
        (5, 22, 0),  # Saturday night is not listed
        (0, 3, 0),  # Monday 03:00 belongs to Sunday night's window
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_starts(
    day: int, hour: int, expected: int
) -> None:
    nightly = pool(days=["mon", "tue", "wed", "thu", "fri"], hours="22-06")
    assert nightly.target(MONDAY.replace(day=23 + day, hour=hour)) == expected


def test_defaults_keep_the_pool_all_week_for_four_hours_per_runner() -> None:
    always = pool()
    assert all(always.target(MONDAY.replace(day=23 + d, hour=h)) == 3
               for d in range(7) for h in range(24))  # fmt: skip
    assert always.max_age_seconds == 4 * 3600
    assert always.idle_bound_seconds > always.max_age_seconds
    assert WarmPool.from_dict(always.to_dict(), "warm", "repo") == always


def test_scope_decides_which_jobs_refill_the_pool() -> None:
    repo = pool()
    assert repo.serves("repo", "Octo", "App")  # GitHub names are case-insensitive
    assert not repo.serves("repo", "octo", "other")
    org = WarmPool.from_dict({"runners": 1, "scope": "octo"}, "warm", "org")
    assert org.serves("org", "octo", "anything")
    assert org.owner_repo("org") == ("octo", "")
    assert repo.owner_repo("repo") == ("octo", "app")


@pytest.mark.parametrize(
    ("data", "runner_scope", "fragment"),
    [
        ({"runners": 0, "scope": "o/r"}, "repo", "warm.runners must be a positive integer"),
        ({"runners": True, "scope": "o/r"}, "repo", "warm.runners must be a positive integer"),
        ({"runners": 1}, "repo", "warm.scope is required"),
        ({"runners": 1, "scope": "octo"}, "repo", "owner/name, with runner_scope repo"),
        ({"runners": 1, "scope": "o/r"}, "org", "organisation name with runner_scope org"),
        ({"runners": 1, "scope": "octo/*"}, "repo", "owner/name, with runner_scope repo"),
        ({"runners": 1, "scope": "octo/.."}, "repo", "owner/name, with runner_scope repo"),
        ({"runners": 1, "scope": "-octo"}, "org", "organisation name with runner_scope org"),
        ({"runners": 1, "scope": "o/r", "days": []}, "repo", "warm.days must be a non-empty"),
        ({"runners": 1, "scope": "o/r", "days": ["sat", "xyz"]}, "repo", "warm.days"),
        ({"runners": 1, "scope": "o/r", "hours": "8"}, "repo", "must be 'HH-HH'"),
        ({"runners": 1, "scope": "o/r", "hours": "08-08"}, "repo", "is an empty window"),
        ({"runners": 1, "scope": "o/r", "hours": "25-02"}, "repo", "must be 'HH-HH'"),
        ({"runners": 1, "scope": "o/r", "max_age_seconds": 60}, "repo", "900..86400"),
        ({"runners": 1, "scope": "o/r", "size": 2}, "repo", "unknown keys: size"),
        ("2", "repo", "warm must be an object"),
    ],
)
def test_bad_pools_are_refused_naming_the_key(data: Any, runner_scope: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        WarmPool.from_dict(data, "warm", runner_scope)
