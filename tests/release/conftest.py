"""Shared by the release tests: a model bucket in moto holding two real models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release import promote as pr
from tests.conftest import PUBLISHED


def version_of(folder: Path) -> str:
    return str(json.loads((folder / "manifest.json").read_text())["model_version"])


def put_two_models(s3: Any, bucket: str, tiny_run: dict[str, Any]) -> dict[str, str]:
    """Upload the tiny model trained on the synthetic set (the better one there) and the
    repository's published model (at chance on synthetic images) under ``models/``, without
    their promotion records (the bucket starts without history): their versions."""
    (tiny,) = [p for p in (Path(tiny_run["published"]) / "models").iterdir() if p.name != "latest"]
    published = PUBLISHED.parent.parent / version_of(PUBLISHED.parent)
    for folder in (tiny, published):
        for path in (p for p in folder.iterdir() if p.name != pr.PROMOTION_RECORD):
            key = f"models/{folder.name}/{path.name}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return {"better": version_of(tiny), "worse": version_of(published)}
