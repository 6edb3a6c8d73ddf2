"""The scheduled refresh keeps the WAF IP sets equal to GitHub's ``hooks`` (moto + GitHub double)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fn.aws import reset_caches
from lambda_fn.errors import ConfigError, GitHubTransientError
from lambda_fn.source_ranges import SourceRangesError
from tests.kit.github import FakeGitHub, use_github_app
from tests.kit.world import GITHUB_API, PAT, FakeAws


def create_ip_sets(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """The web ACL's two IP sets, in the active moto backend, named in the environment."""
    waf = boto3.client("wafv2", region_name="us-east-1")
    sets = {}
    for version, first in (("IPV4", ["192.30.252.0/22"]), ("IPV6", ["2a0a:a440::/29"])):
        summary = waf.create_ip_set(
            Name=f"hooks-{version.lower()}",
            Scope="REGIONAL",
            IPAddressVersion=version,
            Addresses=first,
        )["Summary"]
        sets[version] = summary
        monkeypatch.setenv(f"SOURCE_{version}_SET_ARN", summary["ARN"])
    monkeypatch.setenv("GITHUB_API_URL", GITHUB_API)
    return sets


@pytest.fixture
def ip_sets(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, Any]]]:
    """A function with only its own variables (no dispatcher settings: no token)."""
    with mock_aws():
        reset_caches()
        yield create_ip_sets(monkeypatch)
    reset_caches()


@pytest.fixture
def deployed(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    """The stack's refresh function: the dispatcher's settings (PAT in its secret)."""
    create_ip_sets(monkeypatch)
    monkeypatch.setenv("ALLOWED_REPOSITORIES", "octo-org/app")
    return fake_aws


def addresses(summary: dict[str, Any]) -> list[str]:
    waf = boto3.client("wafv2", region_name="us-east-1")
    ip_set = waf.get_ip_set(Name=summary["Name"], Scope="REGIONAL", Id=summary["Id"])["IPSet"]
    return sorted(ip_set["Addresses"])


def test_new_ranges_replace_the_ip_sets_without_settings_unauthenticated(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub
) -> None:
    from lambda_fn.refresh_sources import refresh

    github.meta = {"hooks": ["192.30.252.0/22", "9.234.98.160/28", "2606:50c0::/32"]}
    result = refresh()
    assert result["changed"] == {"ipv4": True, "ipv6": True}
    assert addresses(ip_sets["IPV4"]) == ["192.30.252.0/22", "9.234.98.160/28"]
    assert addresses(ip_sets["IPV6"]) == ["2606:50c0::/32"]
    (headers,) = github.meta_requests
    assert "Authorization" not in headers  # no settings, so no token to send


def test_unchanged_ranges_write_nothing(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub
) -> None:
    from lambda_fn.refresh_sources import refresh

    github.meta = {"hooks": ["2a0a:a440::/29", "192.30.252.0/22"]}
    assert refresh()["changed"] == {"ipv4": False, "ipv6": False}


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"hooks": []}, SourceRangesError),
        ({"hooks": ["0.0.0.0/0"]}, SourceRangesError),
        ({"web": ["1.2.3.4/32"]}, SourceRangesError),
    ],
)
def test_a_bad_list_changes_nothing_and_fails_the_run(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub, meta: dict[str, Any], error: type
) -> None:
    from lambda_fn.refresh_sources import refresh

    github.meta = meta
    with pytest.raises(error):
        refresh()
    assert addresses(ip_sets["IPV4"]) == ["192.30.252.0/22"]
    assert addresses(ip_sets["IPV6"]) == ["2a0a:a440::/29"]


def test_github_unavailable_keeps_the_last_good_list(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub
) -> None:
    from lambda_fn.refresh_sources import refresh

    github.fail("GET", r"^/meta$", 503, times=None)
    with pytest.raises(GitHubTransientError):
        refresh()
    assert addresses(ip_sets["IPV4"]) == ["192.30.252.0/22"]


