"""``fargate-runners``: set up, inspect and check a deployed runner stack.

Reads everything it needs from the stack's CloudFormation outputs, so the
operator types no ARNs. ``lambda_fn`` never imports this package.
"""

__all__ = ["main"]

from runners_cli.cli import main
