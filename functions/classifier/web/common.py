"""What the API's routers share: the error type, body readers, and the classifier dependency."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from classifier import contract, service
from classifier.core import (
    Classifier,
    ImageError,
    ImageTooLarge,
    UndecodableImage,
    UnsupportedImage,
)
from classifier.logs import Logger
from classifier.settings import MAX_BATCH_FILES
from classifier.telemetry import ClassificationMetrics

logger = Logger(service=contract.API_SERVICE)
telemetry = ClassificationMetrics(contract.API_SERVICE)

IMAGE_TYPES = contract.MEDIA_TYPES
STATUS = {UndecodableImage: 400, ImageTooLarge: 413, UnsupportedImage: 415}


class ErrorOut(BaseModel):
    detail: str


class RequestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        # A detail may quote what was sent: lone surrogates and the like become escapes, so the
        # answer can always be encoded (a JSON string "\ud800" once made a 500 here).
        detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(detail)
        self.status, self.detail = status, detail


def error_status(exc: ImageError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)


T = TypeVar("T")


async def run_cpu_bound(request: Request, function: Callable[..., T], *args: object) -> T:
    """Run CPU-bound work where it costs least for the server that called us.

    Under a server (uvicorn, `make serve`), in the thread pool: the event loop stays free, so
    /health answers while images decode. Under Mangum (Lambda), inline: Lambda gives a process
    one request at a time, so a thread hop would only add latency (docs/measurements.md).
    """
    if "aws.event" in request.scope:  # Mangum puts the Lambda event in the ASGI scope
        return function(*args)
    return await run_in_threadpool(function, *args)


async def get_classifier(request: Request) -> Classifier:
    """The container's classifier; tests override this dependency (app.dependency_overrides)."""
    return await run_cpu_bound(request, service.classifier)  # loads the model on first use


CLASSIFIER = Depends(get_classifier)


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past the limit, before it is parsed."""
    limit = service.settings().max_body_bytes
    declared = request.headers.get("content-length")
    # isdigit() alone admits "²", which int() refuses; a bad header is the server's to judge
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared)} bytes; at most {limit} are accepted")
    body = await request.body()
    if len(body) > limit:
        raise RequestError(413, f"the body is {len(body)} bytes; at most {limit} are accepted")
    return body


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise RequestError(400, f"the JSON body names {key!r} twice; send each key once")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise RequestError(400, f"the JSON body holds {name}, which is not JSON; send numbers")


MAX_JSON_DEPTH = 8  # the API's documents are one level deep


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest past ``limit`` (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(body: bytes) -> Any:
    """A JSON body as Python values, or 400 naming what is wrong with it: not UTF-8, not JSON,
    nested too deep, a key given twice, NaN or Infinity, a number of over 4,300 digits."""
    too_deep = RequestError(
        400,
        f"the JSON body is nested too deeply; at most {MAX_JSON_DEPTH} levels are accepted "
        "(these documents are one level deep)",
    )
    try:
        document = json.loads(
            body,
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except RecursionError:  # Python's own limit, reached before ours on some versions
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the digit limit
        raise RequestError(400, f"the JSON body cannot be parsed: {exc}") from None
    if _deeper_than(document, MAX_JSON_DEPTH):
        raise too_deep
    return document


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_files(request: Request) -> list[tuple[str | None, bytes]]:
    """The ``file`` parts of a multipart request, as (filename, bytes)."""
    await read_body(request)
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


def unsupported(media: str) -> RequestError:
    return RequestError(
        415,
        f"content type {media or '(none)'} is not accepted; send multipart/form-data with a "
        f"`file` part, a raw body with Content-Type {' or '.join(IMAGE_TYPES)}, or JSON "
        '{"image": "<base64>"}',
    )
