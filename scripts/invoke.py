"""Run a Lambda handler on an event file locally, like ``sam local invoke``, and print its answer.

    python -m scripts.invoke events/apigw-v2-multipart.json
    python -m scripts.invoke events/sqs-s3-put.json   # S3 is moto, seeded with imgs/cat.png
    python -m scripts.invoke events/s3-put.json --aws          # use your real AWS account instead

The handler is chosen by the event's shape: API Gateway events go to ``classifier.api.handler``,
S3, SQS and EventBridge events to ``classifier.upload_classifier.handler``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalContext:
    """Enough of Lambda's context object for Powertools and Mangum."""

    function_name: str = "local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:local"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def is_api_event(event: dict[str, Any]) -> bool:
    return "requestContext" in event and ("httpMethod" in event or "routeKey" in event)


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of every object an S3, SQS or EventBridge event names."""
    from classifier.upload_classifier import object_in_eventbridge, objects_in_notification

    if event.get("source") == "aws.s3":
        obj = object_in_eventbridge(event)
        return [(obj.bucket, obj.key)]
    found = []
    for record in event.get("Records", []):
        notification = (
            json.loads(record["body"])
            if record.get("eventSource") == "aws:sqs"
            else {"Records": [record]}
        )
        found += [(o.bucket, o.key) for o in objects_in_notification(notification)]
    return found


def invoke(event: dict[str, Any], *, seed: Path | None = None) -> Any:
    """Call the right handler; with ``seed``, S3 is moto holding ``seed`` at every named key."""
    if is_api_event(event):
        from classifier.api import handler

        return handler(event, LocalContext(function_name="cifar10-api"))
    from classifier import service
    from classifier.upload_classifier import handler as upload_handler

    if seed is None:
        return upload_handler(event, LocalContext(function_name="cifar10-uploads"))
    from moto import mock_aws

    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    with mock_aws():
        service.reset()
        s3 = service.s3_client()
        for bucket, key in s3_objects(event):
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(
                    Bucket=bucket,
                    CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
                )
            s3.put_object(Bucket=bucket, Key=key, Body=seed.read_bytes())
        response = upload_handler(event, LocalContext(function_name="cifar10-uploads"))
        for bucket in sorted({bucket for bucket, _ in s3_objects(event)}):
            listing = s3.list_objects_v2(Bucket=bucket, Prefix=service.settings().results_prefix)
            for item in listing.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                print(f"s3://{bucket}/{item['Key']}:\n{body.decode()}", file=sys.stderr)
        service.reset()
        return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/invoke.py", description=__doc__.split("\n")[0])
    parser.add_argument("event", type=Path, help="an event JSON file, e.g. events/s3-put.json")
    parser.add_argument("--aws", action="store_true", help="S3 events: use real AWS, not moto")
    parser.add_argument(
        "--seed", type=Path, default=ROOT / "imgs" / "cat.png", help="object content under moto"
    )
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())
    response = invoke(event, seed=None if args.aws else args.seed)
    print(json.dumps(response, indent=2))


if __name__ == "__main__":
    main()
