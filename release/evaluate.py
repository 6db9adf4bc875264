"""Evaluate a published int8 model the way the Lambdas run it (no TensorFlow in this process).

    python -m release.evaluate models/latest/manifest.json --data ../shared/datasets/cifar10-jpeg

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
from classifier.contract import MANIFEST_NAME
from classifier.core import FEATURE_NORM_SCORE, Outputs, energy, moments_of, novelty, softmax
from classifier.manifest import Manifest, build, resolve
from classifier.runtime import load_classifier

from release import calibration as cal


def opened(manifest_path: Path | tuple[dict[str, Any], Path]) -> tuple[Manifest, bytes]:
    """A published model (its manifest's path), or a run's model before its manifest exists:
    (the fields the job will write, the run folder), built and checked in memory only, so the
    run's manifest is written once, complete, after calibration."""
    if isinstance(manifest_path, tuple):
        fields, run_dir = manifest_path
        files = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}
        document = build(fields, {k: v for k, v in files.items() if k != MANIFEST_NAME})
        manifest = Manifest.from_dict(document)
        return manifest, (run_dir / manifest.model_path).read_bytes()
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    return manifest, Path(resolve(str(manifest_path), manifest.model_path)).read_bytes()


def evaluate(
    manifest_path: Path | tuple[dict[str, Any], Path],
    x: np.ndarray,
    y: np.ndarray,
    *,
    details: bool = False,
    runtime: str | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    confident_accuracy: float = 0.975,
    none_of_these: np.ndarray | None = None,
    extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Accuracy of the model behind ``manifest_path`` on uint8 images ``x`` with labels ``y``;
    with ``validation`` images and labels, also fit its temperature and doubt threshold there
    and report calibration and coverage on ``x``."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("evaluate int8 models in a process without TensorFlow")
    manifest, model = opened(manifest_path)
    classifier = load_classifier(model, manifest, runtime=runtime)
    start = time.perf_counter()
    views = classifier.predict_views(x)  # once: accuracy and calibration both read them
    outputs = views.answers
    probabilities = classifier.to_probabilities(outputs)
    seconds = time.perf_counter() - start
    predictions = probabilities.argmax(axis=1)
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
    if validation is not None:
        result["calibration"] = calibrate(
            classifier, views, y, validation, confident_accuracy, none_of_these
        )
    else:
        result["ece"] = cal.reliability(probabilities, y)["ece"]
        result["coverage"] = cal.coverage(probabilities, y, classifier.inference.unsure_below)
    for name, (x_extra, y_extra) in (extra or {}).items():
        predicted = classifier.to_probabilities(classifier.predict_outputs(x_extra)).argmax(1)
        result.setdefault("extra", {})[name] = {
            "images": len(y_extra),
            "accuracy": round(float((predicted == y_extra).mean()), 4) if len(y_extra) else None,
        }
    if details:
        result["confusion"] = confusion.tolist()
        result["predictions"] = predictions.tolist()
    return result


def calibrate(
    classifier: Any,
    outputs: Outputs,
    y: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    target: float,
    none_of_these: np.ndarray | None = None,
) -> dict[str, Any]:
    """Temperature, doubt threshold and novelty threshold from the validation outputs as served;
    their effect on the test outputs (ECE before and after, coverage, share flagged none of
    these, the curves for the plots). Reviewers' "none of these" images, if any, join the
    doubt threshold's images as answers that are always wrong."""
    kind = classifier.inference.outputs
    x_val, y_val = validation
    val_views = classifier.predict_views(x_val)
    val_logits = cal.as_logits(val_views.answers, kind)
    temperature = cal.fit_temperature(val_logits, y_val)
    doubt_logits, doubt_y = val_logits, y_val
    if none_of_these is not None and len(none_of_these):
        none_logits = cal.as_logits(classifier.predict_outputs(none_of_these), kind)
        doubt_logits = np.concatenate([val_logits, none_logits])
        doubt_y = np.concatenate([y_val, np.full(len(none_logits), -1)])
    threshold = cal.doubt_threshold(softmax(doubt_logits, temperature), doubt_y, target)
    score_of, score, moments = novelty_scorer(kind, val_views, val_logits, temperature)
    val_scores = score_of(val_views)
    novel_above = cal.novelty_threshold(val_scores)
    test_novelty = score_of(outputs)
    test_logits = cal.as_logits(outputs.answers, kind)
    before, after = softmax(test_logits), softmax(test_logits, temperature)
    return {
        "temperature": temperature,
        "unsure_below": threshold,
        "novelty": score,
        "novel_above": novel_above,
        "novelty_moments": moments,
        "none_of_these_images": 0 if none_of_these is None else len(none_of_these),
        "test_flagged_none_of_these": round(float((test_novelty > novel_above).mean()), 4),
        "target_confident_accuracy": target,
        "validation_answers": cal.answer_mix(
            softmax(val_logits, temperature),
            val_scores,
            threshold,
            novel_above,
            list(classifier.class_names),
        ),
        "validation": {
            "ece_before": cal.reliability(softmax(val_logits), y_val)["ece"],
            "ece_after": cal.reliability(softmax(val_logits, temperature), y_val)["ece"],
            **cal.coverage(softmax(val_logits, temperature), y_val, threshold),
        },
        "test": {
            "accuracy": round(float((after.argmax(1) == y).mean()), 4),
            "before": cal.reliability(before, y),
            "after": cal.reliability(after, y),
            **cal.coverage(after, y, threshold),
            "risk_coverage": cal.risk_coverage(after, y),
        },
    }


def novelty_scorer(
    kind: str, val_views: Outputs, val_logits: np.ndarray, temperature: float
) -> tuple[Any, str, Any]:
    """The novelty score this model's outputs allow, as a function of its served outputs, with
    its name and (for the feature score) the validation moments it is standardised by.

    Energy needs logits; of a probability model's outputs only the top probability is left.
    With a features output, the feature norm joins the energy, both as validation spreads them.
    """
    score = "energy" if kind == "logits" else "max-probability"
    moments = None
    if kind == "logits" and val_views.feature_norms is not None:
        score = FEATURE_NORM_SCORE
        moments = (
            moments_of(energy(val_logits, temperature)),
            moments_of(val_views.feature_norms),
        )

    def score_of(views: Outputs) -> np.ndarray:
        return novelty(
            views.answers,
            outputs_kind=kind,
            score=score,
            temperature=temperature,
            feature_norms=views.feature_norms,
            moments=moments,
        )

    return score_of, score, moments


def parser() -> argparse.ArgumentParser:
    """The options: a model, the images to score it on, and what to fit and report."""
    parser = argparse.ArgumentParser(prog="python -m release.evaluate", description=__doc__)
    parser.add_argument(
        "manifest",
        type=Path,
        help="a model's manifest.json; with --draft, a run folder without its manifest yet",
    )
    parser.add_argument(
        "--draft",
        action="store_true",
        help="read the run's manifest fields (JSON) from standard input: nothing is written",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a data source as for training (its test split is used)")
    source.add_argument("--arrays", type=Path, help="an .npz with uint8 x and int labels y")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--limit", type=int, help="a fixed random sample of N test images (seed 0), not all"
    )
    parser.add_argument("--details", action="store_true", help="include predictions, confusion")
    parser.add_argument(
        "--calibrate-on",
        type=Path,
        help="an .npz of validation images: fit the temperature and doubt threshold on it",
    )
    parser.add_argument(
        "--confident-accuracy", type=float, default=0.975, help="the doubt threshold's target"
    )
    parser.add_argument(
        "--none-of-these",
        type=Path,
        help="an .npz of images reviewers said are none of the categories (x): with "
        "--calibrate-on, answers the doubt threshold counts as always wrong",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=NPZ",
        help="also report accuracy on these labelled images (x, y), e.g. held-out corrections",
    )
    parser.add_argument(
        "--runtime",
        choices=("ai-edge-litert", "tflite-runtime"),
        help="the TFLite runtime (default: the first installed, LiteRT first, as served)",
    )
    return parser


def scored_images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """The images scored (--arrays, or a data set's test split, maybe a --limit sample) and
    their fingerprint."""
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
    return x, y, fingerprint


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    x, y, fingerprint = scored_images(args)
    validation = None
    if args.calibrate_on:
        with np.load(args.calibrate_on) as z:
            validation = z["x"], z["y"]
    none_of_these = None
    if args.none_of_these:
        with np.load(args.none_of_these) as z:
            none_of_these = z["x"]
    extra = {}
    for item in args.extra:
        name, _, path = item.partition("=")
        with np.load(path) as z:
            extra[name] = (z["x"], z["y"])
    model = (json.loads(sys.stdin.read()), args.manifest) if args.draft else args.manifest
    scored_with: dict[str, Any] = {
        "validation": validation,
        "none_of_these": none_of_these,
        "extra": extra,
    }
    target = args.confident_accuracy
    result = evaluate(model, x, y, details=args.details, runtime=args.runtime, **scored_with,
                      confident_accuracy=target)  # fmt: skip
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
