"""The manifest format shared by the training job and the serving code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from classifier.core import ModelError, sha256_hex
from classifier.manifest import FORMAT, Manifest, build, latest_manifest, resolve


def sample() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model_version": "20261125-120000-fast-abcdef12",
        "model_path": "model.tflite",
        "class_names": ["a", "b"],
        "input": {"shape": [32, 32, 3], "quantization": {"scale": 1.0, "zero_point": -128}},
        "files": {"model.tflite": {"sha256": "00" * 32, "bytes": 10}},
    }


def test_a_valid_manifest_parses() -> None:
    manifest = Manifest.from_bytes(json.dumps(sample()).encode())
    assert manifest.class_names == ("a", "b")
    assert manifest.input_shape == (32, 32, 3)
    assert manifest.model_bytes == 10


@pytest.mark.parametrize("field", ["model_version", "model_path", "class_names", "input", "files"])
def test_a_missing_field_is_named(field: str) -> None:
    data = sample()
    del data[field]
    with pytest.raises(ModelError, match=field if field != "model_path" else "model_path"):
        Manifest.from_dict(data)


def test_another_format_is_refused() -> None:
    with pytest.raises(ModelError, match="manifest format"):
        Manifest.from_dict({**sample(), "format": "something/v9"})


def test_invalid_json_is_refused() -> None:
    with pytest.raises(ModelError, match="not valid JSON"):
        Manifest.from_bytes(b"{not json")


def test_latest_points_back_at_the_versioned_model() -> None:
    latest = latest_manifest(sample())
    assert latest["model_path"] == "../20261125-120000-fast-abcdef12/model.tflite"
    here = "models/latest/manifest.json"
    assert (
        resolve(here, latest["model_path"]) == "models/20261125-120000-fast-abcdef12/model.tflite"
    )
    assert Manifest.from_dict(latest).model_sha256 == "00" * 32


def test_build_records_each_files_hash_and_size_and_checks_the_schema() -> None:
    fields = {k: v for k, v in sample().items() if k not in ("format", "files")}
    model = b"\x00tflite bytes"
    document = build(fields, {"model.tflite": model, "metrics.json": b"{}"})
    assert document["format"] == FORMAT
    assert document["files"]["model.tflite"] == {"sha256": sha256_hex(model), "bytes": len(model)}
    assert list(document["files"]) == ["metrics.json", "model.tflite"]
    Manifest.from_dict(document).verify(model)
    with pytest.raises(ModelError, match="class_names"):
        build({**fields, "class_names": []}, {"model.tflite": model})
