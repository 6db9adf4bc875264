"""Evaluate a published int8 model the way the Lambdas run it (no TensorFlow in this process).

    python -m training.evaluate models/latest/manifest.json --data ../shared/datasets/cifar10-jpeg

Test images are decoded by the serving core's ``image_to_array`` and classified by
``classifier.runtime`` (LiteRT, or tflite-runtime; ``--runtime`` picks). Prints overall and
per-class accuracy; ``--json`` writes them (with ``--details``: predictions and confusion matrix).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from classifier.manifest import Manifest, resolve
from classifier.runtime import load_classifier


def evaluate(
    manifest_path: Path,
    x: np.ndarray,
    y: np.ndarray,
    *,
    details: bool = False,
    runtime: str | None = None,
) -> dict[str, Any]:
    """Accuracy of the model behind ``manifest_path`` on uint8 images ``x`` with labels ``y``."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("evaluate int8 models in a process without TensorFlow")
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    model = Path(resolve(str(manifest_path), manifest.model_path)).read_bytes()
    classifier = load_classifier(model, manifest, runtime=runtime)
    start = time.perf_counter()
    predictions = classifier.predict_arrays(x).argmax(axis=1)
    seconds = time.perf_counter() - start
    names = manifest.class_names
    confusion = np.zeros((len(names), len(names)), np.int64)
    np.add.at(confusion, (y, predictions), 1)
    per_class = {
        name: round(float(confusion[i, i] / max(1, confusion[i].sum())), 4)
        for i, name in enumerate(names)
    }
    result: dict[str, Any] = {
        "model_version": manifest.model_version,
        "runtime": classifier.runtime,
        "images": len(y),
        "accuracy": round(float((predictions == y).mean()), 4),
        "per_class": per_class,
        "images_per_second": round(len(y) / seconds, 1),
    }
    if details:
        result["confusion"] = confusion.tolist()
        result["predictions"] = predictions.tolist()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__)
    parser.add_argument("manifest", type=Path, help="a model's manifest.json")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a data source as for training (its test split is used)")
    source.add_argument("--arrays", type=Path, help="an .npz with uint8 x and int labels y")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--limit", type=int, help="a fixed random sample of N test images (seed 0), not all"
    )
    parser.add_argument("--details", action="store_true", help="include predictions, confusion")
    parser.add_argument(
        "--runtime",
        choices=("ai-edge-litert", "tflite-runtime"),
        help="the TFLite runtime (default: the first installed, LiteRT first, as served)",
    )
    args = parser.parse_args(argv)
    if args.arrays:
        with np.load(args.arrays) as z:
            x, y = z["x"], z["y"]
        fingerprint = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    else:
        from training.data import load

        dataset, _ = load(args.data)
        x, y = dataset.x_test, dataset.y_test
        fingerprint = dataset.fingerprint
    if args.limit and args.limit < len(y):
        # The folder lists class by class: a random sample, the same for every model compared.
        chosen = np.sort(np.random.default_rng(0).permutation(len(y))[: args.limit])
        x, y = x[chosen], y[chosen]
    result = evaluate(args.manifest, x, y, details=args.details, runtime=args.runtime)
    result["data_fingerprint"] = fingerprint
    if args.json:
        args.json.write_text(json.dumps(result) + "\n")
    print(
        f"{result['model_version']}: int8 accuracy {result['accuracy']:.4f} on {result['images']} "
        f"test images ({result['runtime']}, {result['images_per_second']:.0f} images/s)"
    )
    for name, accuracy in result["per_class"].items():
        print(f"  {name:<12} {accuracy:.4f}")
    return result


if __name__ == "__main__":
    main()
