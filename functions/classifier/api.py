"""The HTTP API: FastAPI locally (uvicorn) and in Lambda (Mangum behind API Gateway).

GET  /                 a web page: choose or drop images, see each one's category and bars
POST /predict          one image: multipart field ``file``, or a raw image/png|jpeg body
POST /predict/batch    up to 32 ``file`` parts, one result each, in order
POST /uploads          an id and a presigned S3 POST for one image up to 20 MB (async path)
GET  /results/{id}     202 while pending, 200 with the result, 404 for an unknown id
GET  /health           is the model loaded, which runtime, which version
GET  /model            the model's manifest
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from mangum import Mangum
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from classifier import contract, manifest, service
from classifier.core import (
    Classifier,
    ImageError,
    ImageTooLarge,
    ModelError,
    UndecodableImage,
    UnsupportedImage,
)
from classifier.settings import DEFAULT_BODY_BYTES, MAX_BATCH_FILES, SettingsError

logger = Logger(service=contract.API_SERVICE)

IMAGE_TYPES = contract.MEDIA_TYPES
STATUS = {UndecodableImage: 400, ImageTooLarge: 413, UnsupportedImage: 415}


class PredictionOut(BaseModel):
    category: str = Field(examples=["cat"])
    confidence: float = Field(examples=[0.87])
    probabilities: dict[str, float]
    model_version: str


class BatchItemOut(BaseModel):
    filename: str | None = None
    status: int = Field(description="200, or the status this image alone would have got")
    prediction: PredictionOut | None = None
    error: str | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class HealthOut(BaseModel):
    status: str
    model_loaded: bool
    runtime: str | None = None
    model_version: str | None = None
    error: str | None = None


class UploadIn(BaseModel):
    content_type: str = Field("image/png", examples=["image/jpeg"])


class UploadOut(BaseModel):
    id: str = Field(description="unguessable; the only way to read the result")
    upload: dict[str, Any] = Field(description="POST the file to `url` with these form `fields`")
    result: str = Field(description="poll this path: 202 while pending, 200 when done")
    max_bytes: int
    expires_in: int = Field(description="seconds the upload form stays valid")


class ErrorOut(BaseModel):
    detail: str


class RequestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _error_status(exc: ImageError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "byte",
                            "description": "the PNG or JPEG, base64 (a data: URL also works)",
                        }
                    },
                    "required": ["image"],
                }
            },
        },
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_BATCH_FILES,
                        }
                    },
                    "required": ["file"],
                }
            }
        },
    }
}
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


class StagePrefix:
    """Serve behind an API Gateway stage (``/prod/docs``) as well as at the root.

    Mangum hands routes the path without the stage; setting ``root_path`` to the stage makes
    the OpenAPI docs and their ``servers`` entry point at ``/<stage>/openapi.json``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = scope.get("aws.event") or {}
        context = event.get("requestContext") or {}
        stage = context.get("stage")
        if scope["type"] == "http" and stage and stage != "$default":
            prefix = f"/{stage}"
            seen = (context.get("http") or {}).get("path") or context.get("path") or ""
            if seen == prefix or seen.startswith(prefix + "/"):
                path = scope["path"]
                if not (path == prefix or path.startswith(prefix + "/")):
                    path = prefix + path
                scope = {**scope, "root_path": prefix, "path": path}
        await self.app(scope, receive, send)


app = FastAPI(
    title="CIFAR-10 classifier",
    description="Classifies an image into one of the ten CIFAR-10 categories with an int8 "
    "TensorFlow Lite CNN.",
    version="1.0.0",
)


@app.exception_handler(RequestError)
async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


@app.exception_handler(ImageError)
async def _image_error(request: Request, exc: ImageError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=_error_status(exc))


def _unavailable(exc: ModelError) -> str:
    if isinstance(exc, SettingsError):
        return f"the service is misconfigured: {exc}"
    return f"the model is unavailable: {exc}"


@app.exception_handler(ModelError)
async def _model_error(request: Request, exc: ModelError) -> JSONResponse:
    logger.error("service unavailable", extra={"error": str(exc)})
    return JSONResponse({"detail": _unavailable(exc)}, status_code=503)


