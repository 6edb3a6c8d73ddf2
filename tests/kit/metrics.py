"""The metrics AWS publishes (as documented) and the ones ``lambda_fn`` emits."""

from __future__ import annotations

NAMESPACE = "FargateRunners"


_API_DIMENSIONS = [{"ApiName"}, {"ApiName", "Stage"}, {"ApiName", "Method", "Resource", "Stage"}]
_LAMBDA_DIMENSIONS = [
    {"FunctionName"},
    {"FunctionName", "Resource"},
    {"FunctionName", "ExecutedVersion"},
]
#: (namespace, metric) -> the dimension sets AWS publishes, as documented:
AWS_PUBLISHED: dict[tuple[str, str], list[set[str]]] = {
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-metrics-and-dimensions.html
    **{("AWS/ApiGateway", m): _API_DIMENSIONS for m in ("Count", "4XXError", "5XXError")},
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html
    # (RunningTaskCount exists only per ServiceName, ClusterName: this stack runs no services.)
    ("ECS/ContainerInsights", "TaskCount"): [{"ClusterName"}],
    ("ECS/ContainerInsights", "RunningTaskCount"): [{"ServiceName", "ClusterName"}],
    # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
    **{("AWS/Lambda", m): _LAMBDA_DIMENSIONS for m in ("Errors", "Throttles", "Duration")},
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): [{"QueueName"}],
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): [{"QueueName"}],
}
#: Dimensions that need a resource this stack never creates (an ECS service).
STACK_HAS_NO = {"ServiceName"}


def emitted_by_lambda() -> dict[tuple[str, str], list[set[str]]]:
    """What ``lambda_fn`` emits, read from its ``count``/``milliseconds``/``seconds`` calls.

    ``count(name)`` and ``milliseconds(name, ...)`` go to the shared Metrics object
    (dimension ``service``); ``count(name, (dim, value))`` is a single metric with
    ``dim`` plus ``service`` (see fargate_runners/dashboard.py).
    """
    import ast
    from pathlib import Path

    emitted: dict[tuple[str, str], list[set[str]]] = {}
    for path in Path("lambda_fn").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in ("count", "milliseconds", "seconds") or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue  # computed names (Reconciler_*) are not on the dashboard
            dimensions = {"service"}
            position = {"count": 1, "seconds": 2}.get(node.func.id)
            if position is not None and len(node.args) > position:
                second = node.args[position]
                assert isinstance(second, ast.Tuple), ast.dump(second)
                dimension = second.elts[0]
                assert isinstance(dimension, ast.Constant), ast.dump(dimension)
                dimensions.add(str(dimension.value))
            emitted.setdefault((NAMESPACE, first.value), []).append(dimensions)
    return emitted
