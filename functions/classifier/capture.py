"""Keep the answers worth reviewing, without ever failing or holding up an answer.

Which answers: the function's ``CAPTURE`` setting (contract.CAPTURE_MODES). A capture error is
logged and counted (``CaptureFailed``) and the answer goes out regardless; the capture client's
timeouts bound what a slow S3 can add (service.capture_s3_client).
"""

from __future__ import annotations

import random
from typing import Any

from classifier import contract, review, service
from classifier.core import Prediction
from classifier.telemetry import ClassificationMetrics


def worth_capturing(prediction: Prediction, mode: str, sample: float) -> bool:
    if mode == "unsure":
        return prediction.unsure or prediction.none_of_these
    if mode == "all":
        return random.random() < sample  # noqa: S311 (a sample, not a secret)
    return False


def _enabled(prediction: Prediction) -> str | None:
    config = service.settings()
    if not config.review_bucket or not worth_capturing(
        prediction, config.capture, config.capture_sample
    ):
        return None
    return config.review_bucket


def capture_bytes(
    data: bytes,
    prediction: Prediction,
    filename: str | None,
    *,
    logger: Any,
    telemetry: ClassificationMetrics,
) -> str | None:
    """The API's capture: the bytes it classified and its answer. Returns the item id or None."""
    bucket = _enabled(prediction)
    if bucket is None:
        return None
    try:
        item_id = review.capture_bytes(
            service.capture_s3_client(), bucket, data, prediction, filename
        )
    except Exception as exc:  # noqa: BLE001 (capture never fails an answer)
        logger.warning("capture failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        telemetry.count(contract.METRIC_CAPTURE_FAILED)
        return None
    telemetry.count(contract.METRIC_CAPTURED)
    return item_id


def capture_object(
    image: dict[str, Any],
    data: bytes,
    prediction: Prediction,
    *,
    logger: Any,
    telemetry: ClassificationMetrics,
) -> str | None:
    """The drop folder's capture: a record pointing at the upload, by version."""
    bucket = _enabled(prediction)
    if bucket is None:
        return None
    try:
        item_id = review.capture_object(
            service.capture_s3_client(), bucket, image, data, prediction
        )
    except Exception as exc:  # noqa: BLE001 (capture never fails an answer)
        logger.warning(
            "capture failed",
            extra={"key": image.get("key"), "error": f"{type(exc).__name__}: {exc}"},
        )
        telemetry.count(contract.METRIC_CAPTURE_FAILED)
        return None
    telemetry.count(contract.METRIC_CAPTURED)
    return item_id
