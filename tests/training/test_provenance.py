"""training/provenance.py: the manifest records checksums, settings, provenance and each stage's
time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from classifier.manifest import FORMAT

STAGES = {"prepare", "build", "train", "quantise", "evaluate", "plots"}


def test_the_manifest_records_checksums_settings_and_provenance(tiny_run: dict[str, Any]) -> None:
    run_dir = Path(tiny_run["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["format"] == FORMAT
    for name, entry in manifest["files"].items():
        content = (run_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}, name
    assert {"model.tflite", "model.h5", "model.keras", "metrics.json", "examples.png"} <= set(
        manifest["files"]
    )
    assert manifest["recipe"]["name"] == "default" and manifest["recipe"]["widths"] == [8, 16, 16]
    assert manifest["recipe"]["epochs"] == 8
    assert len(manifest["data"]["fingerprint_sha256"]) == 64
    assert "/" not in manifest["data"]["source"]  # a name, not this machine's path
    assert manifest["data"]["train_images"] + manifest["data"]["validation_images"] == 400
    assert manifest["tensorflow_version"].startswith("2.")
    assert manifest["code_version"]
    assert set(manifest["stage_seconds"]) >= STAGES
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert manifest["metrics"] == metrics
    assert set(metrics["int8_per_class"]) == set(manifest["class_names"])
    assert set(metrics["float_per_class"]) == set(manifest["class_names"])
    assert 0.0 <= metrics["int8_test_accuracy"] <= 1.0
    assert not metrics["test_set"].startswith("/")
    assert metrics["int8_runtime"].startswith("ai-edge-litert")  # as the functions serve it
    sizes = manifest["sizes"]
    assert sizes["tflite_int8_bytes"] == (run_dir / "model.tflite").stat().st_size
    assert sizes["tflite_int8_bytes"] < sizes["h5_bytes"]
