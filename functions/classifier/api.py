"""The HTTP API: FastAPI locally (uvicorn) and in Lambda (Mangum behind API Gateway).

The routes are the routers' (classifier.web.*); :func:`http_routes` lists them for the
infrastructure, which routes exactly these through API Gateway, and the README's API table is
checked against them.
"""

from __future__ import annotations

import copy
import importlib
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from mangum import Mangum
from starlette.types import ASGIApp, Receive, Scope, Send

from classifier import contract, service
from classifier.core import ImageError, ModelError
from classifier.settings import SettingsError
from classifier.web import headers, page, predict
from classifier.web.common import RequestError, error_status, logger, telemetry

# An S3 (or Secrets Manager) that fails or does not answer in time: the client's timeouts bound
# the wait (service.s3_client), and the caller is told to come back.
RETRY_AFTER_S = 10
# The API docs' Swagger UI, pinned to one release and checked by the browser against these
# digests (sha384 of the npm package's files, which the CDN serves as they are): a changed file
# does not run. The reviewer token is never on this page: the review page keeps it in memory.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0/"
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": (
        "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
    ),
    "swagger-ui.css": "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc",
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
    description="Classifies an image into one of the model's categories (GET /model lists them) "
    "with an int8 TensorFlow Lite CNN, with a calibrated confidence and a doubt flag.",
    version="1.0.0",
    redoc_url=None,  # one documentation page (/docs) is enough
    docs_url=None,  # served below, with its scripts pinned by integrity
    swagger_ui_oauth2_redirect_url=None,
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


@app.exception_handler(ClientError)
@app.exception_handler(BotoCoreError)
async def _aws_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("AWS call failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    return JSONResponse(
        {"detail": f"storage is unavailable right now; try again in {RETRY_AFTER_S} s"},
        status_code=503,
        headers={"retry-after": str(RETRY_AFTER_S)},
    )


@app.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json, its files pinned by version and integrity."""
    swagger = get_swagger_ui_html(
        openapi_url=request.scope.get("root_path", "") + "/openapi.json",  # behind a stage too
        title=f"{app.title} - docs",
        swagger_js_url=SWAGGER_UI + "swagger-ui-bundle.js",
        swagger_css_url=SWAGGER_UI + "swagger-ui.css",
    )
    html = bytes(swagger.body).decode()
    for name, integrity in SWAGGER_UI_FILES.items():
        url = SWAGGER_UI + name
        html = html.replace(
            f'"{url}"', f'"{url}" integrity="{integrity}" crossorigin="anonymous"', 1
        )
    # Swagger UI sets style attributes as it renders: styles may be inline here, scripts not.
    return headers.page(
        html,
        scripts=[SWAGGER_UI],
        styles=[SWAGGER_UI, "'unsafe-inline'"],
        images=["https://fastapi.tiangolo.com"],  # its favicon
    )


for router in (page.router, predict.router):
    app.include_router(router)

# The other routers are built on the first request under one of their paths (or for the schema),
# not at import: a cold start builds the models and routes of what it answers, not the review
# page's, the uploads' and the status routes' (docs/measurements.md, "Cold start").
LAZY_ROUTERS = {
    "classifier.web.uploads": ("/uploads", "/results"),
    "classifier.web.review": ("/review",),
    "classifier.web.status": ("/health", "/model"),
}
_included: set[str] = set()
_including = threading.Lock()


def include_lazy_routers(module: str | None = None) -> None:
    """Include the lazy routers (``module``'s, or all) if not yet included."""
    for name in LAZY_ROUTERS:
        if module in (None, name) and name not in _included:
            with _including:
                if name not in _included:
                    app.include_router(importlib.import_module(name).router)
                    _included.add(name)


def lazy_router_for(path: str) -> str | None:
    """The lazy router serving ``path`` (relative to the app's root), if any."""
    for name, starts in LAZY_ROUTERS.items():
        if any(path == start or path.startswith(start + "/") for start in starts):
            return name
    return None


class LazyRouters:
    """Includes a lazy router before the app routes the first request under its paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(_included) < len(LAZY_ROUTERS):
            path, root = scope["path"], scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]  # behind a stage (StagePrefix)
            name = lazy_router_for(path)
            if name:
                include_lazy_routers(name)
        await self.app(scope, receive, send)


def openapi_with_labels() -> dict[str, Any]:
    """FastAPI's schema, with the served model's categories as the answers' enum and examples:
    the labels come from the model's manifest, whichever model it is."""
    include_lazy_routers()  # the schema lists every route
    schema = copy.deepcopy(FastAPI.openapi(app))  # FastAPI caches its own; models change
    try:
        classifier = service.classifier()
    except ModelError:
        return schema  # no model: the schema without its labels; /health says why
    names = list(classifier.class_names)
    prediction = schema.get("components", {}).get("schemas", {}).get("PredictionOut", {})
    for field in ("category", "runner_up"):
        if field in prediction.get("properties", {}):
            prediction["properties"][field].update(enum=names, examples=names[:1])
    if "probabilities" in prediction.get("properties", {}):
        prediction["properties"]["probabilities"]["examples"] = [
            {name: round(1 / len(names), 3) for name in names}
        ]
    return schema


app.openapi = openapi_with_labels  # type: ignore[method-assign]


def http_routes() -> list[tuple[str, str, bool]]:
    """(path, method, protected) of every route the app serves, in the app's order; protected
    routes need credentials when the API has auth (contract.PUBLIC_PATHS stay open)."""
    include_lazy_routers()
    found = []
    routes = list(app.routes)
    while routes:
        route = routes.pop(0)
        if hasattr(route, "original_router"):  # an included router (no prefix here)
            routes[:0] = route.original_router.routes
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                path = getattr(route, "path", "")
                found.append((path, method, path not in contract.PUBLIC_PATHS))
    return found


service.preload()  # in Lambda's init phase (SnapStart snapshots it); nothing locally
asgi = headers.Guard(StagePrefix(LazyRouters(app)))
# Lifespan off: Mangum would run it per invocation; the model loads lazily at first use instead.
_mangum = Mangum(asgi, lifespan="off")


@logger.inject_lambda_context
@telemetry.flushed
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: request id and cold start in every log line, then Mangum; the
    request's classification metrics are written as it returns."""
    return dict(_mangum(event, context))
