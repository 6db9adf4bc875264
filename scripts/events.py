"""S3 event notifications and SQS messages built the way S3 and SQS deliver them: one builder for
events/ (scripts/make_events.py), the demo, the benchmarks and the tests."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote_plus


def s3_record(
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    sequencer: str | None = None,
    size: int = 0,
    etag: str = "0" * 32,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """One ObjectCreated record; S3 URL-encodes the key (spaces as +)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if version_id:
        obj["versionId"] = version_id
    if sequencer:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": "2026-11-26T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "uploads",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    """An S3 notification as Lambda receives it directly."""
    return {"Records": list(records)}


def sqs_message(
    body: dict[str, Any],
    receive_count: int = 1,
    *,
    message_id: str | None = None,
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:uploads",
) -> dict[str, Any]:
    """One SQS record carrying ``body`` (a new message id unless given)."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795694400000",
            "SenderId": "S3",
            "ApproximateFirstReceiveTimestamp": "1795694400001",
        },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    """An SQS batch as Lambda receives it."""
    return {"Records": list(messages)}
