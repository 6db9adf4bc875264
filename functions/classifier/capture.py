"""Keep the answers worth reviewing, without ever failing or holding up an answer.

Which answers: the function's ``CAPTURE`` setting (contract.CAPTURE_MODES). A capture error is
logged and counted (``CaptureFailed``) and the answer goes out regardless; the capture client's
timeouts bound what a slow S3 can add (service.capture_s3_client).
"""

from __future__ import annotations

import random
import time
from typing import Any

from classifier import contract, review_store, service
from classifier.core import Prediction
from classifier.telemetry import ClassificationMetrics

# After a failed capture this container skips capture for a while: a slow or failing S3 then
# costs one request its timeouts (service.capture_s3_client), not every request (a batch of 32).
SUSPEND_SECONDS = 60.0
_suspended_until = 0.0


def resume() -> None:
    """Capture again at once (tests; a new container starts this way)."""
    global _suspended_until
    _suspended_until = 0.0


def worth_capturing(prediction: Prediction, mode: str, sample: float) -> bool:
    if mode == "unsure":
        return prediction.unsure or prediction.none_of_these
    if mode == "all":
        return random.random() < sample  # noqa: S311 (a sample, not a secret)
    return False


def keep(
    data: bytes,
    prediction: Prediction,
    *,
    source: str,
    filename: str | None,
    logger: Any,
    telemetry: ClassificationMetrics,
    upload: dict[str, Any] | None = None,
) -> str | None:
    """Keep this answer for review if it is worth it (a private copy of the image, its record);
    never raises. The item id, or None: not worth it, already kept, over the hour's bound
    (each counted), or S3 failed (logged and counted)."""
    global _suspended_until
    config = service.settings()
    bucket = config.review_bucket
    if not bucket or not worth_capturing(prediction, config.capture, config.capture_sample):
        return None
    if time.monotonic() < _suspended_until:  # S3 failed us a moment ago: answer, do not wait
        telemetry.count(contract.METRIC_CAPTURE_FAILED)
        return None
    try:
        item_id = review_store.capture(
            service.capture_s3_client(),
            bucket,
            data,
            prediction,
            source=source,
            filename=filename,
            per_hour=config.capture_per_hour,
            upload=upload,
        )
    except review_store.NotKept as refused:
        telemetry.count(refused.reason)
        return None
    except Exception as exc:  # noqa: BLE001 (capture never fails an answer)
        _suspended_until = time.monotonic() + SUSPEND_SECONDS
        logger.warning(
            "capture failed",
            extra={"image_name": filename, "error": f"{type(exc).__name__}: {exc}"},
        )
        telemetry.count(contract.METRIC_CAPTURE_FAILED)
        return None
    telemetry.count(contract.METRIC_CAPTURED)
    return item_id
