"""The GitHub App path of ``setup`` and ``doctor`` (``github_auth: "app"`` stacks).

The CLI signs the App's JWT the way the Lambda does (``lambda_fn.github_auth.GitHubApp``,
``kms:Sign`` with the imported key), so a passing ``setup``/``doctor`` proves the path the
Lambda takes: JWT accepted, installation found, token minted, permission granted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners_cli.errors import CliError
from runners_cli.github import GitHub, GitHubError, Target, message
from runners_cli.stack import Aws, StackInfo, webhook_function_environment

if TYPE_CHECKING:
    from lambda_fn.github_auth import GitHubApp
    from runners_cli.commands import Doctor

#: The installation permission that lets a token manage self-hosted runners, per target kind
#: (App permission names: docs.github.com/en/rest/authentication/
#: permissions-required-for-github-apps).
RUNNER_PERMISSION = {"repo": "administration", "org": "organization_self_hosted_runners"}
RUNNER_PERMISSION_TITLE = {
    "repo": "repository permission 'Administration: Read and write'",
    "org": "organisation permission 'Self-hosted runners: Read and write'",
}
HOOK_PERMISSION = {"repo": "repository_hooks", "org": "organization_hooks"}
#: The recorded webhook path of the App's own webhook (lambda_fn.config.APP_HOOK_PATH).
APP_HOOK = "app/hook"


@dataclass(frozen=True)
class AppConfig:
    """What the deployed Lambda uses: App id and KMS key (from its environment)."""

    app_id: str
    key_arn: str


def app_config(aws: Aws, stack: StackInfo) -> AppConfig | None:
    """The stack's App settings; None when it authenticates with the PAT."""
    env = webhook_function_environment(aws, stack)
    if env.get("GITHUB_AUTH", "pat").lower() != "app":
        return None
    return AppConfig(env.get("GITHUB_APP_ID", ""), env.get("GITHUB_APP_KEY_ARN", ""))


def github_app(aws: Aws, config: AppConfig, api_url: str) -> GitHubApp:
    from lambda_fn.github_auth import GitHubApp

    return GitHubApp(api_url, config.app_id, config.key_arn, kms=aws.client("kms"))


def installation_token(app: GitHubApp, target: Target) -> tuple[dict[str, Any], str]:
    """(installation, token) on the target, or a ``CliError`` that says what to fix."""
    from lambda_fn.errors import DispatchError

    try:
        installation = app.installation(target.path)
    except DispatchError as exc:
        raise GitHubError(str(exc), getattr(exc, "status", None) or 0) from None
    granted = installation.get("permissions") or {}
    if granted.get(RUNNER_PERMISSION[target.kind]) != "write":
        raise GitHubError(
            f"the App's installation on {target.label} cannot manage self-hosted runners: "
            f"give the App the {RUNNER_PERMISSION_TITLE[target.kind]}, then accept the new "
            "permission on the installation"
        )
    # Like the Lambda's tokens (lambda_fn.github_auth.token_scope): this target only, and
    # only what setup/doctor use: the runner permission, and the webhook one if granted.
    permissions = {RUNNER_PERMISSION[target.kind]: "write"}
    hook = HOOK_PERMISSION[target.kind]
    if granted.get(hook) in ("read", "write"):
        permissions[hook] = str(granted[hook])
    repositories = [target.name.split("/", 1)[1]] if target.kind == "repo" else None
    try:
        answer = app.create_token(
            int(installation["id"]), repositories=repositories, permissions=permissions
        )
    except DispatchError as exc:
        raise GitHubError(str(exc), getattr(exc, "status", None) or 0) from None
    return installation, str(answer["token"])


