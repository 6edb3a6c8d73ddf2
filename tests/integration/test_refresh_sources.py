"""The scheduled refresh keeps the WAF IP sets equal to GitHub's ``hooks`` (moto + GitHub double)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fn.errors import ConfigError, GitHubTransientError
from lambda_fn.source_ranges import SourceRangesError
from tests.conftest import GITHUB_API, FakeGitHub, reset_lambda_caches


@pytest.fixture
def ip_sets(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, Any]]]:
    with mock_aws():
        reset_lambda_caches()
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
        yield sets
    reset_lambda_caches()


def addresses(summary: dict[str, Any]) -> list[str]:
    waf = boto3.client("wafv2", region_name="us-east-1")
    ip_set = waf.get_ip_set(Name=summary["Name"], Scope="REGIONAL", Id=summary["Id"])["IPSet"]
    return sorted(ip_set["Addresses"])


def test_new_ranges_replace_the_ip_sets_without_a_token(
    ip_sets: dict[str, dict[str, Any]], github: FakeGitHub
) -> None:
    from lambda_fn.refresh_sources import refresh

    github.meta = {"hooks": ["192.30.252.0/22", "9.234.98.160/28", "2606:50c0::/32"]}
    result = refresh()
    assert result["changed"] == {"ipv4": True, "ipv6": True}
    assert addresses(ip_sets["IPV4"]) == ["192.30.252.0/22", "9.234.98.160/28"]
    assert addresses(ip_sets["IPV6"]) == ["2606:50c0::/32"]
    (headers,) = github.meta_requests
    assert "Authorization" not in headers  # /meta is public: the PAT is never sent there


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
