"""The S3-upload classifier: images dropped under ``uploads/`` get a JSON result under ``results/``.

One handler takes the three shapes S3 can deliver, parsed with Powertools' event classes: S3
event notifications, SQS messages whose bodies are S3 event notifications (the deployed wiring,
with partial batch responses so only failed messages return to the queue), and EventBridge
"Object Created" events.

Event shapes become objects in ``classifier.s3_events``, results are written by
``classifier.result_store`` and announced by ``classifier.completion``.

Every object gets an answer. The notification does not filter on the name (see
``classifier.contract``): the content decides. An object that is not a usable PNG or JPEG gets a
result with an ``error`` field, since retrying would not change it. A read or write failure, or a
model that will not load, raises, so the message is retried and finally parked in the
dead-letter queue; nothing is dropped silently.

No stale results: a result records the S3 ``sequencer`` of the upload it describes, and is
written only if no result of a later upload of that key is there (S3 conditional writes close
the race between two writers). A standard queue delivers out of order and more than once; the
result always describes the newest version of its object.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from classifier import capture, contract, service
from classifier.completion import publish_completion
from classifier.core import ImageError, ImageTooLarge
from classifier.logs import Logger
from classifier.result_store import (
    DUPLICATE,
    SUPERSEDED,
    WRITTEN,
    ResultConflict,
    later,
    result_key,
    write_result,
)
from classifier.s3_events import (
    S3Object,
    UnknownEvent,
    object_in_eventbridge,
    objects_in_notification,
)
from classifier.telemetry import ClassificationMetrics

__all__ = [  # what tests and scripts reach through this module
    "DUPLICATE",
    "SUPERSEDED",
    "WRITTEN",
    "ResultConflict",
    "UnknownEvent",
    "handler",
    "later",
    "object_in_eventbridge",
    "objects_in_notification",
    "process",
    "write_result",
]

logger = Logger(service=contract.UPLOADS_SERVICE)
telemetry = ClassificationMetrics(contract.UPLOADS_SERVICE)
service.preload()  # in Lambda's init phase; nothing locally

# S3 reads and writes of a batch overlap in a small thread pool (a container is not idle while S3
# answers); inference takes a lock, so the interpreter runs one image at a time.
_io_pool: ThreadPoolExecutor | None = None
_cpu = threading.Lock()


def _classify_body(
    response: dict[str, Any], result: dict[str, Any], key: str, limit: int
) -> tuple[Any, bytes]:
    """Read and classify an object's body into ``result`` (its answer, or an error result for
    what is not an image): the prediction (None for an error) and the bytes read."""
    size = int(response.get("ContentLength") or 0)
    model_version: str | None = None
    data, prediction = b"", None
    try:
        if size > limit:
            raise ImageTooLarge(f"the object is {size} bytes; at most {limit} are accepted")
        data = response["Body"].read()
        with _cpu:
            classifier = service.classifier()  # a model that cannot load raises: retry
            model_version = classifier.model_version
            start = time.perf_counter()
            prediction = classifier.predict(data)
            latency = (time.perf_counter() - start) * 1000
        result.update(prediction.as_dict())
    except ImageError as exc:
        result["error"] = str(exc)
        telemetry.rejected(model_version)
        logger.warning("not classified", extra={"key": key, "error": str(exc)})
    else:
        telemetry.classified(prediction, latency)
        logger.info(
            "classified",
            extra={
                "key": key,
                "category": result["category"],
                "confidence": result["confidence"],
                "latency_ms": round(latency, 2),
            },
        )
    return prediction, data


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
        "sequencer": obj.sequencer,
        "classified_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    prediction, data = _classify_body(response, result, obj.key, config.max_object_bytes)
    out_key = result_key(obj.key, config.uploads_prefix, config.results_prefix)
    result["result_key"] = out_key
    outcome = write_result(s3, obj.bucket, out_key, result, obj.sequencer)
    if outcome == SUPERSEDED:
        result["superseded"] = True
        telemetry.count(contract.METRIC_SUPERSEDED)
        logger.info("not written: a later upload's result is there", extra={"key": obj.key})
        return result
    if outcome == WRITTEN and "error" not in result:  # once per upload, not per delivery
        upload = {"bucket": obj.bucket, "key": obj.key, "version_id": result["version_id"]}
        capture.keep(
            data,
            prediction,
            source="uploads",
            filename=obj.key.rsplit("/", 1)[-1],
            upload=upload,
            logger=logger,
            telemetry=telemetry,
        )
    publish_completion(result)  # also for a duplicate: its first delivery may have failed here
    return result


def _sqs_record(record: SQSRecord) -> list[dict[str, Any] | None]:
    try:
        notification = json.loads(record.body)
    except ValueError as exc:
        raise UnknownEvent(f"SQS message {record.message_id} is not JSON") from exc
    return [classify_object(obj) for obj in objects_in_notification(notification)]


class BatchFailed(RuntimeError):
    """Some objects of a bulk batch could not be read or written; the map retries the batch."""


def classify_batch(event: dict[str, Any]) -> dict[str, Any]:
    """A Distributed Map batch: S3 listing items of one bucket, classified in the I/O pool."""
    bucket = event["BatchInput"][contract.BULK_BUCKET_FIELD]
    objects = [
        S3Object(bucket=bucket, key=item["Key"], etag=item.get("Etag"), size=item.get("Size"))
        for item in event["Items"]
        if not item["Key"].endswith("/")  # folder placeholders
    ]

    def attempt(obj: S3Object) -> tuple[dict[str, Any] | None, BaseException | None]:
        try:
            return classify_object(obj), None
        except Exception as exc:  # noqa: BLE001 - collected, then raised for the whole batch
            return None, exc

    outcomes = list(_io_threads().map(attempt, objects))
    failed = [(obj.key, exc) for obj, (_, exc) in zip(objects, outcomes) if exc is not None]
    if failed:
        raise BatchFailed(f"{len(failed)} of {len(objects)} objects failed, e.g. {failed[0]}")
    results = [r for r, _ in outcomes if r is not None]
    return {
        "objects": len(objects),
        "classified": sum("category" in r for r in results),
        "rejected": sum("error" in r for r in results),
        "skipped": len(objects) - len(results),
    }


def _io_threads() -> ThreadPoolExecutor:
    global _io_pool
    if _io_pool is None:
        _io_pool = ThreadPoolExecutor(
            max_workers=service.settings().io_threads, thread_name_prefix="s3-io"
        )
    return _io_pool


def _outcome(record: dict[str, Any]) -> tuple[Any, BaseException | None]:
    try:
        return _sqs_record(SQSRecord(record)), None
    except Exception as exc:  # noqa: BLE001 - the batch processor reports this message
        return None, exc


def process(event: dict[str, Any]) -> dict[str, Any]:
    """Handle any of the three event shapes; SQS gets a partial batch response."""
    if contract.CHECK_FIELD in event:
        # The rollout's pre-traffic check (infra/hooks/pre_traffic.py): classify the image in
        # the event with this version's model; nothing is read or written.
        image = base64.b64decode(str(event[contract.CHECK_FIELD]), validate=True)
        return {"check": service.classifier().predict(image).as_dict()}
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        # Every message is handled at once in the I/O pool; Powertools then turns the outcomes
        # into the partial batch response (failed messages only, or raise if all failed).
        outcomes = dict(
            zip((r["messageId"] for r in records), _io_threads().map(_outcome, records))
        )

        def replay(record: SQSRecord) -> Any:
            result, error = outcomes[record.message_id]
            if error is not None:
                raise error
            return result

        processor = BatchProcessor(event_type=EventType.SQS)
        return dict(
            process_partial_response(event=event, record_handler=replay, processor=processor)
        )
    if "Items" in event and contract.BULK_BUCKET_FIELD in (event.get("BatchInput") or {}):
        return classify_batch(event)
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
@telemetry.flushed
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process(event)
