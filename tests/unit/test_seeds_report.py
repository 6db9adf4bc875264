"""The seeds table is computed from the manifests: means and spreads, per class, photo drops."""

import json

from research import seeds_report


def manifest(seed: int, int8: float, per_class: dict[str, float]) -> dict:
    return {
        "model_version": f"v{seed}",
        "class_names": list(per_class),
        "recipe": {"seed": seed},
        "machine": "Example CPU, 2 cores, avx2",
        "inference": {"tta": "mirror-translate", "temperature": 0.5, "unsure_below": 0.85},
        "stage_seconds": {"train": 600},
        "metrics": {
            "int8_test_accuracy": int8,
            "float_test_accuracy": int8 - 0.001,
            "validation_accuracy": int8 + 0.002,
            "ece_before": 0.2,
            "ece_after": 0.01,
            "coverage": 0.8,
            "confident_accuracy": 0.975,
            "epochs_run": 12,
            "wall_minutes": 15.0,
            "int8_per_class": per_class,
        },
    }


def test_the_table_gives_each_seed_and_the_mean_and_spread(tmp_path):
    for seed, acc in ((0, 0.90), (1, 0.92)):
        folder = tmp_path / f"v{seed}"
        folder.mkdir()
        folder.joinpath("manifest.json").write_text(
            json.dumps(manifest(seed, acc, {"cat": acc - 0.05, "dog": acc + 0.05}))
        )
    photos = [
        {"drop_points": {"a": 0.4, "b": 0.8}, "mean_drop_points": 0.6},
        {"drop_points": {"a": 0.2, "b": 0.4}, "mean_drop_points": 0.3},
    ]
    text = seeds_report.table([seeds_report.load(tmp_path / f"v{i}") for i in (0, 1)], photos)
    lines = text.splitlines()
    int8 = next(line for line in lines if line.startswith("| **int8 test accuracy"))
    assert int8.endswith("| 90.00% | 92.00% | **91.00%** (2.00 pt) |")
    assert "| photo-sized test images: mean drop | 0.60 pt | 0.30 pt | 0.45 pt |" in lines
    assert "| photo-sized test images: worst drop | 0.80 pt | 0.40 pt |  |" in lines
    assert "| seed 1 | 87.0 | 97.0 |" in lines
