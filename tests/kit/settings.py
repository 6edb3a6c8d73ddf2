"""A minimal handler environment (``lambda_fn.config``): one profile, the required keys."""

from __future__ import annotations

import json

PROFILE = {
    "name": "default",
    "labels": ["self-hosted", "linux"],
    "task_definition": "arn:aws:ecs:us-east-1:1:task-definition/runner:3",
    "container_name": "runner",
    "task_role_id": "AROAEXAMPLETASKROLE01",
}
MINIMAL = {
    "WEBHOOK_SECRET_ARN": "arn:webhook",
    "GITHUB_TOKEN_SECRET_ARN": "arn:token",
    "ECS_CLUSTER": "runners",
    "SUBNET_IDS": "subnet-1, subnet-2",
    "SECURITY_GROUP_IDS": "sg-1",
    "RUNNER_PROFILES": json.dumps([PROFILE]),
    "IDEMPOTENCY_TABLE": "idem",
}