def setup_app(
    aws: Aws,
    stack: StackInfo,
    target: Target,
    *,
    app_id: str,
    private_key: Path | None,
    api_url: str,
    app_webhook: bool,
    resend_secret: bool,
    secret: str,
    out: Any,
) -> str:
    """Import the key, check the App and its installation, create the webhook.

    Returns the webhook's REST path to record for redelivery.
    """
    from runners_cli.app_key import import_private_key

    config = app_config(aws, stack)
    if config is None:
        raise CliError(
            f'stack {stack.name} authenticates with a PAT: set "github_auth": "app" and '
            "github_app_id in cdk.json, cdk deploy, then run this again"
        )
    if config.app_id != app_id:
        raise CliError(
            f"--app-id {app_id} is not the App the stack is deployed with ({config.app_id}): "
            "fix github_app_id in cdk.json (and cdk deploy) or the argument"
        )
    if private_key is not None:
        outcome = import_private_key(aws.client("kms"), config.key_arn, private_key)
        out(f"app key: {outcome} in KMS key {config.key_arn} (the .pem is not stored anywhere)")
    app = github_app(aws, config, api_url)
    from lambda_fn.errors import DispatchError

    try:
        described = app.api.get_app()
    except DispatchError as exc:
        raise GitHubError(f"the App's JWT does not work: {exc}") from None
    out(f"app:     JWT signed by KMS accepted, App {described.get('slug', app_id)}")
    installation, token = installation_token(app, target)
    out(
        f"app:     installed on {target.label} (installation {installation['id']}), "
        "token obtained, can manage self-hosted runners"
    )
    if app_webhook:
        return _app_webhook(
            app, described, stack.webhook_url, secret, resend_secret=resend_secret, out=out
        )
    github = GitHub(token, api_url)
    if (installation.get("permissions") or {}).get(HOOK_PERMISSION[target.kind]) != "write":
        raise GitHubError(
            f"the App cannot create the webhook of {target.label}: give it the 'Webhooks: Read "
            "and write' permission, or use the App's own webhook (--app-webhook)"
        )
    outcome, hook = github.ensure_hook(
        target, stack.webhook_url, secret, resend_secret=resend_secret
    )
    out(
        f"webhook: {outcome} (id {hook.get('id')}) on {target.label} -> {stack.webhook_url}, "
        "events workflow_job, content type json"
    )
    return f"{target.path}/hooks/{hook['id']}"


def _app_webhook(
    app: GitHubApp,
    described: dict[str, Any],
    url: str,
    secret: str,
    *,
    resend_secret: bool,
    out: Any,
) -> str:
    """Point the App's own webhook at the stack (``PATCH /app/hook/config``, JWT)."""
    github = GitHub(app.jwt(), app.api_url)
    current = github.get_json("app/hook/config")
    wanted = {"url": url, "content_type": "json", "insecure_ssl": "0"}
    if (
        any(str(current.get(k)) != v for k, v in wanted.items())
        or resend_secret
        or not current.get("secret")
    ):
        response = github.request("PATCH", "app/hook/config", json={**wanted, "secret": secret})
        if response.status_code != 200:
            raise GitHubError(
                f"could not update the App's webhook: GitHub answered {response.status_code} "
                f"({message(response)})",
                response.status_code,
            )
        out(f"webhook: the App's own webhook now delivers to {url} (content type json, secret)")
    else:
        out(f"webhook: the App's own webhook already delivers to {url}")
    if "workflow_job" not in (described.get("events") or []):
        out(
            "webhook: WARNING the App is not subscribed to 'Workflow job' events: tick it "
            "under 'Subscribe to events' in the App's settings (the API cannot)"
        )
    return APP_HOOK


