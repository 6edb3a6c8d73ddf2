"""The one CIDR-list implementation behind the WAF IP sets, their refresh and the local model."""

from __future__ import annotations

import pytest

from lambda_fn.source_ranges import GITHUB_HOOKS_SNAPSHOT, SourceRanges, SourceRangesError


def test_parse_splits_normalises_and_sorts() -> None:
    ranges = SourceRanges.parse(
        ["192.30.252.1/22", "2a0a:a440::/29", "140.82.112.0/20", "192.30.252.0/22", " 9.9.9.9/32"]
    )
    assert ranges.ipv4 == ("9.9.9.9/32", "140.82.112.0/20", "192.30.252.0/22")
    assert ranges.ipv6 == ("2a0a:a440::/29",)
    assert ranges.all == ranges.ipv4 + ranges.ipv6


def test_snapshot_is_a_valid_list_of_both_versions() -> None:
    ranges = SourceRanges.parse(GITHUB_HOOKS_SNAPSHOT)
    assert ranges.ipv4 and ranges.ipv6
    assert len(ranges.all) == len(GITHUB_HOOKS_SNAPSHOT)


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        ([], "is empty"),
        ("10.0.0.0/8", "must be a list"),
        (["0.0.0.0/0"], "broader than /8"),
        (["10.0.0.0/7"], "broader than /8"),
        (["::/0"], "broader than /16"),
        (["192.30.252.0"], "needs a prefix length"),
        (["not-an-ip/8"], "is not a CIDR range"),
        ([42], "is not a CIDR string"),
    ],
)
def test_lists_that_would_open_or_close_everything_are_refused(cidrs: object, message: str) -> None:
    with pytest.raises(SourceRangesError, match=message):
        SourceRanges.parse(cidrs)  # type: ignore[arg-type]


def test_from_meta_reads_hooks_only() -> None:
    meta = {"hooks": ["192.30.252.0/22"], "actions": ["4.0.0.0/8"], "web": ["1.2.3.4/32"]}
    assert SourceRanges.from_meta(meta).all == ("192.30.252.0/22",)
    with pytest.raises(SourceRangesError, match="no 'hooks'"):
        SourceRanges.from_meta({"web": []})


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("192.30.252.7", True),
        ("192.30.255.255", True),
        ("192.30.251.255", False),
        ("2a0a:a440::1", True),
        ("2a0a:a448::1", False),
        ("127.0.0.1", False),
        ("garbage", False),
    ],
)
def test_contains(address: str, inside: bool) -> None:
    ranges = SourceRanges.parse(["192.30.252.0/22", "2a0a:a440::/29"])
    assert ranges.contains(address) is inside
