"""Which runner release each profile runs, and how long GitHub will still give it jobs.

GitHub stops assigning jobs to a self-hosted runner that has not installed a newer
release within 30 days of that release's publication (docs.github.com, "Self-hosted
runners reference": with ``--disableupdate`` "you will be required to update your runner
version within 30 days of a new version being made available"; community discussion
#194762 on resuming that enforcement). So a profile's deadline is 30 days after the
publication of the *first* release newer than its version, not of the latest one.

Where GitHub's answer comes from:

- github.com (``GITHUB_API_URL`` is ``https://api.github.com``): the releases of
  ``actions/runner``: ``GET /repos/actions/runner/releases/latest`` (``tag_name``,
  ``published_at``) and ``GET /repos/actions/runner/releases?per_page=100`` for the
  release that started the clock. Public endpoints; asked without a token.
- any other API (GHES, GHE.com): ``GET /{scope}/actions/runners/downloads``, the runner
  builds that server hands out; the version is in each ``filename``
  (``actions-runner-linux-arm64-2.336.0.tar.gz``). There is no publication date there,
  and GHES's enforcement window is not documented: a profile older than what the server
  offers reads 0 days (its runners download the newer one at every job start).

GitHub is asked at most once a day: the answer is kept in the idempotency table (item
:data:`CACHE_ID`, expiring after a week), and every reconciler run emits, per profile,
``RunnerVersionDaysLeft`` (days, ``profile``) from it, or ``RunnerVersionUnknown`` when
the profile's version is not known (a custom image without ``runner_version``).
A current profile reads :data:`CURRENT_DAYS`: any newer release starts a 30-day clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lambda_fn.contract import DEFAULT_GITHUB_API_URL

if TYPE_CHECKING:
    from lambda_fn.config import Settings
    from lambda_fn.github import GitHubClient

VERSION_RE = re.compile(r"^v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
#: ``…/actions-runner:X.Y.Z`` (optionally pinned by digest too): the official image's tags
#: are the runner releases (actions/runner ``.github/workflows/release.yml``).
IMAGE_TAG_RE = re.compile(
    r"(?:^|/)actions-runner:v?(\d{1,4}\.\d{1,4}\.\d{1,4})(?:@sha256:[0-9a-f]{64})?$"
)
DOWNLOAD_RE = re.compile(r"^actions-runner-[a-z0-9]+-[a-z0-9]+-(\d{1,4}\.\d{1,4}\.\d{1,4})\.")
RUNNER_REPOSITORY = ("actions", "runner")
#: GitHub's window to install a newer release.
GRACE = timedelta(days=30)
#: Days left reported for a profile that runs the newest release.
CURRENT_DAYS = 30.0
#: Ask GitHub again after this long.
CHECK_INTERVAL = timedelta(days=1)
#: The cached answer's item in the idempotency table, and its lifetime there.
CACHE_ID = "fargate-runners:runner-releases"
CACHE_TTL = timedelta(days=7)

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """``2.336.0`` or ``v2.336.0`` -> (2, 336, 0); anything else -> None."""
    match = VERSION_RE.match(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def version_from_image(image: str) -> str | None:
    """The runner release of an ``…/actions-runner:X.Y.Z`` image; None for any other."""
    match = IMAGE_TAG_RE.search(image)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Release:
    version: str
    published: datetime | None


@dataclass(frozen=True)
class Offer:
    """What GitHub offers: ``github.com`` releases (with dates) or a server's downloads."""

    source: str  # "github.com" | "server"
    releases: tuple[Release, ...]
    checked: datetime

    @property
    def latest(self) -> Release | None:
        known = [r for r in self.releases if parse_version(r.version) is not None]
        return max(known, key=lambda r: parse_version(r.version) or (0, 0, 0), default=None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "checked": self.checked.isoformat(),
                "releases": [
                    [r.version, r.published.isoformat() if r.published else None]
                    for r in self.releases
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Offer:
        data = json.loads(text)
        return cls(
            source=str(data["source"]),
            checked=datetime.fromisoformat(data["checked"]),
            releases=tuple(
                Release(str(v), datetime.fromisoformat(p) if p else None)
                for v, p in data["releases"]
            ),
        )


@dataclass(frozen=True)
class Standing:
    """One profile against what GitHub offers."""

    profile: str
    version: str | None
    latest: str | None
    #: current | behind | expired | unknown
    state: str
    days_left: float | None
    deadline: datetime | None = None

    def describe(self) -> str:
        if self.state == "unknown":
            return (
                "runner version unknown: set the profile's runner_version (or use an "
                "actions-runner:X.Y.Z image) so it can be watched"
            )
        if self.state == "current":
            return f"runner {self.version} is the newest ({self.latest})"
        when = f" (until {self.deadline:%Y-%m-%d})" if self.deadline else ""
        days = f"{self.days_left:.0f} day(s) left{when}" if self.days_left is not None else ""
        if self.state == "expired":
            return f"runner {self.version} is behind {self.latest}: GitHub may refuse it now{when}"
        return f"runner {self.version} is behind {self.latest}: {days}"


def standing(profile: str, version: str | None, offer: Offer, now: datetime) -> Standing:
    """How long GitHub keeps giving jobs to ``version`` (module docstring)."""
    mine = parse_version(version) if version else None
    latest = offer.latest
    latest_version = latest.version if latest else None
    if mine is None or latest is None:
        return Standing(profile, version, latest_version, "unknown", None)
    newer = [r for r in offer.releases if (parse_version(r.version) or (0, 0, 0)) > mine]
    if not newer:
        return Standing(profile, version, latest_version, "current", CURRENT_DAYS)
    dated = [r.published for r in newer if r.published is not None]
    if not dated:  # a server's downloads: no dates, no documented window
        return Standing(profile, version, latest_version, "behind", 0.0)
    deadline = min(dated) + GRACE
    days = (deadline - now) / timedelta(days=1)
    state = "behind" if days > 0 else "expired"
    return Standing(profile, version, latest_version, state, round(days, 2), deadline)


# -- asking GitHub ---------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def releases_offer(public: GitHubClient, now: datetime) -> Offer:
    """github.com: the full releases of actions/runner (drafts and prereleases left out)."""
    latest = public.get_latest_release(*RUNNER_REPOSITORY)
    listed = [latest, *public.list_releases(*RUNNER_REPOSITORY)]
    releases: dict[str, Release] = {}
    for item in listed:
        version = str(item.get("tag_name", "")).removeprefix("v")
        if item.get("draft") or item.get("prerelease") or parse_version(version) is None:
            continue
        releases.setdefault(version, Release(version, _parse_time(item.get("published_at"))))
    if not releases:
        raise ValueError("GitHub listed no full release of actions/runner")
    return Offer("github.com", tuple(releases.values()), now)


def downloads_offer(gh: GitHubClient, scope: str, now: datetime) -> Offer:
    """Another GitHub (GHES, GHE.com): the versions in the server's runner downloads."""
    versions = {
        match.group(1)
        for item in gh.list_runner_downloads(scope)
        if (match := DOWNLOAD_RE.match(str(item.get("filename", ""))))
    }
    if not versions:
        raise ValueError(f"{scope}/actions/runners/downloads lists no runner build")
    return Offer("server", tuple(Release(v, None) for v in sorted(versions)), now)


def probe_scope(settings: Settings) -> str | None:
    """Where to ask a server for its downloads: the first concrete scope in the config."""
    from lambda_fn.scopes import configured_scopes

    return next(iter(configured_scopes(settings)), None)


def fetch_offer(settings: Settings, gh: GitHubClient, now: datetime) -> Offer:
    """Ask GitHub (module docstring); raises when it cannot be asked or answers nothing."""
    if settings.github_api_url.rstrip("/") == DEFAULT_GITHUB_API_URL:
        from lambda_fn.github import GitHubClient

        return releases_offer(GitHubClient(settings.github_api_url, None, budget_seconds=20), now)
    scope = probe_scope(settings)
    if scope is None:
        raise ValueError(
            "ALLOWED_REPOSITORIES names no repository (or organisation, with RUNNER_SCOPE "
            "org) to read this server's runner downloads from"
        )
    return downloads_offer(gh, scope, now)


# -- the daily cache -------------------------------------------------------------------------


def cached_offer(dynamodb: Any, table: str) -> Offer | None:
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": CACHE_ID}}, ConsistentRead=True).get(
        "Item"
    )
    if not item or "offer" not in item:
        return None
    try:
        return Offer.from_json(item["offer"]["S"])
    except (KeyError, TypeError, ValueError):
        return None


def store_offer(dynamodb: Any, table: str, offer: Offer) -> None:
    expiration = int((offer.checked + CACHE_TTL).timestamp())
    dynamodb.put_item(
        TableName=table,
        Item={
            "id": {"S": CACHE_ID},
            "offer": {"S": offer.to_json()},
            "expiration": {"N": str(expiration)},
        },
    )


def current_offer(
    settings: Settings, gh: GitHubClient, dynamodb: Any, now: datetime
) -> tuple[Offer | None, str | None]:
    """The cached offer, refreshed from GitHub once it is a day old.

    Returns the offer to judge by (possibly stale) and the refresh error, if any: a GitHub
    that cannot be asked today leaves yesterday's answer in use and is asked next run.
    """
    offer = cached_offer(dynamodb, settings.idempotency_table)
    if offer is not None and now - offer.checked < CHECK_INTERVAL:
        return offer, None
    try:
        fresh = fetch_offer(settings, gh, now)
    except Exception as exc:
        return offer, f"{type(exc).__name__}: {exc}"
    store_offer(dynamodb, settings.idempotency_table, fresh)
    return fresh, None


def standings(
    profiles: Iterable[tuple[str, str | None]], offer: Offer, now: datetime
) -> list[Standing]:
    return [standing(name, version, offer, now) for name, version in profiles]


def emit(found: Sequence[Standing]) -> None:
    """One datum per profile: days left, or the unknown state."""
    from lambda_fn.observability import count

    for item in found:
        if item.days_left is None:
            count("RunnerVersionUnknown", ("profile", item.profile))
        else:
            count("RunnerVersionDaysLeft", ("profile", item.profile), value=item.days_left)
