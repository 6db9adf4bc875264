"""What a run records about itself: run.json when it starts (recipe, command line, code
version), and the manifest's fields when it is exported (``classifier.manifest`` checks them)."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier import contract
from classifier import manifest as mf
from classifier.core import answers_and_features

from training import ROOT, machine
from training.progress import log
from training.quantisation import tensor_spec

if TYPE_CHECKING:
    from training.job_types import Data, Export, Recipe, Trained


def start_run(args: argparse.Namespace, recipe: Recipe) -> tuple[Path, datetime]:
    """The run folder: new, or (``--resume``) one whose training was interrupted."""
    if args.resume:
        run_dir = Path(args.resume)
        stamp = datetime.fromisoformat(json.loads((run_dir / "run.json").read_text())["started"])
        log("prepare", f"resuming {run_dir} from its last finished epoch")
        return run_dir, stamp
    stamp = datetime.now(UTC)
    run_dir = Path(args.out) / f"{stamp:%Y%m%d-%H%M%S}-{recipe.name}-seed{recipe.seed}"
    run_dir.mkdir(parents=True, exist_ok=False)
    # The code that trains is the code as it starts: later edits do not change this run.
    started = {
        "started": stamp.isoformat(),
        "recipe": asdict(recipe),
        "argv": sys.argv[1:],
        "code_version": code_version(),
    }
    (run_dir / "run.json").write_text(json.dumps(started, indent=1) + "\n")
    return run_dir, stamp


def manifest_fields(
    trained: Trained, exported: Export, recipe: Recipe, data: Data
) -> dict[str, Any]:
    """What the manifest says about the run (``classifier.manifest`` checks it when written)."""
    import keras
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=exported.tflite)
    in_detail = interpreter.get_input_details()[0]
    out_detail, features = answers_and_features(
        interpreter.get_output_details(), len(data.class_names)
    )
    fields = {
        "model_version": exported.version,
        "model_path": contract.MODEL_NAME,
        "class_names": list(data.class_names),
        "input": {
            "shape": list(data.x_train.shape[1:]),
            **tensor_spec(in_detail),
            "pixels": "RGB 0..255, decoded by classifier.core.image_to_array",
        },
        "output": {
            **tensor_spec(out_detail),
            "meaning": f"{exported.inference['outputs']} in class_names order",
        },
        "created": exported.stamp.isoformat(timespec="seconds"),
        "recipe": asdict(recipe),
        "data": {
            "source": data.name,
            "fingerprint_sha256": data.fingerprint,
            "train_images": len(data.x_train),
            "validation_images": len(data.x_val),
            "test_images": len(data.x_test),
            "limit": data.limit,
            "test_split": data.split,
            "skipped_files": data.skipped,
        },
        "parameters": int(trained.model.count_params()),
        "inference": exported.inference,
        "resumed_from": str(trained.resumed_from) if trained.resumed_from else None,
        "sizes": exported.sizes,
        "code_version": json.loads((exported.run_dir / "run.json").read_text())["code_version"],
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "machine": machine.describe(),
    }
    if features is not None:
        fields["features"] = {
            **tensor_spec(features),
            "width": int(features["shape"][-1]),
            "meaning": "the last block's pooled features (their norm: the novelty score)",
        }
    return fields


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "training", "functions"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def write_manifest(run_dir: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """The run's manifest, built and checked by ``classifier.manifest.build``, then written."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != contract.MANIFEST_NAME
    }
    manifest = mf.build(fields, files)
    (run_dir / contract.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def metrics(
    trained: Trained,
    exported: Export,
    data: Data,
    float_result: tuple[float, dict[str, float]],
    int8: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json: float and int8 accuracy (as served), calibration, doubt and novelty."""
    float_acc, float_per_class = float_result
    calibration = int8["calibration"]
    test, tta = calibration["test"], exported.inference["tta"]
    metrics = {
        "float_test_accuracy": round(float_acc, 4),
        "int8_test_accuracy": int8["accuracy"],
        "int8_minus_float": round(int8["accuracy"] - float_acc, 4),
        "float_per_class": float_per_class,
        "int8_per_class": int8["per_class"],
        "validation_accuracy": exported.inference["validation_accuracy_by_tta"][tta],
        "epochs_run": len(trained.history["loss"]),
        "test_set": f"{data.name}/test ({len(data.y_test)} images)",
        "int8_runtime": int8["runtime"],
        "ece_before": test["before"]["ece"],
        "ece_after": test["after"]["ece"],
        "coverage": test["coverage"],
        "confident_accuracy": test["confident_accuracy"],
        "validation_calibration": calibration["validation"],
        "test_flagged_none_of_these": calibration["test_flagged_none_of_these"],
    }
    if "extra" in int8:
        metrics["held_out_corrections_accuracy"] = int8["extra"]["corrections"]["accuracy"]
    return metrics
