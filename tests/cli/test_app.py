"""``setup --app-id --private-key`` and ``doctor`` for GitHub App stacks.

KMS is moto with the import operations it lacks added as KMS documents them
(``tests/kit/kms_import.py``); GitHub's App side knows only the public half of the App's
own key (from the .pem), so a JWT it accepts proves KMS signs with the imported key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from localdev.github_app_double import GitHubAppDouble
from runners_cli import commands
from runners_cli.app_key import load_private_key, public_key_der, wrap_key_material
from runners_cli.cli import main
from runners_cli.errors import CliError
from runners_cli.github import Target
from runners_cli.stack import Aws
from tests.kit.cli import API, PAT, REGION, STACK, WEBHOOK_URL, Deployed, GitHub, deploy

APP_ID = "123456"
REPO = Target("repo", "octo-org/app")
ORG = Target("org", "octo-org")


def write_pem(path: Path, key: rsa.RSAPrivateKey) -> Path:
    """As GitHub hands it out: a PKCS #1 ("BEGIN RSA PRIVATE KEY") PEM."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    """The App's private key: one per module (a key is immutable; tests that need a second,
    different key make their own)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pem(tmp_path: Path, app_key: rsa.RSAPrivateKey) -> Path:
    return write_pem(tmp_path / "app.pem", app_key)


@pytest.fixture
def key_arn(aws_env: None, kms_import: object) -> str:
    """The key the stack creates: RSA_2048 SIGN_VERIFY, origin EXTERNAL (PendingImport)."""
    kms = boto3.client("kms", region_name=REGION)
    metadata = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")
    return str(metadata["KeyMetadata"]["Arn"])


@pytest.fixture
def app_stack(key_arn: str) -> Deployed:
    env = {"GITHUB_AUTH": "app", "GITHUB_APP_ID": APP_ID, "GITHUB_APP_KEY_ARN": key_arn}
    return deploy(pat=None, function_env=env)


@pytest.fixture
def app(github: GitHub, app_key: rsa.RSAPrivateKey) -> Iterator[GitHubAppDouble]:
    github.valid_token = "no PAT in App mode"
    github.app = GitHubAppDouble(APP_ID, public_key_der(app_key))
    github.app.install("octo-org")
    yield github.app


def setup_app(target: Target = REPO, pem: Path | None = None, **kwargs: object) -> list[str]:
    lines: list[str] = []
    code = commands.setup_with_app(
        Aws(REGION),
        STACK,
        target,
        app_id=APP_ID,
        private_key=pem,
        api_url=API,
        out=lines.append,
        **kwargs,  # type: ignore[arg-type]
    )
    assert code == 0
    return lines


def recorded(deployed: Deployed) -> str:
    name = deployed.outputs["WebhookHookParameter"]
    return str(
        boto3.client("ssm", region_name=REGION).get_parameter(Name=name)["Parameter"]["Value"]
    )


def test_setup_imports_the_key_checks_the_app_and_creates_the_hook(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path, key_arn: str
) -> None:
    lines = setup_app(pem=pem)
    kms = boto3.client("kms", region_name=REGION)
    assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "Enabled"
    assert bytes(kms.get_public_key(KeyId=key_arn)["PublicKey"]) == app.public_key_der
    assert app.accepted_jwts and all(j["iss"] == APP_ID for j in app.accepted_jwts)
    assert ("POST", "/repos/octo-org/app/installation") not in github.sent()
    assert ("GET", "/repos/octo-org/app/installation") in github.sent()
    # The webhook is created with the installation token; no PAT anywhere.
    hook_call = github.sent().index(("POST", "/repos/octo-org/app/hooks"))
    assert github.authorizations[hook_call] == f"Bearer {app.minted[-1]}"
    assert app_stack.pat() is None
    (hook,) = github.hook_views()
    assert hook["config"]["url"] == WEBHOOK_URL and hook["events"] == ["workflow_job"]
    assert recorded(app_stack) == f"repos/octo-org/app/hooks/{hook['id']}"
    text = "\n".join(lines)
    assert "app key: imported" in text and "installed on repository octo-org/app" in text
    assert "PRIVATE KEY" not in text
    assert sorted(os.listdir(pem.parent)) == ["app.pem"]  # nothing written next to it


