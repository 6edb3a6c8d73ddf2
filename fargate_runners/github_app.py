"""GitHub App authentication: the KMS key that holds the App's private key, and who may sign.

With ``github_auth: app`` the Lambdas sign the App's JWT with ``kms:Sign`` (lambda_fn/
github_auth.py); the private key exists only inside this key. The key is created here with
``Origin: EXTERNAL`` (CloudFormation's AWS::KMS::Key supports it: the key starts in
``PendingImport``, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-kms-key.html)
and ``fargate-runners setup --app-id ... --private-key app.pem`` imports the key material;
or an existing key of the same kind is used (``key_arn``).

Who may use it: ``kms:Sign`` on this key ARN only, with the one algorithm and message type
the Lambda uses, granted to the dispatching Lambdas (webhook, retry, reconciler), the
teardown and the source-range refresh only. The key policy delegates to IAM in the account
(KMS's default key policy), so the operator who runs ``setup`` needs
``kms:GetParametersForImport``/``kms:ImportKeyMaterial`` on it through IAM, as for any key.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from lambda_fn.github_auth import SIGNING_ALGORITHM


@dataclass(frozen=True)
class GitHubAppAuth:
    """Authenticate as a GitHub App instead of with the PAT.

    :param app_id: the App's ID (digits) or client ID (``Iv…``).
    :param key_arn: an existing ``RSA_2048`` ``SIGN_VERIFY`` KMS key holding (or about to
        hold) the App's private key; default: a new one with origin ``EXTERNAL``.
    """

    app_id: str
    key_arn: str | None = None


class GitHubAppKey(Construct):
    """The App's signing key and the Lambda settings that point at it."""

    def __init__(self, scope: Construct, construct_id: str, auth: GitHubAppAuth) -> None:
        super().__init__(scope, construct_id)
        self.app_id = auth.app_id
        if auth.key_arn is not None:
            self.key_arn = auth.key_arn
            return
        account = Stack.of(self).account
        key = kms.CfnKey(
            self,
            "Key",
            description="GitHub App private key (imported; never leaves KMS): signs the App JWT",
            key_spec="RSA_2048",
            key_usage="SIGN_VERIFY",
            origin="EXTERNAL",
            key_policy={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # KMS's default key policy: the account's IAM policies decide.
                        "Sid": "EnableIamPolicies",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:{Stack.of(self).partition}:iam::{account}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            },
        )
        self.key_arn = key.attr_arn

    def environment(self) -> dict[str, str]:
        """The Lambda variables of ``GITHUB_AUTH=app`` (lambda_fn/config.py)."""
        return {
            "GITHUB_AUTH": "app",
            "GITHUB_APP_ID": self.app_id,
            "GITHUB_APP_KEY_ARN": self.key_arn,
        }

    def grant_sign(self, role: iam.IRole) -> None:
        """``kms:Sign`` on this key only, RS256 over a raw message only."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SignGitHubAppJwt",
                actions=["kms:Sign"],
                resources=[self.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:SigningAlgorithm": SIGNING_ALGORITHM,
                        "kms:MessageType": "RAW",
                    }
                },
            )
        )