async def _body(request: Request) -> bytes:
    """The request body, refused (413) past the limit, before it is parsed."""
    limit = service.settings().max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared)} bytes; at most {limit} are accepted")
    body = await request.body()
    if len(body) > limit:
        raise RequestError(413, f"the body is {len(body)} bytes; at most {limit} are accepted")
    return body


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _files(request: Request) -> list[tuple[str | None, bytes]]:
    """The ``file`` parts of a multipart request, as (filename, bytes)."""
    await _body(request)
    try:
        form = await request.form(max_files=MAX_BATCH_FILES, max_fields=MAX_BATCH_FILES)
    except Exception as exc:
        reason = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc)
        if reason.startswith("Too many"):
            raise RequestError(
                413,
                f"more than {MAX_BATCH_FILES} files or fields sent; at most {MAX_BATCH_FILES} "
                "files are accepted per request",
            ) from exc
        raise RequestError(400, f"the multipart body cannot be parsed: {reason}") from exc
    parts = form.getlist("file")
    if not parts:
        raise RequestError(422, "the multipart body has no `file` part; send the image as `file`")
    files = []
    for part in parts:
        if isinstance(part, UploadFile):
            files.append((part.filename, await part.read()))
        else:
            files.append((None, part.encode()))
    return files


def _unsupported(media: str) -> RequestError:
    return RequestError(
        415,
        f"content type {media or '(none)'} is not accepted; send multipart/form-data with a "
        f"`file` part, a raw body with Content-Type {' or '.join(IMAGE_TYPES)}, or JSON "
        '{"image": "<base64>"}',
    )


