"""The S3-upload classifier: PNGs dropped under ``uploads/`` get a JSON result under ``results/``.

One handler takes the three shapes S3 can deliver: S3 event notifications, SQS messages whose
bodies are S3 event notifications (the deployed wiring, with partial batch responses so only
failed messages return to the queue), and EventBridge "Object Created" events.

An object that is not a usable image gets a result with an ``error`` field: retrying would not
change it. A read or write failure, or a model that will not load, raises, so the message is
retried and finally parked in the dead-letter queue; nothing is dropped silently.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from classifier import service
from classifier.core import ImageError, ImageTooLarge
from classifier.settings import DEFAULT_NAMESPACE

logger = Logger(service="cifar10-uploads")
metrics = Metrics(namespace=DEFAULT_NAMESPACE, service="cifar10-uploads")


class UnknownEvent(ValueError):
    """The event is none of the shapes this handler accepts."""


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None


def objects_in_notification(notification: dict[str, Any]) -> list[S3Object]:
    """The objects of an S3 event notification (keys arrive URL-encoded: decode each)."""
    if notification.get("Event") == "s3:TestEvent":
        return []  # sent once when the notification is configured; nothing to classify
    found = []
    for record in notification.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        found.append(
            S3Object(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId"),
                etag=obj.get("eTag"),
                size=obj.get("size"),
            )
        )
    return found


def object_in_eventbridge(event: dict[str, Any]) -> S3Object:
    detail = event["detail"]
    obj = detail["object"]
    return S3Object(
        bucket=detail["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        version_id=obj.get("version-id"),
        etag=obj.get("etag"),
        size=obj.get("size"),
    )


def result_key(key: str, uploads_prefix: str, results_prefix: str) -> str:
    """``uploads/a/cat.png`` -> ``results/a/cat.png.json``."""
    relative = key[len(uploads_prefix) :] if key.startswith(uploads_prefix) else key
    return f"{results_prefix}{relative}.json"


def classify_object(obj: S3Object) -> dict[str, Any] | None:
    """Classify one object and write its result; returns the result, or None if ignored."""
    config = service.settings()
    if obj.key.startswith(config.results_prefix):
        logger.info("ignored: a result, not an upload", extra={"key": obj.key})
        return None
    s3 = service.s3_client()
    get_args = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        get_args["VersionId"] = obj.version_id
    # A read failure (missing object, access denied) propagates: the message will be retried.
    response = s3.get_object(**get_args)
    result: dict[str, Any] = {
        "bucket": obj.bucket,
        "key": obj.key,
        "version_id": obj.version_id or response.get("VersionId"),
        "etag": (obj.etag or response.get("ETag", "")).strip('"') or None,
        "classified_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    size = int(response.get("ContentLength") or 0)
    start = time.perf_counter()
    try:
        if size > config.max_body_bytes:
            raise ImageTooLarge(
                f"the object is {size} bytes; at most {config.max_body_bytes} are accepted"
            )
        data = response["Body"].read()
        classifier = service.classifier()  # a model that cannot load raises: retry
        result.update(classifier.predict(data).as_dict())
    except ImageError as exc:
        result["error"] = str(exc)
        metrics.add_metric(name="ImagesRejected", unit=MetricUnit.Count, value=1)
        logger.warning("not classified", extra={"key": obj.key, "error": str(exc)})
    else:
        latency = (time.perf_counter() - start) * 1000
        metrics.add_metric(name="ImagesClassified", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ClassifyLatency", unit=MetricUnit.Milliseconds, value=latency)
        metrics.add_metric(name=f"Category_{result['category']}", unit=MetricUnit.Count, value=1)
        logger.info(
            "classified",
            extra={
                "key": obj.key,
                "category": result["category"],
                "confidence": result["confidence"],
                "latency_ms": round(latency, 2),
            },
        )
    out_key = result_key(obj.key, config.uploads_prefix, config.results_prefix)
    s3.put_object(
        Bucket=obj.bucket,
        Key=out_key,
        Body=json.dumps(result, indent=2).encode(),
        ContentType="application/json",
    )
    result["result_key"] = out_key
    return result


def _sqs_record(record: SQSRecord) -> list[dict[str, Any] | None]:
    try:
        notification = json.loads(record.body)
    except ValueError as exc:
        raise UnknownEvent(f"SQS message {record.message_id} is not JSON") from exc
    return [classify_object(obj) for obj in objects_in_notification(notification)]


def process(event: dict[str, Any]) -> dict[str, Any]:
    """Handle any of the three event shapes; SQS gets a partial batch response."""
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        processor = BatchProcessor(event_type=EventType.SQS)
        return dict(
            process_partial_response(event=event, record_handler=_sqs_record, processor=processor)
        )
    if records and records[0].get("eventSource") == "aws:s3":
        results = [classify_object(obj) for obj in objects_in_notification(event)]
        return {"results": [r for r in results if r is not None]}
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        result = classify_object(object_in_eventbridge(event))
        return {"results": [result] if result else []}
    raise UnknownEvent(
        "the event is neither an S3 notification, an SQS batch of them, nor an EventBridge "
        f"'Object Created' event (keys: {sorted(event)[:8]})"
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process(event)
