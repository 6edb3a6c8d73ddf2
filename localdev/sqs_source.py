"""Lambda's SQS event source, played against a queue (moto): the retry consumer's input.

What AWS documents for an SQS event source with ``ReportBatchItemFailures``
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html): up to
ten messages per batch as ``Records``; the messages the function names in
``batchItemFailures`` stay on the queue (here made visible again at once, instead of
after the visibility timeout) and the others are deleted. Shared by the retry-path tests
and the start-latency bench.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["deliver_batch"]


def deliver_batch(
    sqs: Any,
    queue_url: str,
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    context: Any,
    region: str = "us-east-1",
) -> dict[str, Any] | None:
    """One batch from ``queue_url`` to ``handler``; its answer, or None if the queue is empty."""
    got = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    if not got:
        return None
    queue_arn = f"arn:aws:sqs:{region}:123456789012:{queue_url.rsplit('/', 1)[-1]}"
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in got
        ]
    }
    result = handler(event, context)
    failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
    for m in got:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return result
