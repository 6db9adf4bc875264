"""Every sample event is used, and `scripts/invoke.py` runs each one like `sam local invoke`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EVENTS, ROOT, subprocess_env


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_invoke_runs_every_event_file(path: Path, served_manifest: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.invoke", str(path)],
        cwd=ROOT,
        env=subprocess_env(MODEL_URI=str(served_manifest), AWS_DEFAULT_REGION="us-east-1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Handler logs are one JSON line each (as in CloudWatch); the response comes last, indented.
    lines = done.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    response = json.loads("\n".join(lines[start:]))
    if "statusCode" in response:
        assert response["statusCode"] == 200
        body = json.loads(response["body"])
        assert "category" in body or body.get("model_loaded") is True
    elif "batchItemFailures" in response:
        assert response["batchItemFailures"] == []
        assert '"category"' in done.stderr  # the result the handler wrote, as printed
    else:
        (written,) = response["results"]
        assert written["key"] == "uploads/my cat+1.png" and "category" in written
