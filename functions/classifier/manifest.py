"""The model manifest: the one format the training job writes and the serving code reads.

A published model is a folder ``models/<version>/`` holding ``model.tflite`` and
``manifest.json``. ``models/latest/manifest.json`` is a copy of the newest manifest whose
``model_path`` points back at ``../<version>/model.tflite``: it says which model is promoted
(the gate compares against it). The Lambdas never follow it: each function version is pinned
to ``models/<version>/`` (``MODEL_URI``), so a deploy, not a write to ``latest``, changes
what they serve. Paths in a manifest are relative to the manifest itself, so a bucket or a
folder can be copied elsewhere whole.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from classifier import contract
from classifier.core import NOVELTY_SCORES, TTA_VIEWS, Inference, ModelError, sha256_hex

FORMAT = "cifar10-serverless.manifest/v1"


def published_files(run_dir: Path) -> list[Path]:
    """What goes from a run folder to ``models/<version>/``: the int8 model, manifest, metrics,
    the float weights (for fine-tuning) and the plots."""
    files = [run_dir / name for name in contract.PUBLISHED_FILES] + sorted(run_dir.glob("*.png"))
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} lacks {', '.join(missing)}; was the run complete?")
    return files


Name = Annotated[StrictStr, Field(min_length=1)]
Positive = Annotated[StrictInt, Field(gt=0)]


class _Quantization(BaseModel):
    scale: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
    zero_point: StrictInt


class _Input(BaseModel):
    shape: tuple[Positive, Positive, Positive]
    dtype: StrictStr | None = None
    quantization: _Quantization | None = None


_Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]
_Moments = tuple[_Finite, Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]]


class _Inference(BaseModel):
    flip_average: StrictBool = False  # older manifests: the same as tta "mirror"
    tta: Literal[tuple(TTA_VIEWS)] | None = None  # type: ignore[valid-type]
    outputs: Literal["probabilities", "logits"] = "probabilities"
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)] = 1.0
    unsure_below: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)] = 0.0
    # Older manifests have no threshold: none_of_these is then always false.
    novel_above: Annotated[float, Field(allow_inf_nan=False, strict=True)] | None = None
    novelty: Literal[NOVELTY_SCORES] = "energy"  # type: ignore[valid-type]
    # The feature score's validation (mean, spread) of the energy and of the feature norm.
    novelty_moments: tuple[_Moments, _Moments] | None = None

    def resolved(self) -> Inference:
        tta = self.tta or ("mirror" if self.flip_average else "none")
        return Inference(
            tta,
            self.outputs,
            self.temperature,
            self.unsure_below,
            self.novel_above,
            self.novelty,
            self.novelty_moments,
        )


class _File(BaseModel):
    sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[StrictInt, Field(ge=0)]


class _Schema(BaseModel):
    """What serving relies on; other fields (recipe, metrics, ...) are kept but not checked."""

    model_config = ConfigDict(extra="allow")

    format: StrictStr
    model_version: Name
    model_path: Name
    class_names: Annotated[list[Name], Field(min_length=1)]
    input: _Input
    inference: _Inference = _Inference()
    files: dict[str, _File]

    @model_validator(mode="after")
    def _model_file_is_listed(self) -> _Schema:
        name = posixpath.basename(self.model_path)
        if name not in self.files:
            raise ValueError(f"model_path {self.model_path!r}: {name!r} is not among files")
        return self


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as one line that names each field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
        for error in exc.errors()[:5]
    )


@dataclass(frozen=True)
class Manifest:
    model_version: str
    model_path: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    model_sha256: str
    model_bytes: int
    raw: dict[str, Any] = field(repr=False, compare=False)
    inference: Inference = field(
        default_factory=Inference
    )  # test-time views, temperature, doubt threshold
    input_quantization: tuple[float, int] | None = None  # (scale, zero point) as recorded

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a parsed manifest against its schema; errors name the field."""
        if not isinstance(data, dict):
            raise ModelError("the manifest is not a JSON object")
        if data.get("format") != FORMAT:
            raise ModelError(f"manifest format is {data.get('format')!r}; expected {FORMAT!r}")
        try:
            checked = _Schema.model_validate(data)
        except ValidationError as exc:
            raise ModelError(f"the manifest is invalid: {_describe(exc)}") from exc
        entry = checked.files[posixpath.basename(checked.model_path)]
        quantization = checked.input.quantization
        return cls(
            model_version=checked.model_version,
            model_path=checked.model_path,
            class_names=tuple(checked.class_names),
            input_shape=checked.input.shape,
            model_sha256=entry.sha256,
            model_bytes=entry.bytes,
            raw=data,
            inference=checked.inference.resolved(),
            input_quantization=(
                (quantization.scale, quantization.zero_point) if quantization else None
            ),
        )

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


def public(value: Any) -> Any:
    """A manifest as the API shows it: absolute paths of the build machine cut to their last part.

    Manifests record what identifies their data (name, counts, fingerprint); older ones also
    recorded where it lay on the machine that trained them, which a public API should not reveal.
    """
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~")) or value[1:3] in (":\\", ":/")):
        head, _, tail = value.partition(" ")
        parts = [p for p in head.replace("\\", "/").split("/") if p and not p.endswith(":")]
        return " ".join(filter(None, ["/".join(parts[-2:]), tail]))  # e.g. cifar10-jpeg/test
    return value


def build(fields: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest document of a run: its fields, the format, and each file's sha256 and size.

    The training job writes what this returns; it is checked against the schema the serving code
    reads with first, so a run can never write a manifest the functions would refuse.
    """
    document = {
        "format": FORMAT,
        **fields,
        "files": {
            name: {"sha256": sha256_hex(content), "bytes": len(content)}
            for name, content in sorted(files.items())
        },
    }
    Manifest.from_dict(document)
    return document


def resolve(manifest_location: str, relative: str) -> str:
    """The location of a file named relative to a manifest (a local path or an S3 key)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(manifest_location), relative))


def latest_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``models/latest/manifest.json`` copy of a versioned manifest."""
    version = manifest["model_version"]
    return {**manifest, "model_path": f"../{version}/{posixpath.basename(manifest['model_path'])}"}
