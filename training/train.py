"""Train an image classifier, quantise it to int8 TFLite, evaluate and calibrate it, publish it.

    python -m training.train --data ../shared/datasets/cifar10-jpeg [--recipe default|report]
                             [--out runs/] [--upload s3://bucket/prefix | ./models]

CIFAR-10 by default, or your own ``<label>/`` folders. Read top to bottom: the recipe, what the
stages hand each other, then one function per stage under its banner, in execution order:
``prepare`` -> ``build`` -> ``train`` -> ``quantise`` -> ``evaluate`` -> ``plot`` and
``publish_to``, and ``main``. Each stage's parts live in a module named for them: ``cli``
(options -> recipe), ``network``, ``augmentation``, ``fit`` (optimizer, schedule, lookahead,
callbacks), ``quantisation`` (views, equalisation, int8), ``provenance`` (run.json, manifest),
``photos``. TensorFlow is imported inside functions, never at import, so tests and serving
processes that import these modules stay free of it.

The int8 model is evaluated as the Lambdas run it, in a TensorFlow-free process
(``training.serving_process``), which also fits the temperature and thresholds on validation.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from classifier import contract
from classifier.core import sha256_hex

from training import cli, network, provenance, serving_process
from training import corrections as fixes
from training import data as cifar
from training.augmentation import Augmenter, report_augmenter
from training.fit import compile_model, fit_model
from training.job_types import (
    LABEL_SMOOTHING_WITHOUT_TEACHERS,
    RECIPES,
    Data,
    Export,
    Recipe,
    Trained,
)
from training.photos import photo_versions
from training.progress import Stopwatch, log
from training.quantisation import (
    choose_inference,
    equalised,
    float_accuracy,
    to_int8,
    with_features,
)
from training.teachers import for_seed
from training.tensorflow_quiet import import_tensorflow


# --------------------------------------------------------------------------------------------
# Prepare: the data, its splits, corrections, the recipe adapted to them, the run folder
# --------------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, recipe: Recipe, clock: Stopwatch) -> Data:
    """Load (or decode) the data set and split off the recipe's validation images."""
    start = time.monotonic()
    try:
        dataset, cached = cifar.load(args.data, use_cache=not args.no_cache, size=recipe.image_size)
    except cifar.DataError as exc:
        raise SystemExit(f"error: {exc}") from exc
    x_all, y_all = cifar.subsample(dataset.x_train, dataset.y_train, args.limit)
    x_test, y_test = cifar.subsample(dataset.x_test, dataset.y_test, args.limit)
    x_train, y_train, x_val, y_val = cifar.split_validation(
        x_all, y_all, recipe.validation_fraction, recipe.seed
    )
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    data = Data(
        *splits,
        class_names=dataset.class_names,
        name=Path(dataset.source).name or dataset.source,
        fingerprint=dataset.fingerprint,
        limit=args.limit,
        split=dataset.split,
        skipped=len(dataset.skipped),
    )
    log(
        "prepare",
        f"{len(x_train)} train / {len(x_val)} validation / {len(x_test)} test images of "
        f"{len(data.class_names)} labels ({', '.join(data.class_names)}) from "
        f"{dataset.source} ({'cache' if cached else 'decoded'}, fingerprint "
        f"{data.fingerprint[:12]}) in {clock.lap('prepare', start):.1f}s",
    )
    if args.corrections:
        add_corrections(data, args.corrections, recipe)
    if dataset.split != "given":
        log("prepare", f"no test/ folder: {dataset.split} (recorded in the manifest)")
    if dataset.skipped:
        shown = "; ".join(dataset.skipped[:5]) + (" ..." if len(dataset.skipped) > 5 else "")
        log("prepare", f"skipped {len(dataset.skipped)} file(s) that do not decode: {shown}")
    return data


