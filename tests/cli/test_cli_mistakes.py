"""Every mistake a user can make is one line and exit 2, never a traceback (issue 25, item 5)."""

from __future__ import annotations

import importlib.metadata
import io
import sys
from pathlib import Path

import pytest

from runners_cli.cli import DISTRIBUTION, build_parser, main
from runners_cli.stack import default_region
from tests.kit.cli import REGION, Deployed


class NoTerminal(io.StringIO):
    """stdin in CI, cron or a pipe: not a terminal, nothing to read."""

    def isatty(self) -> bool:
        return False


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fargate-runners: error: ")
    return err


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials, no region, empty AWS config files; returns the config file."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("[profile dev]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config


@pytest.mark.parametrize("command", ["status", "doctor", "setup"])
def test_an_aws_profile_that_does_not_exist(
    no_aws: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod-typo")
    monkeypatch.setattr(sys, "stdin", io.StringIO("github_pat_x\n"))
    extra = ["--repo", "o/r", "--token-stdin"] if command == "setup" else []
    assert main([command, "--region", REGION, *extra]) == 2
    err = one_error_line(capsys)
    assert "AWS profile 'prod-typo' (AWS_PROFILE) is not in your AWS config files" in err
    assert "aws configure list-profiles" in err


def test_setup_without_a_terminal_asks_for_token_stdin(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", NoTerminal(""))
    assert main(["setup", "--repo", "o/r", "--region", REGION]) == 2
    err = one_error_line(capsys)
    assert "no terminal to prompt for the token" in err
    assert "--token-stdin" in err


def test_token_stdin_that_ends_early_is_one_line(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", NoTerminal(""))
    assert main(["setup", "--repo", "o/r", "--region", REGION, "--token-stdin"]) == 2
    assert "no token given" in one_error_line(capsys)


def test_serve_without_moto_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pip install without the dev extra: ``import moto`` fails."""
    monkeypatch.setitem(sys.modules, "moto", None)  # makes `import moto...` raise ImportError
    monkeypatch.delitem(sys.modules, "moto.server", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    err = one_error_line(capsys)
    assert f"pip install '{DISTRIBUTION}[dev]'" in err
    assert "--aws" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["setup", "--repo", "o/r", "--app-id", "123", "--private-key", "{missing}"],
        ["serve", "--cdk-json", "{missing}"],
        ["serve", "--aws", "--cdk-json", "{missing}"],
    ],
)
def test_missing_files_are_checked_before_anything_else(
    no_aws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """No region and no credentials here: the file is what gets reported, first."""
    missing = tmp_path / "nope" / "file"
    assert main([arg.format(missing=missing) for arg in argv]) == 2
    err = one_error_line(capsys)
    assert f"{missing}: no such file" in err


def test_a_directory_is_not_a_key_file(
    no_aws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["setup", "--repo", "o/r", "--app-id", "1", "--private-key", str(tmp_path)]
    assert main(argv) == 2
    assert f"--private-key {tmp_path}: not a file" in one_error_line(capsys)


def test_version_is_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    expected = importlib.metadata.version("fargate-gha-runners")
    assert capsys.readouterr().out.strip() == f"fargate-runners {expected}"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("setup", "create or update the webhook"),
        ("status", "queue depths"),
        ("doctor", "PASS, WARN or FAIL"),
        ("serve", "webhook relay"),
    ],
)
def test_each_command_help_says_what_it_does(
    capsys: pytest.CaptureFixture[str], command: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert says in text
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert all(p.description for p in subparsers.choices.values())  # type: ignore[union-attr]


def test_default_region_order() -> None:
    """--region, then AWS_REGION; None leaves AWS_DEFAULT_REGION and the profile to boto3."""
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert default_region("ap-south-1", env) == "ap-south-1"
    assert default_region(None, env) == "eu-west-1"
    assert default_region(None, {"AWS_DEFAULT_REGION": "us-east-1"}) is None
    assert default_region(None, {"AWS_REGION": "  "}) is None


def test_aws_region_is_honoured(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    assert main(["status"]) == 0
    assert "error" not in capsys.readouterr().err


def test_aws_region_wins_over_aws_default_region(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in the AWS CLI: AWS_REGION overrides AWS_DEFAULT_REGION."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert main(["status"]) == 2
    assert "not found in region eu-west-1" in one_error_line(capsys)


def test_aws_default_region_still_works(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert main(["status"]) == 0


def test_no_region_at_all_names_aws_region(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert main(["status"]) == 2
    err = one_error_line(capsys)
    assert "no AWS region" in err and "AWS_REGION" in err
    assert "does not read AWS_REGION" not in err
