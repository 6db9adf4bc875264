"""The pre-traffic check's events: what CodeDeploy's hook sends a new function version before it
gets traffic (no CDK here: the hook's tests and the rollout component share these)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from classifier import contract

EVENTS = Path(__file__).resolve().parents[2] / "events"


def check_image() -> str:
    """events/check.png (a 32x32 colour ramp, of no category), base64, for the pre-traffic check
    to classify: a file, so synthesising the stack needs no image library."""
    return base64.b64encode((EVENTS / "check.png").read_bytes()).decode()


def api_check_event() -> dict[str, Any]:
    """API Gateway's POST /predict (HTTP API, payload 2.0) with the check image as its body."""
    event = json.loads((EVENTS / "apigw-v2-raw-png.json").read_text())
    event["body"] = check_image()
    event["isBase64Encoded"] = True
    event["headers"] = {"content-type": "image/png"}
    return event


def uploads_check_event() -> dict[str, Any]:
    return {contract.CHECK_FIELD: check_image()}
