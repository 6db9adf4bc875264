"""Publish a run folder: ``models/<version>/`` first, ``models/latest/manifest.json`` last.

The destination is ``s3://bucket/prefix`` or a local folder; both get the same layout. Writing
the latest pointer last means a reader following it never finds a manifest whose model is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

from classifier import manifest as mf

PUBLISHED = (mf.MODEL_NAME, mf.MANIFEST_NAME, "metrics.json")
CONTENT_TYPES = {".json": "application/json", ".png": "image/png"}


def published_files(run_dir: Path) -> list[Path]:
    """What goes to ``models/<version>/``: the int8 model, manifest, metrics and the plots."""
    files = [run_dir / name for name in PUBLISHED] + sorted(run_dir.glob("*.png"))
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks {', '.join(missing)}; was the run complete?")
    return files


def publish(run_dir: Path, destination: str) -> list[str]:
    """Copy a run to ``destination``; returns the keys or paths written, in order."""
    manifest = json.loads((run_dir / mf.MANIFEST_NAME).read_text())
    version = manifest["model_version"]
    latest = json.dumps(mf.latest_manifest(manifest), indent=2).encode() + b"\n"
    items = [(f"models/{version}/{p.name}", p.read_bytes()) for p in published_files(run_dir)]
    items.append((f"models/{mf.LATEST}/{mf.MANIFEST_NAME}", latest))  # last, always
    if destination.startswith("s3://"):
        import boto3

        bucket, _, prefix = destination[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        s3 = boto3.client("s3")
        keys = []
        for key, body in items:
            full = f"{prefix}/{key}" if prefix else key
            content_type = CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")
            s3.put_object(Bucket=bucket, Key=full, Body=body, ContentType=content_type)
            keys.append(full)
        return keys
    root = Path(destination)
    written = []
    for key, body in items:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(str(path))
    return written
