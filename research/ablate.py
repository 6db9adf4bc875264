"""Each technique's worth at a short budget, on the validation split (never the test split).

    python -m research.ablate --limit 15000 --epochs 3 --out runs/ablations.jsonl \
        baseline lookahead_every=0 dirac_init=false ...

Each argument is one run: "baseline" or recipe overrides joined by commas. Each run trains the
default recipe with the overrides and appends one JSON line: float validation accuracy with one
view and with six, on the validation images as they are and as photos would reach the model
(enlarged, JPEG-compressed, reduced by the serving code), and the minutes it took.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from training import ROOT
from training import train as t
from training.photos import photo_versions
from training.progress import Stopwatch
from training.quantisation import predict_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--limit", type=int, default=15000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds for every run")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for run in args.runs:
            # "widths=96,384,384,learning_rate=10": a comma starts a new override before a name=
            sets = [] if run == "baseline" else re.split(r",(?=[a-z_]+=)", run)
            cli = ["--data", args.data, "--limit", str(args.limit), "--epochs", str(args.epochs)]
            cli += ["--seed", str(seed)] + [a for s in sets for a in ("--set", s)]
            targs, recipe = t.options(cli)
            clock = Stopwatch()
            data = t.prepare(targs, recipe, clock)
            recipe = t.adapt(recipe, data)  # resolves init_from="auto" as make train does
            if run == args.runs[0]:  # the validation split depends on the seed only
                photo_val = photo_versions(data.x_val, seed=12345)
            start = time.monotonic()
            trained = t.train(
                t.build(recipe, data, clock), recipe, data, Path(tempfile.mkdtemp()), clock
            )
            row = {
                "run": run,
                "seed": seed,
                "epochs": args.epochs,
                "limit": args.limit,
                "minutes": round((time.monotonic() - start) / 60, 2),
            }
            for tta in ("none", "mirror-translate"):
                for name, x in (("val", data.x_val), ("photo_val", photo_val)):
                    predicted = predict_float(trained.model, x, tta).argmax(1)
                    row[f"{name}_{tta}"] = round(float((predicted == data.y_val).mean()), 4)
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