class AppDoctor:
    """``doctor``'s checks of the App path, end to end, added to the same report."""

    def __init__(self, doctor: Doctor, stack: StackInfo, config: AppConfig) -> None:
        self.doctor = doctor
        self.stack = stack
        self.config = config
        target = doctor.target
        where = f"--{target.kind} {target.name}" if target else "--repo OWNER/REPO"
        self.setup_fix = f"fargate-runners setup --app-id {config.app_id} {where}"

    def run(self) -> None:
        from lambda_fn.errors import DispatchError

        doctor, stack = self.doctor, self.stack
        if not self._key_check():
            return
        app = github_app(doctor.aws, self.config, doctor.api_url)
        try:
            described = app.api.get_app()
        except DispatchError as exc:
            doctor.add(
                "GitHub accepts the App's JWT (signed by KMS)",
                False,
                str(exc),
                "check github_app_id is the App whose private key was imported",
            )
            return
        doctor.add(
            "GitHub accepts the App's JWT (signed by KMS)", True, str(described.get("slug", ""))
        )
        self._private_check(described)
        target = doctor.target
        if target is None:
            doctor.add(
                "installation, permission and webhook",
                True,
                "skipped: pass --repo OWNER/REPO or --org ORG to check them",
            )
            return
        try:
            _, token = installation_token(app, target)
        except GitHubError as exc:
            doctor.add(
                f"App installed on {target.label} and can manage self-hosted runners",
                False,
                exc.message,
                f"install the App there with the {RUNNER_PERMISSION_TITLE[target.kind]}",
            )
            return
        doctor.add(
            f"App installed on {target.label} and can manage self-hosted runners",
            True,
            "installation token obtained",
        )
        if doctor.recorded_hook(stack) == APP_HOOK:
            self._app_hook_checks(app, described)
        else:
            doctor.hook_checks(stack, GitHub(token, doctor.api_url), target)
        doctor.protection_checks(GitHub(token, doctor.api_url), target)

    def _private_check(self, described: dict[str, Any]) -> bool:
        """A public App can be installed by anyone, whose jobs its webhook then delivers here.

        No REST field says whether an App is public (``GET /app`` has none); what GitHub
        documents is that ``GET /apps/{slug}`` needs authentication for a private App
        (https://docs.github.com/en/rest/apps/apps#get-an-app), so it is asked without a
        token: 404 means private.
        """
        from lambda_fn.errors import DispatchError
        from lambda_fn.github import GitHubClient

        name = "the App is private (only the account that owns it can install it)"
        fix = (
            "in the App's settings, Advanced: 'Make private' (and keep allowed_repositories "
            "to the repositories that may use these runners)"
        )
        slug = str(described.get("slug") or "")
        if not slug:
            return self.doctor.add(name, False, "GET /app answered without a slug", fix)
        try:
            public = GitHubClient(self.doctor.api_url, None).get_public_app(slug)
        except DispatchError as exc:
            return self.doctor.add(name, False, f"GET /apps/{slug} failed: {exc}", fix)
        detail = (
            f"GET /apps/{slug} without a token answers 404"
            if public is None
            else f"anyone can see and install {slug} (GET /apps/{slug} answers without a token)"
        )
        return self.doctor.add(name, public is None, detail, fix)

    def _key_check(self) -> bool:
        from botocore.exceptions import ClientError

        name = "App private key imported into its KMS key"
        try:
            metadata = self.doctor.aws.client("kms").describe_key(KeyId=self.config.key_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            fix = "check GITHUB_APP_KEY_ARN and your kms:DescribeKey permission"
            return self.doctor.add(name, False, code, fix)
        state = metadata["KeyMetadata"].get("KeyState")
        return self.doctor.add(
            name,
            state == "Enabled",
            f"{self.config.key_arn} is {state}",
            f"{self.setup_fix} --private-key app.pem",
        )

    def _app_hook_checks(self, app: GitHubApp, described: dict[str, Any]) -> None:
        doctor = self.doctor
        config = GitHub(app.jwt(), app.api_url).get_json("app/hook/config")
        problems = [
            f"{key} {config.get(key)!r} (want {wanted!r})"
            for key, wanted in (
                ("url", self.stack.webhook_url),
                ("content_type", "json"),
                ("insecure_ssl", "0"),
            )
            if str(config.get(key)) != wanted
        ]
        if not config.get("secret"):
            problems.append("no secret")
        doctor.add(
            "the App's own webhook delivers to the stack, json, with secret",
            not problems,
            ", ".join(problems),
            f"{self.setup_fix} --app-webhook",
        )
        events = described.get("events") or []
        doctor.add(
            "the App is subscribed to 'Workflow job' events",
            "workflow_job" in events,
            f"events: {', '.join(events) or 'none'}",
            "tick 'Workflow job' under 'Subscribe to events' in the App's settings",
        )
