"""GET /health and GET /model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from classifier import manifest, service
from classifier.core import ModelError
from classifier.web.common import ErrorOut

router = APIRouter()


class HealthOut(BaseModel):
    status: str
    model_loaded: bool
    runtime: str | None = None
    model_version: str | None = None
    error: str | None = None


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
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


@router.get(
    "/model",
    summary="The model's manifest",
    responses={503: {"model": ErrorOut, "description": "the model cannot be loaded (why)"}},
)
def model() -> dict[str, Any]:
    """The manifest, without the build machine's paths."""
    return dict(manifest.public(service.classifier().metadata))
