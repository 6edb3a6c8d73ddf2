"""Webhook Lambda that turns queued GitHub ``workflow_job`` events into Fargate runners.

The package is deliberately import-light: nothing here talks to AWS or GitHub
until a request needs it (see ``docs/contract.md``).
"""
