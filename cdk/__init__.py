"""The repository's CDK app: ``python -m cdk.app`` (see ``cdk.json``).

Everything it builds comes from the installable :mod:`fargate_runners` library; this
package only reads ``cdk.json`` and synthesizes one stack.
"""
