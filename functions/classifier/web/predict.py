"""POST /predict and POST /predict/batch."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from classifier import capture, service
from classifier.core import Classifier, ImageError, Prediction
from classifier.settings import MAX_BATCH_FILES
from classifier.web.common import (
    CLASSIFIER,
    IMAGE_TYPES,
    ErrorOut,
    RequestError,
    error_status,
    logger,
    media_type,
    parse_json,
    read_body,
    read_files,
    run_cpu_bound,
    telemetry,
    unsupported,
)

router = APIRouter()


class PredictionOut(BaseModel):
    category: str = Field(description="the most likely category")
    confidence: float = Field(
        examples=[0.87],
        description="its calibrated probability: of answers given with confidence p, about p "
        "are right (temperature fitted on the validation split)",
    )
    unsure: bool = Field(
        examples=[False],
        description="true when the confidence is below the model's doubt threshold (chosen on "
        "validation so that answers not flagged are right at least 97.5% of the time): treat "
        "the answer as 'category or runner_up'",
    )
    runner_up: str = Field(description="the second most likely category")
    none_of_these: bool = Field(
        examples=[False],
        description="true when the image looks like none of the model's categories (its "
        "novelty score is above a threshold chosen on validation so that at most 5% of "
        "in-category images are flagged); category is then only the closest one. Always false "
        "for a model whose manifest has no such threshold",
    )
    probabilities: dict[str, float] = Field(description="every category's probability")
    model_version: str


class BatchItemOut(BaseModel):
    filename: str | None = None
    status: int = Field(description="200, or the status this image alone would have got")
    prediction: PredictionOut | None = None
    error: str | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


BINARY = {"type": "string", "format": "binary"}


def multipart_body(file: dict[str, Any], **other: Any) -> dict[str, Any]:
    """An OpenAPI request body of a multipart ``file`` field (and other media types)."""
    form = {"type": "object", "properties": {"file": file}, "required": ["file"]}
    content = {"multipart/form-data": {"schema": form}, **other}
    return {"requestBody": {"required": True, "content": content}}


BASE64_IMAGE = {
    "type": "string",
    "format": "byte",
    "description": "the PNG or JPEG, base64 (a data: URL also works)",
}
UPLOAD_BODY = multipart_body(
    BINARY,
    **{
        "image/png": {"schema": BINARY},
        "image/jpeg": {"schema": BINARY},
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"image": BASE64_IMAGE},
                "required": ["image"],
            }
        },
    },
)
BATCH_BODY = multipart_body({"type": "array", "items": BINARY, "maxItems": MAX_BATCH_FILES})
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (
            400,
            "not a decodable image (an empty `file` part too), a multipart or JSON body that "
            "cannot be parsed, invalid base64, or more than one `file` part on /predict",
        ),
        (
            413,
            "body over the size limit, an image over the per-image pixel limit, images over the "
            f"per-request pixel budget, or over {MAX_BATCH_FILES} files",
        ),
        (
            415,
            "not multipart, image/png, image/jpeg or application/json; or an image of another "
            "format",
        ),
        (422, 'no `file` part, or a JSON body without an "image" string'),
        (503, "the model cannot be loaded, or a setting is invalid (the reason is given)"),
    )
}


def _json_image(body: bytes) -> bytes:
    """The image of a JSON body ``{"image": "<base64>"}`` (a data: URL prefix is allowed)."""
    document = parse_json(body)
    image = document.get("image") if isinstance(document, dict) else None
    if not isinstance(image, str) or not image:
        raise RequestError(422, 'the JSON body has no "image" string; send {"image": "<base64>"}')
    _, _, encoded = image.rpartition(",") if image.startswith("data:") else ("", "", image)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f'"image" is not valid base64: {exc}') from exc


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses=ERRORS,
    openapi_extra=UPLOAD_BODY,
    summary="Classify one image",
)
async def predict(request: Request, classifier: Classifier = CLASSIFIER) -> PredictionOut:
    media = media_type(request)
    filename = None
    if media == "multipart/form-data":
        files = await read_files(request)
        if len(files) > 1:
            raise RequestError(400, f"{len(files)} `file` parts sent; use /predict/batch for more")
        filename, data = files[0]
    elif media in IMAGE_TYPES:
        data = await read_body(request)
    elif media == "application/json":
        data = _json_image(await read_body(request))
    else:
        raise unsupported(media)
    start = time.perf_counter()
    prediction = await run_cpu_bound(request, _predict_one, classifier, data, filename)
    logger.info(
        "predicted",
        extra={
            "category": prediction.category,
            "confidence": prediction.confidence,
            "bytes": len(data),
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        },
    )
    return PredictionOut(**prediction.as_dict())


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=ERRORS,
    openapi_extra=BATCH_BODY,
    summary=f"Classify up to {MAX_BATCH_FILES} images",
)
async def predict_batch(request: Request, classifier: Classifier = CLASSIFIER) -> BatchOut:
    media = media_type(request)
    if media != "multipart/form-data":
        raise unsupported(media)
    files = await read_files(request)
    if len(files) > MAX_BATCH_FILES:
        raise RequestError(
            413, f"{len(files)} files sent; at most {MAX_BATCH_FILES} are accepted per batch"
        )
    _check_request_budget(classifier, [data for _, data in files])
    return await run_cpu_bound(request, _classify_batch, classifier, files)


def _check_request_budget(classifier: Classifier, images: list[bytes]) -> None:
    """Refuse (413) a request whose images would decode to more pixels than the budget.

    Read from the headers only (JPEGs counted at the scale they will be decoded at); an image
    that cannot be opened costs nothing here and gets its own error below.
    """
    budget = service.settings().max_request_pixels
    total = 0
    for data in images:
        try:
            total += classifier.decode_cost(data)
        except ImageError:
            continue
    if total > budget:
        raise RequestError(
            413,
            f"the {len(images)} images would decode to {total / 1e6:.1f} MP in all; at most "
            f"{budget / 1e6:g} MP per request is accepted (send fewer or smaller images)",
        )


def _predict_one(classifier: Classifier, data: bytes, filename: str | None = None) -> Prediction:
    """One image's prediction, counted in the metrics (classified or rejected) by model version,
    and kept for review when the API's capture setting says so (never failing the answer)."""
    start = time.perf_counter()
    try:
        prediction = classifier.predict(data)
    except ImageError:
        telemetry.rejected(classifier.model_version)
        raise
    telemetry.classified(prediction, (time.perf_counter() - start) * 1000)
    capture.keep(
        data, prediction, source="api", filename=filename, logger=logger, telemetry=telemetry
    )
    return prediction


def _classify_batch(classifier: Classifier, files: list[tuple[str | None, bytes]]) -> BatchOut:
    results = []
    for name, data in files:
        try:
            prediction = _predict_one(classifier, data, name)
        except ImageError as exc:
            results.append(BatchItemOut(filename=name, status=error_status(exc), error=str(exc)))
        else:
            results.append(
                BatchItemOut(
                    filename=name, status=200, prediction=PredictionOut(**prediction.as_dict())
                )
            )
    return BatchOut(results=results)
