"""GET /: the web page (plain HTML, CSS and JavaScript in one file)."""

from __future__ import annotations

import functools
import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from classifier import contract, service
from classifier.core import IMAGE_SIZE, ModelError
from classifier.settings import DEFAULT_BODY_BYTES
from classifier.web import headers

router = APIRouter()
STATIC = Path(__file__).parents[1] / "static"
PAGE = STATIC / "index.html"
REDUCE_JS = STATIC / "reduce.js"  # the page's reduction of photos, inlined as a script of its own


@functools.cache
def _page_template() -> str:
    page = PAGE.read_text(encoding="utf-8")
    return page.replace("{{reduce_js}}", REDUCE_JS.read_text(encoding="utf-8"))


def _auth_mode() -> str:
    """How the deployment protects the API (set by the stack); the page adapts to it."""
    try:
        mode = service.settings().api_auth
    except ModelError:
        return "none"
    return mode if mode in contract.AUTH_MODES else "none"


def _categories() -> tuple[str, int]:
    """The model's categories as the page names them ("3 categories: boat, kitty, puppy") and
    its input size; the model's manifest is the only source."""
    try:
        classifier = service.classifier()
    except ModelError:
        return "the model's categories (it cannot be loaded now: see /health)", IMAGE_SIZE
    names = ", ".join(html.escape(n) for n in classifier.class_names)
    return f"{len(classifier.class_names)} categories: {names}", classifier.image_size


@router.get("/", response_class=HTMLResponse, summary="A web page to try the classifier")
def page() -> HTMLResponse:
    """Plain HTML, CSS and JavaScript in one file: no build step, no CDN."""
    try:
        limit = service.settings().max_body_bytes
    except ModelError:
        limit = DEFAULT_BODY_BYTES  # the page still loads; /predict will say what is wrong
    html = _page_template().replace("{{max_body_bytes}}", str(limit))
    async_on = bool(_uploads_bucket())
    html = html.replace("{{async_uploads}}", "true" if async_on else "false")
    html = html.replace("{{auth}}", _auth_mode())
    categories, size = _categories()
    html = html.replace("{{categories}}", categories).replace("{{image_size}}", str(size))
    html = html.replace("{{upload_side}}", str(size * contract.UPLOAD_SCALE))
    html = html.replace("{{async_max_bytes}}", str(contract.ASYNC_MAX_BYTES))
    html = html.replace("{{as_it_is_bytes}}", str(contract.AS_IT_IS_BYTES))
    # Large images go straight to the uploads bucket by a presigned POST.
    bucket = headers.bucket_origin(_uploads_bucket())
    return headers.page(html, connect=bucket)


def _uploads_bucket() -> str | None:
    try:
        return service.settings().uploads_bucket
    except ModelError:
        return None