def test_setup_twice_leaves_the_imported_key_alone(
    app_stack: Deployed,
    github: GitHub,
    app: GitHubAppDouble,
    pem: Path,
    kms_import: dict[bytes, object],
) -> None:
    setup_app(pem=pem)
    lines = setup_app(pem=pem)
    assert any("app key: unchanged" in line for line in lines)
    assert len(kms_import) == 1  # no second GetParametersForImport
    assert any(line.startswith("webhook: unchanged") for line in lines)


def test_another_key_is_refused_once_one_is_imported(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path, tmp_path: Path
) -> None:
    setup_app(pem=pem)
    other = write_pem(tmp_path / "other.pem", rsa.generate_private_key(65537, 2048))
    with pytest.raises(CliError, match="already holds another private key"):
        setup_app(pem=other)


def test_not_installed_is_named(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    app.installations.clear()
    with pytest.raises(CliError, match="is not installed on repository octo-org/app"):
        setup_app(pem=pem)
    assert github.hooks == {}


@pytest.mark.parametrize(
    "case",
    [
        (REPO, "administration", "'Administration: Read and write'"),
        (ORG, "organization_self_hosted_runners", "'Self-hosted runners: Read and write'"),
    ],
)
def test_a_missing_runner_permission_is_named(
    app_stack: Deployed,
    github: GitHub,
    app: GitHubAppDouble,
    pem: Path,
    case: tuple[Target, str, str],
) -> None:
    target, permission, needed = case
    app.installations[0].permissions.pop(permission)
    with pytest.raises(CliError, match=needed):
        setup_app(target, pem=pem)


def test_the_apps_own_webhook(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    lines = setup_app(pem=pem, app_webhook=True)
    assert app.hook_config["url"] == WEBHOOK_URL
    assert app.hook_config["content_type"] == "json"
    assert app.hook_config["secret"] == "stack-webhook-secret-0123456789"
    assert github.hooks == {}  # no repository webhook
    assert recorded(app_stack) == "app/hook"
    assert not any("WARNING" in line for line in lines)
    app.events = ["push"]
    lines = setup_app(app_webhook=True)
    assert any("not subscribed to 'Workflow job'" in line for line in lines)


def test_a_pat_stack_refuses_app_setup(deployed: Deployed, github: GitHub, pem: Path) -> None:
    with pytest.raises(CliError, match="authenticates with a PAT"):
        setup_app(pem=pem)


def test_another_app_id_is_refused(app_stack: Deployed, github: GitHub, pem: Path) -> None:
    with pytest.raises(CliError, match="is not the App the stack is deployed with"):
        commands.setup_with_app(
            Aws(REGION), STACK, REPO, app_id="999", private_key=pem, api_url=API, out=print
        )


def test_the_command_line_never_asks_for_a_pat(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    argv = ["setup", "--repo", "octo-org/app", "--app-id", APP_ID, "--private-key", str(pem)]
    assert main([*argv, "--region", REGION, "--github-api-url", API]) == 0


def doctor(target: Target | None = REPO) -> tuple[int, str]:
    lines: list[str] = []
    code = commands.doctor(Aws(REGION), STACK, target, api_url=API, out=lines.append)
    return code, "\n".join(lines)


def test_doctor_checks_the_app_path_end_to_end(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    setup_app(pem=pem)
    code, text = doctor()
    assert code == 0, text
    for expected in (
        "PASS  App private key imported into its KMS key",
        "PASS  GitHub accepts the App's JWT (signed by KMS)",
        "PASS  the App is private (only the account that owns it can install it)",
        "PASS  App installed on repository octo-org/app and can manage self-hosted runners",
        f"PASS  webhook to {WEBHOOK_URL} exists",
        "PASS  webhook recorded for automatic redelivery",
    ):
        assert expected in text
    assert "GitHub token secret" not in text  # no PAT in an App stack
    # The CLI's tokens are scoped like the Lambda's: this repository, what it uses.
    assert app.token_requests and all(
        request is not None
        and request.get("repositories") == ["app"]
        and set(request.get("permissions", {})) <= {"administration", "repository_hooks"}
        for _, request in app.token_requests
    )


def test_doctor_fails_a_public_app(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    """Anyone can install a public App, and its webhook sends their jobs to the stack."""
    setup_app(pem=pem)
    app.public = True
    code, text = doctor()
    assert code == 1
    assert "FAIL  the App is private (only the account that owns it can install it)" in text
    assert "anyone can see and install fargate-runners" in text
    assert "'Make private'" in text


def test_doctor_before_the_import_says_how(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble
) -> None:
    code, text = doctor()
    assert code == 1
    assert "FAIL  App private key imported into its KMS key" in text
    assert f"fix: fargate-runners setup --app-id {APP_ID} --repo octo-org/app --private-key" in text


def test_doctor_reports_an_app_that_is_not_installed(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    setup_app(pem=pem)
    app.installations.clear()
    code, text = doctor(ORG)
    assert code == 1
    assert "FAIL  App installed on organisation octo-org" in text
    assert "not installed on organisation octo-org" in text


def test_doctor_checks_the_apps_own_webhook(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    setup_app(pem=pem, app_webhook=True)
    assert doctor()[0] == 0
    app.hook_config["url"] = "https://elsewhere.example/hook"
    app.events = []
    code, text = doctor()
    assert code == 1
    assert "FAIL  the App's own webhook delivers to the stack" in text
    assert "FAIL  the App is subscribed to 'Workflow job' events" in text


def test_the_wrapping_is_rsa_aes_key_wrap_sha_256_of_the_pkcs8_der(
    pem: Path, app_key: rsa.RSAPrivateKey
) -> None:
    """KMS's step 3, undone by hand: OAEP(SHA-256) AES key first, then RFC 5649 wrap."""
    wrapping = rsa.generate_private_key(65537, 4096)
    blob = wrap_key_material(
        load_private_key(pem),
        wrapping.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    aes_key = wrapping.decrypt(
        blob[:512],
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    assert len(aes_key) == 32
    assert aes_key_unwrap_with_padding(aes_key, blob[512:]) == app_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "content", [b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
)
def test_a_file_that_is_not_an_app_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(content)
    with pytest.raises(CliError, match="not an unencrypted PEM private key"):
        load_private_key(path)


def test_a_key_of_another_size_is_refused(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "big.pem", rsa.generate_private_key(65537, 3072))
    with pytest.raises(CliError, match="not a 2048-bit RSA key"):
        load_private_key(path)


def test_the_pat_flags_are_not_mixed_with_app_ones(deployed: Deployed, pem: Path) -> None:
    argv = ["setup", "--repo", "o/r", "--private-key", str(pem), "--region", REGION]
    assert main(argv) == 2
    assert PAT  # the PAT stack is untouched


def test_status_reads_deliveries_with_the_installation_token(
    app_stack: Deployed, github: GitHub, app: GitHubAppDouble, pem: Path
) -> None:
    setup_app(pem=pem)
    lines: list[str] = []
    assert commands.status(Aws(REGION), STACK, REPO, api_url=API, out=lines.append) == 0
    assert any(line.startswith("failed webhook deliveries") for line in lines)
    (hook_id,) = github.hooks
    listed = github.sent().index(("GET", f"/repos/octo-org/app/hooks/{hook_id}/deliveries"))
    assert github.authorizations[listed] == f"Bearer {app.minted[-1]}"
