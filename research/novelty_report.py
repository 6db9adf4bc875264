"""How well ``none_of_these`` tells pictures of none of the categories from the test split.

    python -m research.novelty_report models/latest/manifest.json --json docs/novelty.json \
        --plot docs/novelty.png

For each kind of training/outliers.py (which kinds were chosen on, evaluated, or held out as an
outside check is printed beside each): AUROC of each novelty score against the test split, the
share flagged ``none_of_these`` at the manifest's threshold, and the share flagged
``none_of_these`` or ``unsure``; and the test split's own share flagged. Runs the int8 model as
served (TensorFlow-free). Without a threshold in the manifest, one is fitted on the validation
split as training does (at most 5% of in-category images flagged, with 95% confidence).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from classifier.core import FEATURE_NORM_SCORE, NOVELTY_SCORES, Outputs, novelty
from classifier.manifest import Manifest, resolve
from classifier.runtime import load_classifier

from release import calibration as cal
from training import data as cifar
from training import outliers

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg"


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an outside image scores above an inside one), ties counted half (Mann-Whitney)."""
    scores = np.concatenate([inside, outside])
    ranks = np.empty(len(scores))
    order = scores.argsort(kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[order][np.diff(scores[order], prepend=np.nan) == 0]):
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def splits(manifest: Manifest, data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's own validation split (its recipe's seed and fraction) and the test split."""
    recipe = manifest.raw["recipe"]
    dataset, _ = cifar.load(data)
    _, _, x_val, y_val = cifar.split_validation(
        dataset.x_train, dataset.y_train, recipe["validation_fraction"], recipe["seed"]
    )
    return x_val, y_val, dataset.x_test, dataset.y_test


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--images", type=int, default=300, help="images made of each kind")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="score histograms, test split vs each kind")
    args = parser.parse_args(argv)

    manifest = Manifest.from_bytes(args.manifest.read_bytes())
    model = Path(resolve(str(args.manifest), manifest.model_path)).read_bytes()
    classifier = load_classifier(model, manifest)
    inference = classifier.inference
    x_val, _, x_test, y_test = splits(manifest, args.data)

    # The feature score needs the model's features output and their moments (the manifest's).
    names = [s for s in NOVELTY_SCORES if s != FEATURE_NORM_SCORE or inference.novelty_moments]

    def scores(outputs: Outputs) -> dict[str, np.ndarray]:
        return {
            s: novelty(
                outputs.answers,
                outputs_kind=inference.outputs,
                score=s,
                temperature=inference.temperature,
                feature_norms=outputs.feature_norms,
                moments=inference.novelty_moments,
            )
            for s in names
        }

    val = scores(classifier.predict_views(x_val))
    test_views = classifier.predict_views(x_test)
    test_outputs = test_views.answers
    test = scores(test_views)
    threshold = inference.novel_above
    if threshold is None:
        threshold = cal.novelty_threshold(val[inference.novelty])
    chosen = inference.novelty
    test_confidence = classifier.to_probabilities(test_outputs).max(axis=1)
    result: dict[str, Any] = {
        "model_version": manifest.model_version,
        "score": chosen,
        "threshold": threshold,
        "fitted_here": inference.novel_above is None,
        "test": {
            "images": len(y_test),
            "flagged": round(float((test[chosen] > threshold).mean()), 4),
            "flagged_or_unsure": round(
                float(
                    ((test[chosen] > threshold) | (test_confidence < inference.unsure_below)).mean()
                ),
                4,
            ),
        },
        "validation_flagged": round(float((val[chosen] > threshold).mean()), 4),
        "kinds": {},
    }
    kind_scores = {}
    for index, (name, make) in enumerate(outliers.KINDS.items()):
        pixels = np.stack([classifier.to_array(b) for b in make(args.images, 1000 + index)])
        views = classifier.predict_views(pixels)
        outputs = views.answers
        kind = scores(views)
        kind_scores[name] = kind[chosen]
        flagged = kind[chosen] > threshold
        unsure = classifier.to_probabilities(outputs).max(axis=1) < inference.unsure_below
        result["kinds"][name] = {
            "use": outliers.USE[name],
            "images": len(pixels),
            "auroc": {s: round(auroc(test[s], kind[s]), 4) for s in names},
            "flagged": round(float(flagged.mean()), 4),
            "flagged_or_unsure": round(float((flagged | unsure).mean()), 4),
        }
    print(f"{manifest.model_version}: score {chosen}, threshold {threshold:.4f}")
    print(
        f"  test split: {result['test']['flagged']:.1%} flagged none_of_these "
        f"(validation {result['validation_flagged']:.1%})"
    )
    header = " ".join(f"{s:>15}" for s in names)
    print(f"  {'kind':<20} {'use':<14} {header} {'flagged':>8} {'or unsure':>9}")
    for name, row in result["kinds"].items():
        aurocs = " ".join(f"{row['auroc'][s]:>15.4f}" for s in names)
        print(
            f"  {name:<20} {row['use']:<14} {aurocs} {row['flagged']:>8.1%} "
            f"{row['flagged_or_unsure']:>9.1%}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        from training import plots

        plots.novelty_histograms(test[chosen], kind_scores, threshold, chosen, args.plot)
    return result


if __name__ == "__main__":
    main()
