"""Does starting from the published model help small label sets? Measured on data no CIFAR model
has seen: scikit-learn's 1,797 handwritten digits (8x8, bundled, no download).

    python -m research.digits_transfer [--per-class 20 100] [--seeds 0 1] [--epochs 12]
                                      [--init-from models/latest] [--json docs/digits.json]

Each digit becomes a 32x32 PNG (grey, upscaled as a photo would be); 70 images per class are
held out as the test split, the same for every run, and the training images of each run are the
first N per class of the rest. Each (N, start, seed) is one run of the training CLI; the int8
test accuracy it measures (as served) is what is reported, with mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TEST_PER_CLASS = 70


def write_folders(out: Path, per_class: int) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    for label in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == label))
        for split, chosen in (
            ("test", members[:TEST_PER_CLASS]),
            ("train", members[TEST_PER_CLASS : TEST_PER_CLASS + per_class]),
        ):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
                Image.fromarray(pixels).resize((32, 32), Image.Resampling.BICUBIC).save(
                    folder / f"{i}.png"
                )
    return out


def run(data: Path, init: str, seed: int, epochs: int, out: Path) -> dict[str, float]:
    command = [
        sys.executable, "-m", "training.train", "--data", str(data), "--epochs", str(epochs),
        "--seed", str(seed), "--init-from", init, "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    runs = [p for p in out.iterdir() if (p / "metrics.json").is_file()]
    if not runs:  # a run refused for its int8 model still leaves its metrics
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    return {
        "int8": metrics["int8_test_accuracy"],
        "float": metrics["float_test_accuracy"],
        "minutes": metrics["wall_minutes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--init-from", default="models/latest")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.per_class:
            data = write_folders(Path(tmp) / f"digits-{n}", n)
            for init in (args.init_from, "none"):
                scores = []
                for seed in args.seeds:
                    out = Path(tmp) / f"run-{n}-{init.replace('/', '_')}-{seed}"
                    out.mkdir()
                    scores.append(run(data, init, seed, args.epochs, out))
                accuracies = [s["int8"] for s in scores]
                row = {
                    "per_class": n,
                    "start": "fine-tuned" if init != "none" else "from scratch",
                    "seeds": args.seeds,
                    "int8_test_accuracy": accuracies,
                    "float_test_accuracy": [s["float"] for s in scores],
                    "mean": round(float(np.mean(accuracies)), 4),
                    "spread": round(float(np.max(accuracies) - np.min(accuracies)), 4),
                    "minutes": [s["minutes"] for s in scores],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1) + "\n")
    print("| images per class | start | int8 test accuracy (mean) | spread | seeds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['per_class']} | {r['start']} | {r['mean']:.1%} | {r['spread']:.1%} | "
            f"{', '.join(map(str, r['seeds']))} |"
        )


if __name__ == "__main__":
    main()