def _json_image(body: bytes) -> bytes:
    """The image of a JSON body ``{"image": "<base64>"}`` (a data: URL prefix is allowed)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise RequestError(400, f"the JSON body cannot be parsed: {exc}") from exc
    image = document.get("image") if isinstance(document, dict) else None
    if not isinstance(image, str) or not image:
        raise RequestError(422, 'the JSON body has no "image" string; send {"image": "<base64>"}')
    _, _, encoded = image.rpartition(",") if image.startswith("data:") else ("", "", image)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f'"image" is not valid base64: {exc}') from exc


@app.post(
    "/predict",
    response_model=PredictionOut,
    responses=ERRORS,
    openapi_extra=UPLOAD_BODY,
    summary="Classify one image",
)
async def predict(request: Request) -> PredictionOut:
    media = _media_type(request)
    if media == "multipart/form-data":
        files = await _files(request)
        if len(files) > 1:
            raise RequestError(400, f"{len(files)} `file` parts sent; use /predict/batch for more")
        data = files[0][1]
    elif media in IMAGE_TYPES:
        data = await _body(request)
    elif media == "application/json":
        data = _json_image(await _body(request))
    else:
        raise _unsupported(media)
    classifier = service.classifier()
    start = time.perf_counter()
    # CPU-bound: off the event loop, so /health answers while images decode (make serve).
    prediction = await run_in_threadpool(classifier.predict, data)
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


@app.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=ERRORS,
    openapi_extra=BATCH_BODY,
    summary=f"Classify up to {MAX_BATCH_FILES} images",
)
async def predict_batch(request: Request) -> BatchOut:
    media = _media_type(request)
    if media != "multipart/form-data":
        raise _unsupported(media)
    files = await _files(request)
    if len(files) > MAX_BATCH_FILES:
        raise RequestError(
            413, f"{len(files)} files sent; at most {MAX_BATCH_FILES} are accepted per batch"
        )
    classifier = service.classifier()
    _check_request_budget(classifier, [data for _, data in files])
    return await run_in_threadpool(_classify_batch, classifier, files)


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


def _classify_batch(classifier: Classifier, files: list[tuple[str | None, bytes]]) -> BatchOut:
    results = []
    for name, data in files:
        try:
            prediction = classifier.predict(data)
        except ImageError as exc:
            results.append(BatchItemOut(filename=name, status=_error_status(exc), error=str(exc)))
        else:
            results.append(
                BatchItemOut(
                    filename=name, status=200, prediction=PredictionOut(**prediction.as_dict())
                )
            )
    return BatchOut(results=results)


@app.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health() -> Any:
    """Loads the model if needed: 200 when it answers, 503 with the reason when it cannot."""
    try:
        classifier = service.classifier()
    except ModelError as exc:
        return JSONResponse(
            HealthOut(status="unavailable", model_loaded=False, error=str(exc)).model_dump(),
            status_code=503,
        )
    return HealthOut(
        status="ok",
        model_loaded=True,
        runtime=classifier.runtime,
        model_version=classifier.model_version,
    )


UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")  # secrets.token_urlsafe(24): 192 random bits


def _async_keys(upload_id: str) -> tuple[str, str]:
    """The upload's key and its result's key for an async upload id."""
    config = service.settings()
    relative = f"{contract.ASYNC_FOLDER}{upload_id}"
    return f"{config.uploads_prefix}{relative}", f"{config.results_prefix}{relative}.json"


def _uploads_bucket() -> str:
    bucket = service.settings().uploads_bucket
    if not bucket:
        raise RequestError(
            501,
            "async uploads are not configured here (UPLOADS_BUCKET is unset); send images "
            "of up to 4 MiB to /predict instead",
        )
    return bucket


@app.post(
    "/uploads",
    status_code=201,
    response_model=UploadOut,
    responses={501: {"model": ErrorOut}, 415: {"model": ErrorOut}},
    summary="Start an async upload (images up to 20 MB)",
)
def start_upload(body: UploadIn | None = None) -> UploadOut:
    """An id and a presigned POST: upload the image straight to S3, then poll /results/{id}.

    The drop-folder function classifies it like any upload; the POST allows one PNG or JPEG of
    the declared type, up to 20 MB, for five minutes.
    """
    bucket = _uploads_bucket()
    content_type = body.content_type if body else "image/png"
    if content_type not in IMAGE_TYPES:
        raise _unsupported(content_type)
    upload_id = secrets.token_urlsafe(24)
    key, _ = _async_keys(upload_id)
    form = service.s3_client().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, contract.ASYNC_MAX_BYTES],
        ],
        ExpiresIn=contract.ASYNC_EXPIRES_S,
    )
    return UploadOut(
        id=upload_id,
        upload=form,
        result=f"results/{upload_id}",
        max_bytes=contract.ASYNC_MAX_BYTES,
        expires_in=contract.ASYNC_EXPIRES_S,
    )


def _exists(bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        service.s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        # Without s3:ListBucket (we do not grant it) a missing key answers 403, not 404.
        if exc.response.get("Error", {}).get("Code") in ("404", "403", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@app.get(
    "/results/{upload_id}",
    responses={202: {"description": "not classified yet"}, 404: {"model": ErrorOut}},
    summary="The result of an async upload",
)
def upload_result(upload_id: str) -> Any:
    """200 with the result (a prediction or an error), 202 while pending, 404 if unknown."""
    if not UPLOAD_ID.match(upload_id):
        raise RequestError(404, "no such upload id")
    bucket = _uploads_bucket()
    upload_key, result_key = _async_keys(upload_id)
    from botocore.exceptions import ClientError

    try:
        body = service.s3_client().get_object(Bucket=bucket, Key=result_key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404", "403"):
            raise
    else:
        result = json.loads(body)
        public = {k: v for k, v in result.items() if k not in ("bucket", "result_key", "etag")}
        return {"id": upload_id, "status": "error" if "error" in result else "done", **public}
    if _exists(bucket, upload_key):
        return JSONResponse({"id": upload_id, "status": "pending"}, status_code=202)
    raise RequestError(404, "no such upload id (or its upload never arrived)")


PAGE = Path(__file__).with_name("static") / "index.html"


@functools.cache
def _page_template() -> str:
    return PAGE.read_text(encoding="utf-8")


def _auth_mode() -> str:
    """How the deployment protects the API (set by the stack); the page adapts to it."""
    try:
        mode = service.settings().api_auth
    except ModelError:
        return "none"
    return mode if mode in ("none", "iam", "jwt") else "none"


@app.get("/", response_class=HTMLResponse, summary="A web page to try the classifier")
def page() -> HTMLResponse:
    """Plain HTML, CSS and JavaScript in one file: no build step, no CDN."""
    try:
        limit = service.settings().max_body_bytes
    except ModelError:
        limit = DEFAULT_BODY_BYTES  # the page still loads; /predict will say what is wrong
    html = _page_template().replace("{{max_body_bytes}}", str(limit))
    try:
        async_on = bool(service.settings().uploads_bucket)
    except ModelError:
        async_on = False
    html = html.replace("{{async_uploads}}", "true" if async_on else "false")
    html = html.replace("{{auth}}", _auth_mode())
    return HTMLResponse(html, headers={"cache-control": "no-cache"})


@app.get("/model", summary="The model's manifest")
def model() -> dict[str, Any]:
    """The manifest, without the build machine's paths."""
    return dict(manifest.public(service.classifier().metadata))


service.preload()  # in Lambda's init phase (SnapStart snapshots it); nothing locally
asgi = StagePrefix(app)
# Lifespan off: Mangum would run it per invocation; the model loads lazily at first use instead.
_mangum = Mangum(asgi, lifespan="off")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: request id and cold start in every log line, then Mangum."""
    return dict(_mangum(event, context))
