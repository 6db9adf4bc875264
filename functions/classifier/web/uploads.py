"""POST /uploads and GET /results/{id}: the async path for images over 4 MiB."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from classifier import contract, service
from classifier.result_store import result_key
from classifier.web.common import (
    IMAGE_TYPES,
    ErrorOut,
    RequestError,
    media_type,
    parse_json,
    read_body,
    unsupported,
)

router = APIRouter()


DEFAULT_UPLOAD_TYPE = "image/png"


class UploadIn(BaseModel):
    content_type: str = Field(DEFAULT_UPLOAD_TYPE, examples=["image/jpeg"])


class UploadOut(BaseModel):
    id: str = Field(description="unguessable; the only way to read the result")
    upload: dict[str, Any] = Field(description="POST the file to `url` with these form `fields`")
    result: str = Field(description="poll this path: 202 while pending, 200 when done")
    max_bytes: int
    expires_in: int = Field(description="seconds the upload form stays valid")


UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")  # secrets.token_urlsafe(24): 192 random bits


def _async_keys(upload_id: str) -> tuple[str, str]:
    """The upload's key and its result's key for an async upload id."""
    config = service.settings()
    key = f"{config.uploads_prefix}{contract.ASYNC_FOLDER}{upload_id}"
    return key, result_key(key, config.uploads_prefix, config.results_prefix)


def _uploads_bucket() -> str:
    bucket = service.settings().uploads_bucket
    if not bucket:
        raise RequestError(
            501,
            "async uploads are not configured here (UPLOADS_BUCKET is unset); send images "
            "of up to 4 MiB to /predict instead",
        )
    return bucket


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadOut,
    responses={
        400: {"model": ErrorOut, "description": "the JSON body cannot be parsed"},
        413: {"model": ErrorOut, "description": "a body over the size limit"},
        415: {
            "model": ErrorOut,
            "description": "a body that is not JSON, or a content_type other than PNG or JPEG",
        },
        422: {"model": ErrorOut, "description": 'the JSON is not {"content_type": "..."}'},
        501: {"model": ErrorOut, "description": "no uploads bucket here (local `make serve`)"},
    },
    summary="Start an async upload (images up to 20 MB)",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": UploadIn.model_json_schema()}},
        }
    },
)
async def start_upload(request: Request) -> UploadOut:
    """An id and a presigned POST: upload the image straight to S3, then poll /results/{id}.

    The drop-folder function classifies it like any upload; the POST allows one PNG or JPEG of
    the declared type, up to 20 MB, for five minutes.
    """
    bucket = _uploads_bucket()
    content_type = _declared_type(await read_body(request), media_type(request))
    if content_type not in IMAGE_TYPES:
        raise unsupported(content_type)
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
        result=contract.RESULT_ROUTE.format(upload_id=upload_id).removeprefix("/"),
        max_bytes=contract.ASYNC_MAX_BYTES,
        expires_in=contract.ASYNC_EXPIRES_S,
    )


def _declared_type(body: bytes, media: str) -> str:
    """The image type an upload declares: the JSON body's content_type, PNG without a body."""
    if not body.strip():
        return DEFAULT_UPLOAD_TYPE
    if media != "application/json":
        raise RequestError(
            415,
            f"the body is {media or 'untyped'}; send JSON like "
            '{"content_type": "image/jpeg"} (or no body)',
        )
    document = parse_json(body)
    try:
        return UploadIn.model_validate(document).content_type
    except ValidationError as exc:
        raise RequestError(
            422,
            'the JSON body must be {"content_type": "image/png|image/jpeg"}: '
            + exc.errors()[0]["msg"],
        ) from exc


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


@router.get(
    contract.RESULT_ROUTE,
    responses={
        202: {"description": "uploaded, not classified yet"},
        404: {"model": ErrorOut, "description": "no upload with this id (or not uploaded yet)"},
        501: {"model": ErrorOut, "description": "no uploads bucket here (local `make serve`)"},
    },
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
