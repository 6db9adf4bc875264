"""The model manifest: the one format the training job writes and the serving code reads.

A published model is a folder ``models/<version>/`` holding ``model.tflite`` and
``manifest.json``. ``models/latest/manifest.json`` is a copy of the newest manifest whose
``model_path`` points back at ``../<version>/model.tflite``, so the serving Lambdas follow one
fixed key. Paths in a manifest are relative to the manifest itself, so a bucket or a folder can be
copied elsewhere whole.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from classifier.core import ModelError, sha256_hex

FORMAT = "cifar10-serverless.manifest/v1"
MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.tflite"
LATEST = "latest"


@dataclass(frozen=True)
class Manifest:
    model_version: str
    model_path: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    model_sha256: str
    model_bytes: int
    raw: dict[str, Any] = field(repr=False, compare=False)
    flip_average: bool = False  # average each image's probabilities with its mirror image's

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Check a parsed manifest and keep what serving needs; errors name the field."""
        if not isinstance(data, dict):
            raise ModelError("the manifest is not a JSON object")
        if data.get("format") != FORMAT:
            raise ModelError(f"manifest format is {data.get('format')!r}; expected {FORMAT!r}")
        try:
            model_path = str(data["model_path"])
            files = data["files"]
            name = posixpath.basename(model_path)
            entry = files[name]
            shape = tuple(int(v) for v in data["input"]["shape"])
            manifest = cls(
                model_version=str(data["model_version"]),
                model_path=model_path,
                class_names=tuple(str(c) for c in data["class_names"]),
                input_shape=(shape[0], shape[1], shape[2]),
                model_sha256=str(entry["sha256"]),
                model_bytes=int(entry["bytes"]),
                raw=data,
                flip_average=bool(data.get("inference", {}).get("flip_average", False)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"the manifest lacks or mangles a required field: {exc!r}") from exc
        if len(shape) != 3 or not manifest.class_names:
            raise ModelError(f"the manifest's input shape {shape} or class names are invalid")
        return manifest

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise ModelError(f"the manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(parsed)

    def verify(self, model: bytes) -> None:
        """Refuse a model file that is not the one this manifest describes."""
        digest = sha256_hex(model)
        if digest != self.model_sha256 or len(model) != self.model_bytes:
            raise ModelError(
                f"the model file ({len(model)} bytes, sha256 {digest[:12]}…) does not match the "
                f"manifest of version {self.model_version} ({self.model_bytes} bytes, "
                f"sha256 {self.model_sha256[:12]}…)"
            )


def resolve(manifest_location: str, relative: str) -> str:
    """The location of a file named relative to a manifest (a local path or an S3 key)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(manifest_location), relative))


def latest_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``models/latest/manifest.json`` copy of a versioned manifest."""
    version = manifest["model_version"]
    return {**manifest, "model_path": f"../{version}/{posixpath.basename(manifest['model_path'])}"}
