"""The command line of ``python -m training.train``: its options, and the recipe they make."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier import contract
from classifier.core import TTA_VIEWS

from training import ROOT

if TYPE_CHECKING:
    from training.job_types import Recipe

# Options that override one recipe field each: option's dest -> the field.
OVERRIDES = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "time_budget": "time_budget_minutes",
    "tta": "tta",
    "image_size": "image_size",
}


def parser(recipes: Mapping[str, Recipe]) -> argparse.ArgumentParser:
    """Every option, with the recipe's names to choose from."""
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train an image classifier (CIFAR-10 by default, or your own labelled "
        "folders), quantise it to int8 TFLite, evaluate, calibrate, plot, publish.",
    )
    p.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"),
        help="a folder of <label>/ folders of images (a test split is held out), or with "
        "train/<label>/ and test/<label>/, a cifar-10-batches-py folder, or 'keras' (downloads)",
    )
    p.add_argument("--recipe", choices=sorted(recipes), default="default")
    p.add_argument("--out", default=str(ROOT / "runs"), help="parent of the run folder")
    p.add_argument(
        "--upload",
        action="append",
        default=[],
        help="publish to s3://bucket/prefix or a local folder (repeatable): "
        "<dest>/models/<version>/ then <dest>/models/latest/manifest.json",
    )
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--widths", help="override channel widths, e.g. 32,64,96")
    p.add_argument("--time-budget", type=float, help="stop training after N minutes")
    p.add_argument("--limit", type=int, help="use only the first N train and test images")
    p.add_argument("--no-cache", action="store_true", help="decode the data again")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--tta", choices=("auto", *TTA_VIEWS), help="override the test-time views")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any recipe field, e.g. --set lookahead_every=0 (repeatable)",
    )
    p.add_argument("--image-size", type=int, choices=(32, 64), help="the input side in pixels")
    add_run_sources(p)
    return p


def add_run_sources(p: argparse.ArgumentParser) -> None:
    """The options that start from something earlier: a run, a model, reviewers' labels."""
    p.add_argument(
        "--resume",
        type=Path,
        help="a run folder whose training stopped: continue it there (its recipe, data and "
        "--limit as recorded in its run.json, unless given again)",
    )
    p.add_argument(
        "--init-from",
        help="start from a published model's float weights (models/<version>, a run folder), "
        "'auto' (the recipe's rule) or 'none'",
    )
    p.add_argument(
        "--corrections",
        help="reviewers' labels, s3://<UploadsBucket>/labels/ or a folder of <label>/ folders: "
        "fine-tune on the data plus these (a share held out for the gate; 'none' items set the "
        "doubt threshold)",
    )
    p.add_argument(
        "--keras-model",
        type=Path,
        help="skip Build and Train: export this run's model.keras again (its manifest.json "
        "beside it gives the recipe and training time; a history.json there, the curves)",
    )


def parse_args(recipes: Mapping[str, Recipe], argv: list[str] | None = None) -> argparse.Namespace:
    """The options; ``--resume`` takes the interrupted run's data as its command line gave it."""
    p = parser(recipes)
    args = p.parse_args(argv)
    if args.resume:
        given = sys.argv[1:] if argv is None else argv
        earlier = p.parse_args(json.loads((args.resume / "run.json").read_text())["argv"])
        for option in ("--data", "--limit"):
            if not any(a == option or a.startswith(option + "=") for a in given):
                name = option.lstrip("-")
                setattr(args, name, getattr(earlier, name))
    return args


def configure(args: argparse.Namespace, recipes: Mapping[str, Recipe]) -> Recipe:
    """The recipe the options make: the named one with its overrides, the interrupted run's
    own (``--resume``), or the re-exported model's own (``--keras-model``)."""
    recipe = recipes[args.recipe]
    if args.resume:
        return recorded(recipe, args.resume / "run.json")
    overrides: dict[str, Any] = {
        name: getattr(args, dest) for dest, name in OVERRIDES.items() if getattr(args, dest)
    }
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.widths:
        overrides["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.init_from:
        overrides["init_from"] = None if args.init_from == "none" else args.init_from
    for item in args.set:
        overrides.update([set_field(recipe, item)])
    if args.keras_model:
        # The trained model's own recipe, so the validation split and records match it.
        recipe = replace(
            recorded(recipe, args.keras_model.parent / contract.MANIFEST_NAME), tta=recipe.tta
        )
    return replace(recipe, **overrides)


def set_field(recipe: Recipe, item: str) -> tuple[str, Any]:
    """``--set name=value``: the field and its value, typed as the recipe's field is."""
    name, _, value = item.partition("=")
    if name not in {f.name for f in fields(recipe)}:
        raise SystemExit(f"error: --set {item}: the recipe has no field {name!r}")
    current = getattr(recipe, name)
    if isinstance(current, tuple):
        return name, tuple(int(v) for v in value.split(","))
    if isinstance(current, bool):
        return name, value.lower() in ("1", "true", "yes")
    return name, type(current)(value) if current is not None else float(value)


def recorded(recipe: Recipe, path: Path) -> Recipe:
    """The recipe a run.json or manifest.json records (lists back to tuples)."""
    saved: dict[str, Any] = json.loads(path.read_text())["recipe"]
    known = {f.name for f in fields(recipe)}
    # Fields a recipe no longer has (the first models' tta_flip, now `tta`) are history only.
    restored: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known
    }
    return type(recipe)(**restored)
