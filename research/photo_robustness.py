"""Accuracy on photo-sized images: validation images upscaled and JPEG-encoded, through the
serving code's preprocessing, against the same images at 32x32; one column per resize filter.

    python -m research.photo_robustness [--model models/latest/manifest.json] [--data DIR]
        [--images 2000] [--sizes 96 160 256 512] [--filters bicubic box ...] [--split validation]

The images come from the model's own validation split (its recipe's seed and fraction), never the
test split unless asked (`--split test`, once, for a published figure). Each is enlarged with a
bicubic filter (as a viewer or a phone would) to each size and saved as JPEG (quality 90), then
decoded by ``classifier.core.image_to_array`` with ``RESIZE_FILTER`` set to each candidate filter.
Prints accuracy per size and filter and the drop against 32x32; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from classifier import core
from classifier.manifest import Manifest, resolve
from classifier.runtime import load_classifier
from classifier.settings import REPO_MODEL
from PIL import Image

from training import data as cifar
from training import photos

ROOT = Path(__file__).resolve().parents[1]

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


def served_sample(
    model: Path, data: str, split: str, images: int
) -> tuple[Manifest, Any, np.ndarray, np.ndarray]:
    """The model as served, and a fixed sample of ``images`` of its own validation split (its
    recipe's seed and fraction) or of the test split."""
    manifest = Manifest.from_bytes(model.read_bytes())
    classifier = load_classifier(
        Path(resolve(str(model), manifest.model_path)).read_bytes(), manifest
    )
    dataset, _ = cifar.load(data)
    if split == "test":
        x, y = dataset.x_test, dataset.y_test
    else:
        recipe = json.loads(model.read_text())["recipe"]
        _, _, x, y = cifar.split_validation(
            dataset.x_train, dataset.y_train, recipe["validation_fraction"], recipe["seed"]
        )
    chosen = np.random.default_rng(0).permutation(len(y))[:images]
    return manifest, classifier, x[chosen], y[chosen]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=REPO_MODEL)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160, 256, 512])
    parser.add_argument("--filters", nargs="+", default=list(FILTERS), choices=list(FILTERS))
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--kinds",
        action="store_true",
        help="the four photo kinds of the model-quality goal (serving filter), not the grid",
    )
    args = parser.parse_args(argv)

    manifest, classifier, x, y = served_sample(args.model, args.data, args.split, args.images)

    def accuracy(pixels: np.ndarray) -> float:
        return float((classifier.predict_arrays(pixels).argmax(axis=1) == y).mean())

    base = accuracy(x)
    if args.kinds:
        drops = {
            kind: base - accuracy(np.stack([core.image_to_array(d) for d in files]))
            for kind, files in photos.photo_kinds(x).items()
        }
        print(f"{manifest.model_version}, {len(y)} {args.split} images; 32x32: {base:.2%}")
        for kind, drop in drops.items():
            print(f"  {kind:<24} {base - drop:.2%} ({-drop * 100:+.2f} points)")
        print(f"  mean drop {np.mean(list(drops.values())) * 100:.2f} points")
        kinds_result = {
            "model_version": manifest.model_version,
            "split": args.split,
            "images": len(y),
            "base_32x32": base,
            "drop_points": {k: round(d * 100, 2) for k, d in drops.items()},
            "mean_drop_points": round(float(np.mean(list(drops.values()))) * 100, 2),
        }
        if args.json:
            args.json.write_text(json.dumps(kinds_result, indent=2) + "\n")
        return kinds_result
    table: dict[str, dict[str, float]] = {}
    default = core.RESIZE_FILTER
    start = time.perf_counter()
    try:
        for size in args.sizes:
            encoded = photos.enlarged_jpegs(x, size)
            for name in args.filters:
                core.RESIZE_FILTER = FILTERS[name]
                arrays = np.stack([core.image_to_array(data) for data in encoded])
                table.setdefault(str(size), {})[name] = accuracy(arrays)
    finally:
        core.RESIZE_FILTER = default
    print(
        f"{manifest.model_version}, {len(y)} {args.split} images, {platform.machine()}; "
        f"32x32: {base:.2%} ({time.perf_counter() - start:.0f} s)"
    )
    print(f"{'size':>6} " + " ".join(f"{n:>16}" for n in args.filters))
    for size, row in table.items():
        cells = " ".join(f"{row[n]:7.2%} ({(row[n] - base) * 100:+5.2f})" for n in args.filters)
        print(f"{size:>6} {cells}")
    mean_drop = {n: float(np.mean([base - table[s][n] for s in table])) for n in args.filters}
    print("mean drop (points): " + ", ".join(f"{n} {d * 100:.2f}" for n, d in mean_drop.items()))
    result = {
        "model_version": manifest.model_version,
        "split": args.split,
        "images": len(y),
        "base_32x32": base,
        "accuracy": table,
        "mean_drop": mean_drop,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
