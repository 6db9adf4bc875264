"""The seeds table of docs/training.md, from the published manifests (their figures, written once).

    python -m research.seeds_report models/<seed 0 version> models/<seed 1 version> [--photo F ...]

Prints Markdown: one column per run and the mean (spread = max - min) of each figure, then int8
accuracy per class. ``--photo`` takes the JSON files of ``research/photo_robustness.py --kinds
--json`` (one per run, same order) and adds the photo-sized drops.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def spread(values: list[float]) -> str:
    mean = pct(statistics.mean(values))
    if len(values) < 2:
        return mean
    return f"**{mean}** ({100 * (max(values) - min(values)):.2f} pt)"


def table(manifests: list[dict[str, Any]], photos: list[dict[str, Any]]) -> str:
    seeds = [f"seed {m['recipe']['seed']}" for m in manifests]
    metric = [m["metrics"] for m in manifests]
    rows: list[tuple[str, list[str], str]] = []

    def add(name: str, values: list[float]) -> None:
        rows.append((name, [pct(v) for v in values], spread(values)))

    add("**int8 test accuracy, as served**", [m["int8_test_accuracy"] for m in metric])
    add("float test accuracy", [m["float_test_accuracy"] for m in metric])
    add("validation accuracy (as served)", [m["validation_accuracy"] for m in metric])
    rows.append(
        (
            "ECE on test, before → after the temperature",
            [f"{pct(m['ece_before'])} → {pct(m['ece_after'])}" for m in metric],
            spread([m["ece_after"] for m in metric]) + " after",
        )
    )
    add("confident answers: share of test images", [m["coverage"] for m in metric])
    add("confident answers: accuracy on test", [m["confident_accuracy"] for m in metric])
    if photos:
        # photo_robustness.py writes drops as positive points lost against 32x32
        drops = [p["mean_drop_points"] for p in photos]
        rows.append(
            (
                "photo-sized test images: mean drop",
                [f"{d:.2f} pt" for d in drops],
                f"{statistics.mean(drops):.2f} pt",
            )
        )
        rows.append(
            (
                "photo-sized test images: worst drop",
                [f"{max(p['drop_points'].values()):.2f} pt" for p in photos],
                "",
            )
        )
    rows.append(
        (
            "temperature; doubt threshold",
            [
                f"{m['inference']['temperature']}; {m['inference']['unsure_below']:.3f}"
                for m in manifests
            ],
            "",
        )
    )
    rows.append(
        (
            "test-time views",
            [m["inference"]["tta"] for m in manifests],
            "",
        )
    )
    rows.append(
        (
            "epochs; training minutes; whole run",
            [
                f"{m['metrics']['epochs_run']}; {m['stage_seconds']['train'] / 60:.1f}; "
                f"{m['metrics']['wall_minutes']:.1f}"
                for m in manifests
            ],
            "",
        )
    )
    rows.append(("machine", [m["machine"] for m in manifests], ""))
    rows.append(("version", [f"`{m['model_version']}`" for m in manifests], ""))

    lines = [
        "| | " + " | ".join(seeds) + " | mean (spread) |",
        "|---|" + "---|" * len(seeds) + "---|",
    ]
    lines += [f"| {name} | " + " | ".join(cells) + f" | {last} |" for name, cells, last in rows]
    classes = manifests[0]["class_names"]
    lines += [
        "",
        "| int8 per class (test) | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for seed, m in zip(seeds, metric):
        per = m["int8_per_class"]
        lines.append(f"| {seed} | " + " | ".join(f"{100 * per[c]:.1f}" for c in classes) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="models/<version> folders")
    parser.add_argument("--photo", nargs="*", type=Path, default=[])
    args = parser.parse_args(argv)
    if args.photo and len(args.photo) != len(args.models):
        parser.error("give one --photo file per model, in the same order")
    manifests = [load(folder) for folder in args.models]
    photos = [json.loads(p.read_text()) for p in args.photo]
    print(table(manifests, photos))


if __name__ == "__main__":
    main()
