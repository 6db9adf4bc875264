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

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mangum import Mangum
from starlette.types import ASGIApp, Receive, Scope, Send

from classifier import service
from classifier.core import ImageError, ModelError
from classifier.settings import SettingsError
from classifier.web import page, predict, status, uploads
from classifier.web.common import RequestError, error_status, logger, telemetry


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
    return JSONResponse({"detail": str(exc)}, status_code=error_status(exc))


def _unavailable(exc: ModelError) -> str:
    if isinstance(exc, SettingsError):
        return f"the service is misconfigured: {exc}"
    return f"the model is unavailable: {exc}"


@app.exception_handler(ModelError)
async def _model_error(request: Request, exc: ModelError) -> JSONResponse:
    logger.error("service unavailable", extra={"error": str(exc)})
    return JSONResponse({"detail": _unavailable(exc)}, status_code=503)


for router in (page.router, predict.router, uploads.router, status.router):
    app.include_router(router)

service.preload()  # in Lambda's init phase (SnapStart snapshots it); nothing locally
asgi = StagePrefix(app)
# Lifespan off: Mangum would run it per invocation; the model loads lazily at first use instead.
_mangum = Mangum(asgi, lifespan="off")


@logger.inject_lambda_context(clear_state=True)
@telemetry.flushed
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: request id and cold start in every log line, then Mangum; the
    request's classification metrics are written as it returns."""
    return dict(_mangum(event, context))
