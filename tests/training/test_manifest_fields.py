"""A tiny training run writes the same manifest fields as before training was split into modules.

The record (tiny_run_manifest.json) was taken from the tiny run of the one-file train.py: every key
path of the manifest, the recipe, the data counts, the tensor types and the parameter count. Values
that differ from run to run (times, hashes, accuracies) are compared by presence only. To record
it again after a deliberate change: ``python -m tests.training.test_manifest_fields <manifest>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RECORD = Path(__file__).with_name("tiny_run_manifest.json")
# Recipe fields added on purpose since the record (each is also in test_recipe's list), and
# values the default recipe changed on purpose (round 4's wider, longer recipe; the tiny run sets
# its own widths and epochs).
ADDED_SINCE = {"corrections_distill", "corrections_freeze_batchnorm", "teachers", "teacher_weight"}
CHANGED_SINCE = {"learning_rate", "description"}
# Manifest fields added on purpose since the record: the features output and the novelty score's
# moments (round 4's feature score), the answers' mix on validation (round 5's drift baseline).
ADDED_PATHS = ("features.", "inference.novelty_moments", "validation_answers.")


def key_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path of a JSON value (``a.b.c``); list items share one ``[]`` path, and the
    per-class dictionaries (keyed by label) are not descended into."""
    if isinstance(value, dict):
        if prefix.endswith("per_class") or prefix.endswith("by_tta"):
            return [prefix]
        paths = [
            p for k, v in value.items() for p in key_paths(v, f"{prefix}.{k}" if prefix else k)
        ]
        return paths or [prefix]
    if isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        return sorted({p for v in value for p in key_paths(v, prefix + "[]")})
    return [prefix]


def shape_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must not change when code moves: the fields, and the values a recipe decides."""
    return {
        "key_paths": sorted(set(key_paths(manifest))),
        "recipe": manifest["recipe"],
        "data": {k: v for k, v in manifest["data"].items() if k != "fingerprint_sha256"},
        "input": manifest["input"]["dtype"],
        "output": manifest["output"]["dtype"],
        "parameters": manifest["parameters"],
        "class_names": manifest["class_names"],
        "tta": manifest["inference"]["tta"],
    }


def test_a_tiny_run_gives_the_manifest_fields_it_gave_before_the_move(
    tiny_manifest: Path,
) -> None:
    shape = shape_of(json.loads(tiny_manifest.read_text()))
    added = {f"recipe.{name}" for name in ADDED_SINCE}
    assert added <= set(shape["key_paths"])
    assert any(p.startswith(ADDED_PATHS) for p in shape["key_paths"])
    shape["key_paths"] = [
        p for p in shape["key_paths"] if p not in added and not p.startswith(ADDED_PATHS)
    ]
    shape["recipe"] = {k: v for k, v in shape["recipe"].items() if k not in ADDED_SINCE}
    record = json.loads(RECORD.read_text())
    for name in CHANGED_SINCE:
        assert shape["recipe"].pop(name) != record["recipe"].pop(name), name
    assert shape == record


if __name__ == "__main__":
    RECORD.write_text(
        json.dumps(shape_of(json.loads(Path(sys.argv[1]).read_text())), indent=1) + "\n"
    )