def add_corrections(data: Data, source: str, recipe: Recipe) -> None:
    """Reviewers' labels: a held-out share kept for the gate, the rest repeated into training."""
    folder = fixes.fetch(
        source, cifar.cache_dir() / "corrections" / sha256_hex(source.encode())[:12]
    )
    found = fixes.load(folder, data.class_names, recipe.image_size, source)
    train = ~found.held_out()
    repeat = max(1, recipe.corrections_repeat)
    data.base_train = len(data.x_train)
    data.x_train = np.concatenate([data.x_train, *[found.x[train]] * repeat])
    data.y_train = np.concatenate([data.y_train, *[found.y[train]] * repeat])
    data.corrections = found
    log(
        "prepare",
        f"corrections from {source}: {int(train.sum())} trained on (x{repeat}), "
        f"{int((~train).sum())} held out for the gate, {len(found.none_ids)} 'none of these' "
        f"(for the doubt threshold), {found.skipped} unreadable",
    )


def adapt(recipe: Recipe, data: Data) -> Recipe:
    """The recipe for this data set: a batch small sets can fill, and whether to start from
    published weights ("auto": when the smallest label is small; the rule is measured in
    docs/training.md)."""
    changes: dict[str, Any] = {}
    target = max(
        16,
        2 ** int(math.log2(max(1, len(data.x_train) // recipe.min_batches_per_epoch))),
    )
    if target < recipe.batch_size:
        changes["batch_size"] = target
    if recipe.init_from == "auto":
        smallest = int(np.min(np.bincount(data.y_train, minlength=len(data.class_names))))
        source = network.compatible_published_model(recipe)
        # Corrections refine the served model: start from it (a new model would forget it).
        small = smallest < recipe.init_auto_below or data.corrections is not None
        changes["init_from"] = source if small else None
    if recipe.teachers:
        changes["teachers"] = for_seed(recipe.teachers, recipe.seed)
        taught = replace(recipe, teachers=changes["teachers"])
        changes.update(without_teachers(taught, data, changes.get("init_from", recipe.init_from)))
    if changes.get("init_from", recipe.init_from):
        scale = (
            recipe.fine_tune_lr_scale if data.corrections is None else recipe.corrections_lr_scale
        )
        changes["learning_rate"] = recipe.learning_rate * scale
        changes["whiten_bias_epochs"] = 0  # the published whitening bias is kept as trained
    return replace(recipe, **changes)


def without_teachers(recipe: Recipe, data: Data, init_from: str | None) -> dict[str, Any]:
    """Distillation's changes undone where the teachers cannot teach: another data set or
    validation split, other labels or input size, teachers not here, or a run that starts from a
    published model or learns corrections (they use the served model's own answers instead).
    Labels are smoothed as without a teacher then, except when corrections are learnt with the
    served model's answers blended in (``corrections_distill``): they soften the labels as a
    teacher's would, and smoothing on top moved every clean answer of the served model (it was
    trained without smoothing; docs/feedback.md)."""
    from training.teachers import applicable

    split = (recipe.seed, recipe.validation_fraction, len(data.x_train), len(data.x_val))
    why = applicable(recipe.teachers, data.class_names, recipe.image_size, data.fingerprint, split)
    if init_from or data.corrections is not None:
        why = "the run refines a published model or learns corrections"
    if why is None:
        return {}
    if data.corrections is not None and recipe.corrections_distill > 0:
        log("build", "no teachers: the served model's own answers soften the labels instead")
        return {"teachers": ""}
    log("build", f"no teachers: {why}; labels smoothed by {LABEL_SMOOTHING_WITHOUT_TEACHERS}")
    return {"teachers": "", "label_smoothing": LABEL_SMOOTHING_WITHOUT_TEACHERS}


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
@dataclass
class Built:
    """What the Build stage hands to Train."""

    model: Any
    precision: str
    photos: np.ndarray | None  # each training image as a photo would arrive, or None


def build(recipe: Recipe, data: Data, clock: Stopwatch) -> Built:
    """The recipe's model, compiled, from random or published weights."""
    start = time.monotonic()
    import_tensorflow(recipe.seed)
    import keras

    precision = network.choose_precision(recipe)
    keras.mixed_precision.set_global_policy(precision)
    model = network.build_model(recipe, data.x_train, len(data.class_names))
    start_from = "random weights"
    if recipe.init_from:
        source = network.published_float_model(recipe.init_from)
        kept = network.transfer_weights(model, source, data.class_names)
        head = "its head kept" if kept else "new head"
        start_from = f"the float weights of {recipe.init_from}, {head}"
    steps = -(-len(data.x_train) // recipe.batch_size)
    compile_model(model, recipe, steps_per_epoch=steps)
    photos = None
    if recipe.photo_fraction > 0:
        photos = photo_versions(data.x_train, recipe.seed)
    log(
        "build",
        f"{model.name}: {model.count_params():,} parameters, recipe {recipe.name}, {precision}, "
        f"{recipe.epochs} epochs of {steps} steps of {recipe.batch_size}, from {start_from} "
        f"in {clock.lap('build', start):.1f}s",
    )
    return Built(model, precision, photos)


# --------------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------------
def train(built: Built, recipe: Recipe, data: Data, run_dir: Path, clock: Stopwatch) -> Trained:
    """Train the built model; a float32 copy is what the next stages export."""
    import keras

    start = time.monotonic()
    model = built.model
    history, earlier_seconds = fit_model(
        model, recipe, data, built.photos, backup=run_dir / "backup"
    )
    if built.precision != "float32":  # export a float32 model: the converter quantises from it
        keras.mixed_precision.set_global_policy("float32")
        trained_weights = model.get_weights()
        model = network.build_model(recipe, data.x_train, len(data.class_names))
        model.set_weights(trained_weights)
    trained = Trained(model, history)
    this_session = clock.lap("train", start)
    # A resumed run's training time includes its earlier sessions' epochs (from epochs.jsonl).
    clock.seconds["train"] = round(this_session + earlier_seconds, 2)
    resumed = f" ({earlier_seconds / 60:.1f} of them before resuming)" if earlier_seconds else ""
    log(
        "train",
        f"{len(history['loss'])} epochs in {clock.seconds['train'] / 60:.1f} min{resumed}; "
        f"validation accuracy {history['val_accuracy'][-1]:.4f} (one view)",
    )
    return trained


def load(path: Path, recipe: Recipe, clock: Stopwatch) -> Trained:
    """``--keras-model``: a model trained by an earlier run, exported again (no training)."""
    import_tensorflow(recipe.seed)

    model = network.load_float_model(path)
    curves = path.parent / "history.json"
    # A published folder keeps the curves as a picture only: the re-export then has none to plot.
    history = (
        json.loads(curves.read_text())
        if curves.exists()
        else {k: [] for k in ("loss", "val_loss", "accuracy", "val_accuracy")}
    )
    earlier = json.loads((path.parent / contract.MANIFEST_NAME).read_text())
    # The stages it skips count as that run's: a re-export reports the training it came from.
    clock.seconds.update({k: earlier["stage_seconds"][k] for k in ("build", "train")})
    log(
        "train",
        f"loaded {path}, trained by run {earlier['model_version']} in "
        f"{earlier['stage_seconds']['train'] / 60:.1f} min",
    )
    return Trained(model, history, resumed_from=path)


# --------------------------------------------------------------------------------------------
# Quantise: the test-time views (chosen on validation) and the int8 model
# --------------------------------------------------------------------------------------------
def quantise(
    trained: Trained,
    recipe: Recipe,
    data: Data,
    run_dir: Path,
    stamp: datetime,
    clock: Stopwatch,
) -> Export:
    """The Keras files, the choice of test-time views and the int8 model, in the run folder."""
    start = time.monotonic()
    network.save_weights_and_graph(trained.model, run_dir / contract.FLOAT_MODEL_NAME)
    trained.model.save(run_dir / "model.h5")
    (run_dir / "history.json").write_text(json.dumps(trained.history, indent=1) + "\n")
    inference = choose_inference(trained.model, recipe, data.x_val, data.y_val)
    calibration = cifar.subsample(data.x_train, data.y_train, recipe.calibration_images)[0]
    tflite = to_int8(with_features(equalised(trained.model)), calibration)
    (run_dir / contract.MODEL_NAME).write_bytes(tflite)
    sizes: dict[str, float] = {
        "keras_bytes": (run_dir / "model.keras").stat().st_size,
        "h5_bytes": (run_dir / "model.h5").stat().st_size,
        "tflite_int8_bytes": len(tflite),
    }
    sizes["saving_vs_h5"] = round(1 - sizes["tflite_int8_bytes"] / sizes["h5_bytes"], 4)
    exported = Export(
        run_dir=run_dir,
        version=f"{stamp:%Y%m%d-%H%M%S}-{recipe.name}-{sha256_hex(tflite)[:8]}",
        stamp=stamp,
        tflite=tflite,
        served=trained.model,
        inference=inference,
        sizes=sizes,
    )
    log(
        "quantise",
        f"int8 {sizes['tflite_int8_bytes'] / 1024:,.0f} KB vs .h5 {sizes['h5_bytes'] / 1024:,.0f}"
        f" KB ({sizes['saving_vs_h5']:.0%} smaller); views {inference['tta']} "
        f"(validation {inference['validation_accuracy_by_tta']}) in "
        f"{clock.lap('quantise', start):.1f}s",
    )
    return exported


# --------------------------------------------------------------------------------------------
# Evaluate: float here, int8 as served in a TensorFlow-free process (release/evaluate.py),
# which also fits the temperature and the doubt threshold on validation; the manifest
# --------------------------------------------------------------------------------------------
def evaluate(
    trained: Trained, exported: Export, recipe: Recipe, data: Data, clock: Stopwatch
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Float accuracy here, int8 accuracy as served (another process), which also fits the
    temperature and doubt threshold: the manifest's fields, the metrics, and the int8
    evaluation's details (predictions, confusion, calibration) for the plots."""
    start = time.monotonic()
    tta = exported.inference["tta"]
    float_acc, float_per_class = float_accuracy(
        exported.served, data.x_test, data.y_test, data.class_names, tta
    )
    fields = provenance.manifest_fields(trained, exported, recipe, data)
    int8 = evaluate_int8(exported.run_dir, fields, recipe, data)
    calibration = int8["calibration"]
    fields["inference"] = {
        **fields["inference"],
        "temperature": calibration["temperature"],
        "unsure_below": calibration["unsure_below"],
        "novelty": calibration["novelty"],
        "novel_above": calibration["novel_above"],
    }
    if calibration.get("novelty_moments"):
        fields["inference"]["novelty_moments"] = calibration["novelty_moments"]
    # What answers on images like validation look like: the drift alarms' default baseline.
    fields["validation_answers"] = calibration["validation_answers"]
    if data.corrections is not None:
        fields["corrections"] = data.corrections.summary()
    metrics = provenance.metrics(trained, exported, data, (float_acc, float_per_class), int8)
    log(
        "evaluate",
        f"test accuracy float {float_acc:.4f}, int8 {int8['accuracy']:.4f} ({int8['runtime']}); "
        f"temperature {calibration['temperature']}: ECE {metrics['ece_before']:.3f} -> "
        f"{metrics['ece_after']:.3f}; sure of {metrics['coverage']:.1%} at "
        f"{metrics['confident_accuracy']:.2%} right, in {clock.lap('evaluate', start):.1f}s",
    )
    return fields, metrics, int8


def evaluate_int8(
    run_dir: Path, fields: dict[str, Any], recipe: Recipe, data: Data
) -> dict[str, Any]:
    """The int8 model's test accuracy as served, its temperature and thresholds fitted on
    validation, and its accuracy on the held-out corrections, in a TensorFlow-free process."""
    with tempfile.TemporaryDirectory() as tmp:
        test, val = Path(tmp) / "test.npz", Path(tmp) / "validation.npz"
        np.savez(test, x=data.x_test, y=data.y_test)
        np.savez(val, x=data.x_val, y=data.y_val)
        args = ["--arrays", str(test), "--calibrate-on", str(val), "--details"]
        args += ["--confident-accuracy", str(recipe.confident_accuracy)]
        if data.corrections is not None:
            found, held = data.corrections, data.corrections.held_out()
            none, gate = Path(tmp) / "none.npz", Path(tmp) / "corrections.npz"
            np.savez(none, x=found.none_x)
            np.savez(gate, x=found.x[held], y=found.y[held])
            args += ["--none-of-these", str(none), "--extra", f"corrections={gate}"]
        try:
            return serving_process.evaluate(run_dir, *args, show_output=True, draft=fields)
        except serving_process.ServingProcessError as exc:
            raise SystemExit(
                f"error: the int8 model could not be evaluated as served: {exc}"
            ) from exc


# --------------------------------------------------------------------------------------------
# Publish: the plots, then models/<version>/ and latest at each destination
# --------------------------------------------------------------------------------------------
def plot(
    trained: Trained,
    exported: Export,
    recipe: Recipe,
    data: Data,
    int8: dict[str, Any],
    clock: Stopwatch,
) -> None:
    """Training curves, confusion matrix, examples and the augmentation, into the run folder."""
    from training import plots  # matplotlib: only the training audience installs it

    start = time.monotonic()
    run_dir = exported.run_dir
    plots.training_curves(trained.history, run_dir / "training_curves.png", title=exported.version)
    confusion, predictions = np.asarray(int8["confusion"]), np.asarray(int8["predictions"])
    plots.confusion_matrix(confusion, data.class_names, run_dir / "confusion_matrix.png")
    plots.examples(
        data.x_test, data.y_test, predictions, data.class_names, run_dir / "examples.png"
    )
    if recipe.augment == "rotate-zoom-flip":
        augment, title = report_augmenter(), "rotation, zoom, flip (report)"
    else:
        sample, epoch = Augmenter(recipe, data.x_train[:8], None), iter(range(1, 1000))
        augment = lambda _: sample.epoch(next(epoch))  # noqa: E731
        title = f"{recipe.flip} flip + {recipe.translate_px}px translate"
    plots.augmentations(data.x_train[:8], augment, run_dir / "augmentations.png", title)
    if "calibration" in int8:
        plots.reliability(int8["calibration"], run_dir / "reliability.png")
        plots.risk_coverage(int8["calibration"], run_dir / "risk_coverage.png")
    clock.lap("plots", start)


def publish_to(run_dir: Path, destinations: list[str], clock: Stopwatch) -> None:
    """Publish to each destination: models/<version>/ first, verified, latest last."""
    start = time.monotonic()
    for destination in destinations:
        try:
            said = serving_process.publish(run_dir, destination)
        except serving_process.ServingProcessError as exc:
            raise SystemExit(f"error: {run_dir} was not published to {destination}: {exc}") from exc
        log("publish", said)
    clock.lap("publish", start)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def options(argv: list[str] | None = None) -> tuple[argparse.Namespace, Recipe]:
    """The command line and the recipe it makes (research/ablate.py and tests use it too)."""
    args = cli.parse_args(RECIPES, argv)
    return args, cli.configure(args, RECIPES)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, recipe = options(argv)
    clock = Stopwatch()

    data = prepare(args, recipe, clock)
    if not args.resume and not args.keras_model:
        recipe = adapt(recipe, data)
    run_dir, stamp = provenance.start_run(args, recipe)
    if args.keras_model:
        trained = load(args.keras_model, recipe, clock)
    else:
        trained = train(build(recipe, data, clock), recipe, data, run_dir, clock)
    exported = quantise(trained, recipe, data, run_dir, stamp, clock)
    fields, metrics, int8 = evaluate(trained, exported, recipe, data, clock)
    plot(trained, exported, recipe, data, int8, clock)

    # The sum of the stages: a re-export counts the training time of the run it came from.
    total = sum(clock.seconds.values())
    metrics["wall_minutes"] = round(total / 60, 2)
    (exported.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    manifest = provenance.write_manifest(
        exported.run_dir, {**fields, "metrics": metrics, "stage_seconds": clock.seconds}
    )
    publish_to(exported.run_dir, args.upload, clock)
    log("done", f"{exported.version} in {total / 60:.1f} min -> {exported.run_dir}")
    return manifest


if __name__ == "__main__":
    main()