def test_a_concurrent_change_is_retried_once(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAF's optimistic lock: a stale LockToken fails once, the second read gets a fresh one."""
    from lambda_fn import aws
    from lambda_fn.refresh_sources import refresh

    waf = aws.client("wafv2")
    real_get = waf.get_ip_set
    calls = {"n": 0}

    def get_then_race(**kwargs: Any) -> Any:
        answer = real_get(**kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # someone else writes between our read and our write
            waf.update_ip_set(**kwargs, Addresses=["1.1.1.0/24"], LockToken=answer["LockToken"])
        return answer

    monkeypatch.setattr(waf, "get_ip_set", get_then_race)
    github.meta = {"hooks": ["140.82.112.0/20", "2a0a:a440::/29"]}
    assert refresh()["changed"]["ipv4"] is True
    assert addresses(ip_sets["IPV4"]) == ["140.82.112.0/20"]


def test_a_bad_ip_set_arn_is_a_config_error(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.refresh_sources import refresh

    monkeypatch.setenv("SOURCE_IPV6_SET_ARN", "arn:aws:s3:::bucket")
    with pytest.raises(ConfigError, match="SOURCE_IPV6_SET_ARN"):
        refresh()


# --- /meta with the deployment's token (its own rate limit) ---------------------------------


def meta_authorizations(github: FakeGitHub) -> list[str | None]:
    return [headers.get("Authorization") for headers in github.meta_requests]


def test_meta_is_read_with_the_pat(deployed: FakeAws, github: FakeGitHub) -> None:
    from lambda_fn.refresh_sources import refresh

    github.valid_token = PAT
    github.meta = {"hooks": ["140.82.112.0/20", "2606:50c0::/32"]}
    assert refresh()["changed"] == {"ipv4": True, "ipv6": True}
    assert meta_authorizations(github) == [f"Bearer {PAT}"]


def test_before_setup_meta_is_read_without_a_token(
    deployed: FakeAws, github: FakeGitHub, lambda_logs: Any
) -> None:
    """The PAT secret has no value yet: the refresh still works, unauthenticated."""
    from lambda_fn.refresh_sources import refresh

    boto3.client("secretsmanager", region_name=deployed.region).delete_secret(
        SecretId=deployed.token_secret_arn, ForceDeleteWithoutRecovery=True
    )
    github.meta = {"hooks": ["140.82.112.0/20", "2606:50c0::/32"]}
    assert refresh()["changed"]["ipv4"] is True
    assert meta_authorizations(github) == [None]
    assert "no usable GitHub token for /meta" in lambda_logs.getvalue()
    assert "SecretMissingError" in lambda_logs.getvalue()


def test_a_refused_token_falls_back_to_no_token(deployed: FakeAws, github: FakeGitHub) -> None:
    """GitHub checks a token even on a public endpoint (401): the list is still read."""
    from lambda_fn.refresh_sources import refresh

    github.valid_token = "ghp_the_new_one"  # the stored PAT was revoked
    github.meta = {"hooks": ["140.82.112.0/20", "2606:50c0::/32"]}
    assert refresh()["changed"]["ipv4"] is True
    # Once, once more with a fresh read of the secret (the client's 401 rule), then without.
    assert meta_authorizations(github) == [f"Bearer {PAT}", f"Bearer {PAT}", None]
    assert [r.status for r in github.calls("GET", "/meta")] == [401, 401, 200]


def test_a_github_app_reads_meta_with_an_installation_token(
    deployed: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.refresh_sources import refresh

    app = use_github_app(deployed, github, monkeypatch)
    github.meta = {"hooks": ["140.82.112.0/20", "2606:50c0::/32"]}
    assert refresh()["changed"]["ipv4"] is True
    (token,) = app.minted  # for the installation on octo-org, the first scope configured
    assert meta_authorizations(github) == [f"Bearer {token}"]
    # Least privilege: that repository, and only the permission every App has.
    (minted,) = github.calls("POST", "/access_tokens")
    assert minted.body == {"repositories": ["app"], "permissions": {"metadata": "read"}}


def test_a_github_app_not_installed_yet_reads_meta_without_a_token(
    deployed: FakeAws, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_fn.refresh_sources import refresh

    use_github_app(deployed, github, monkeypatch, install=False)
    github.meta = {"hooks": ["140.82.112.0/20", "2606:50c0::/32"]}
    assert refresh()["changed"]["ipv4"] is True
    assert meta_authorizations(github) == [None]


def test_github_down_with_a_token_still_fails_the_run(
    deployed: FakeAws, github: FakeGitHub
) -> None:
    """Unreachable is not "no token": no second try without one, the alarm sees a failure."""
    from lambda_fn.refresh_sources import refresh

    github.fail("GET", r"^/meta$", 503, times=None)
    with pytest.raises(GitHubTransientError):
        refresh()
    assert None not in meta_authorizations(github)
