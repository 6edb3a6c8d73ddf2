"""CDK app for ephemeral GitHub Actions runners on AWS Fargate.

- :mod:`cdk.config`: ``cdk.json`` context -> validated, typed configuration.
- :mod:`cdk.bundling`: the webhook Lambda asset, bundled with pip (no Docker).
- :mod:`cdk.construct`: :class:`~cdk.construct.FargateRunners`, the reusable construct.
- :mod:`cdk.stack`: the thin stack that reads context; :mod:`cdk.app`: the entry point.
"""
