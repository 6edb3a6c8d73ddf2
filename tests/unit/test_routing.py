"""Label routing and the repository allowlist: pure functions, no mocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lambda_fn.config import Profile
from lambda_fn.routing import match_profile, repository_allowed

label = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
    min_size=1,
    max_size=20,
)


def profile(name: str, *labels: str) -> Profile:
    return Profile(name=name, labels=labels, task_definition=f"td-{name}", container_name="runner")


DEFAULT = profile("default", "self-hosted", "linux", "ARM64")
BIG = profile("big", "self-hosted", "linux", "x64", "big")


def test_job_labels_must_all_be_in_the_profile() -> None:
    assert match_profile(["self-hosted", "linux"], [DEFAULT]) is DEFAULT
    assert match_profile(["self-hosted", "linux", "arm64", "gpu"], [DEFAULT]) is None


def test_matching_ignores_case_and_surrounding_space() -> None:
    assert match_profile(["SELF-HOSTED", " arm64 "], [DEFAULT]) is DEFAULT


def test_first_profile_in_config_order_wins() -> None:
    assert match_profile(["self-hosted", "linux"], [DEFAULT, BIG]) is DEFAULT
    assert match_profile(["self-hosted", "linux"], [BIG, DEFAULT]) is BIG
    assert match_profile(["big"], [DEFAULT, BIG]) is BIG


def test_an_exact_profile_takes_only_its_own_label_set() -> None:
    """A [self-hosted, linux] job never starts a [self-hosted, linux, deploy] exact runner."""
    deploy = Profile("deploy", ("self-hosted", "linux", "deploy"), "td", "runner", match="exact")
    assert match_profile(["self-hosted", "linux"], [deploy]) is None
    assert match_profile(["self-hosted", "linux"], [deploy, DEFAULT]) is DEFAULT
    assert match_profile(["Deploy", "LINUX", "self-hosted"], [deploy, DEFAULT]) is deploy
    subset = Profile("deploy", deploy.labels, "td", "runner")
    assert match_profile(["self-hosted", "linux"], [subset, DEFAULT]) is subset


def test_no_labels_matches_nothing() -> None:
    assert match_profile([], [DEFAULT, BIG]) is None


@given(st.lists(label, min_size=1, max_size=6), st.lists(label, max_size=6))
def test_any_subset_of_a_profiles_labels_matches_it(
    profile_labels: list[str], extra: list[str]
) -> None:
    p = profile("p", *profile_labels, *extra)
    assert match_profile([lbl.upper() for lbl in profile_labels], [p]) is p


@given(st.lists(label, min_size=1, max_size=6), label)
def test_a_label_the_profile_lacks_never_matches(profile_labels: list[str], missing: str) -> None:
    if missing.lower() in {lbl.lower() for lbl in profile_labels}:
        return
    p = profile("p", *profile_labels)
    assert match_profile([*profile_labels, missing], [p]) is None


def test_empty_allowlist_allows_everything() -> None:
    assert repository_allowed("anyone/anything", ())


def test_allowlist_exact_and_owner_wildcard() -> None:
    patterns = ("octo-org/app", "trusted/*")
    assert repository_allowed("octo-org/app", patterns)
    assert repository_allowed("Octo-Org/App", patterns)
    assert repository_allowed("trusted/whatever", patterns)
    assert not repository_allowed("octo-org/other", patterns)
    assert not repository_allowed("trusted-not/x", patterns)
    assert not repository_allowed("evil/trusted", patterns)


@given(label, label, label)
def test_wildcard_never_leaks_to_another_owner(owner: str, other: str, repo: str) -> None:
    if owner.lower() == other.lower():
        return
    assert not repository_allowed(f"{other}/{repo}", (f"{owner}/*",))
    assert repository_allowed(f"{owner}/{repo}", (f"{owner}/*",))
