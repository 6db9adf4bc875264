"""What every answer carries: security headers, a Content-Security-Policy, and a count of 5xx.

Pages get a policy of their own (:func:`page`): their inline script and style are allowed by
hash (never ``'unsafe-inline'``), images and requests only from this origin and the bucket the
page's presigned links point at. Everything else gets ``default-src 'none'``. :class:`Guard`
wraps the whole app: it adds the headers to every answer, counts each 5xx by Lambda version (the
canary's own errors, ``contract.METRIC_SERVER_ERRORS``) and turns an exception that escaped the
app into a JSON 500 rather than a bare one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier import service
from classifier.web.common import logger, telemetry

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",  # frame-ancestors' older spelling, for older browsers
}
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'"
INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def digest(text: str) -> str:
    """A CSP source allowing exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def policy(html: str, **sources: Iterable[str]) -> str:
    """The Content-Security-Policy of one page: its own inline blocks by hash, and the other
    sources given by kind (``connect``, ``images``, ``scripts``, ``styles``), nothing else."""
    blocks: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in INLINE.findall(html):
        blocks[kind].append(digest(body))
    scripts = [*blocks["script"], *sources.get("scripts", ())]
    styles = [*blocks["style"], *sources.get("styles", ())]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + (" ".join(scripts) or "'none'"),
            "style-src " + (" ".join(styles) or "'none'"),
            "img-src " + " ".join(["'self'", "blob:", "data:", *sources.get("images", ())]),
            "connect-src " + " ".join(["'self'", *sources.get("connect", ())]),
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def bucket_origin(bucket: str | None) -> list[str]:
    """The origin a browser reaches ``bucket`` at through our presigned links (the region's
    virtual-hosted endpoint when deployed, the local S3 in the demo); none if unknown."""
    if not bucket:
        return []
    try:
        url = service.s3_client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1
        )
    except Exception:  # noqa: BLE001 (no credentials here: the page then reaches no bucket)
        return []
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"]


def page(html: str, **sources: Iterable[str]) -> HTMLResponse:
    """An HTML page with its own policy; never cached, so a new deployment's page is seen."""
    csp = policy(html, **sources)
    return HTMLResponse(html, headers={"cache-control": "no-cache", "content-security-policy": csp})


class Guard:
    """Security headers on every answer; 5xx answers counted; escaped exceptions as JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": with_security(message.get("headers", []))}
                if message["status"] >= 500:
                    telemetry.server_error()
            await send(message)

        try:
            await self.app(scope, receive, guarded)
        except Exception:  # noqa: BLE001 (the last line of defence: logged, answered, counted)
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            if started:  # the app's own 500 went out already (and was counted)
                return
            body = json.dumps({"detail": "internal error: the request could not be answered"})
            await guarded(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})


def with_security(headers: Any) -> list[tuple[bytes, bytes]]:
    out = list(headers)
    present = {name.lower() for name, _ in out}
    for name, value in SECURITY_HEADERS.items():
        if name.encode() not in present:
            out.append((name.encode(), value.encode()))
    if b"content-security-policy" not in present:
        out.append((b"content-security-policy", DEFAULT_POLICY.encode()))
    return out
