"""GitHub as the CLI meets it, and what a careful organisation sets up (protections, a
runner group). The deployed stack in moto is ``localdev.fake_stack``'s; its names the CLI
tests use are re-exported here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import responses

from localdev.fake_stack import (
    ALARMS,
    API,
    PAT,
    REGION,
    STACK,
    WEBHOOK_URL,
    Deployed,
    deploy,
)
from tests.kit.github import FakeGitHub

__all__ = [
    "ALARMS",
    "API",
    "PAT",
    "REGION",
    "STACK",
    "WEBHOOK_URL",
    "Deployed",
    "GitHub",
    "deploy",
    "protect",
    "seed_group",
]


class GitHub(FakeGitHub):
    """The one GitHub model (``localdev.github_model``) as the CLI meets it: one valid token."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        super().__init__(mock, base_url=API, valid_token=PAT)

    def seed_hook(self, rest: dict[str, Any], scope: str = "repos/octo-org/app") -> None:
        """A webhook that already exists, given as the REST API shows it."""
        config = rest["config"]
        hook = self.add_hook(
            scope, config["url"], "x" if "secret" in config else "",
            hook_id=rest["id"], events=rest["events"],
        )  # fmt: skip
        hook.active, hook.content_type = rest["active"], config["content_type"]

    def hook_views(self) -> list[dict[str, Any]]:
        return [hook.view() for hook in self.hooks.values()]

    def sent(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order (``authorizations`` lines up with it)."""
        return [(c.request.method, urlsplit(c.request.url).path) for c in self.mock.calls]

    @property
    def authorizations(self) -> list[str]:
        """The ``Authorization`` header of every request (to tell the PAT from an
        installation token), in the order of :meth:`sent`."""
        return [c.request.headers.get("Authorization", "") for c in self.mock.calls]

    def writes(self) -> list[tuple[str, str]]:
        return [
            (r.method, r.path)
            for r in self.requests
            if r.method in ("POST", "PUT", "PATCH", "DELETE")
        ]


DEPLOY_WORKFLOW = "octo-org/app/.github/workflows/deploy.yml@refs/heads/main"


def protect(github: GitHub) -> None:
    """What a careful organisation sets up: main reviewed, v* tags restricted."""
    github.add_ruleset(
        "repos/octo-org/app",
        name="main reviewed",
        conditions={"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
        rules=[
            {
                "type": "pull_request",
                "parameters": {
                    "required_approving_review_count": 1,
                    "dismiss_stale_reviews_on_push": True,
                },
            },
            {"type": "non_fast_forward"},
            {"type": "deletion"},
        ],
    )
    github.add_ruleset(
        "orgs/octo-org",
        name="release tags",
        target="tag",
        conditions={"ref_name": {"include": ["refs/tags/v*"], "exclude": []}},
        rules=[{"type": "creation"}, {"type": "update"}, {"type": "deletion"}],
        bypass_actors=[{"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}],
    )


def seed_group(github: GitHub, group_id: int = 7, **fields: Any) -> dict[str, Any]:
    group = {
        "id": group_id, "name": "deploy", "visibility": "selected", "default": False,
        "allows_public_repositories": False, "restricted_to_workflows": True,
        "selected_workflows": [DEPLOY_WORKFLOW], "workflow_restrictions_read_only": False,
        "org": "octo-org", "repository_ids": [github.repository_id("octo-org/app")],
        **fields,
    }  # fmt: skip
    github.runner_groups[group_id] = group
    return group
