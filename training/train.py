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
from classifier import manifest as mf
from classifier.core import sha256_hex

from training import cli, network, provenance, serving_process
from training import corrections as fixes
from training import data as cifar
from training.augmentation import Augmenter, report_augmenter
from training.fit import compile_model, fit_model
from training.photos import photo_versions
from training.progress import Stopwatch, log
from training.publish import publish
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
# Hyper-parameters. Two recipes: ours ("default", airbench94's techniques) and the report's.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    architecture: str  # "airbench" (ours) or "report-cnn"
    widths: tuple[int, ...] = (64, 256, 256)  # channels of the three blocks (two convs each)
    activation: str = "gelu"
    epochs: int = 12  # passes over the training images
    batch_size: int = 1024  # images per step
    precision: str = "auto"  # "float32", "mixed_bfloat16", or "auto" (bf16 where the CPU has it)
    optimizer: str = "sgd"  # "sgd" (Nesterov, airbench's parametrisation) or "adam"
    # SGD in airbench's parametrisation: learning rate and weight decay per 1,024 examples,
    # decoupled from the momentum (changing one does not retune the others).
    learning_rate: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_lr_scale: float = 64.0  # BatchNorm biases learn this much faster (not decayed faster)
    warmup_fraction: float = 0.23  # share of steps rising linearly from lr_start to the peak
    lr_start: float = 0.2  # as a fraction of the peak
    lr_end: float = 0.07  # as a fraction of the peak, reached linearly at the last step
    label_smoothing: float = 0.2
    # Lookahead: every `lookahead_every` steps the weights move to an exponential average of
    # themselves, with a decay rising as lookahead_decay * (step / total) ** lookahead_power.
    lookahead_every: int = 5  # 0: off
    lookahead_decay: float = 0.95**5
    lookahead_power: float = 3.0
    batchnorm_momentum: float = 0.6  # fast: the statistics follow the lookahead's jumps
    batchnorm_epsilon: float = 1e-12
    logit_scale: float = 1 / 9  # the head's output is multiplied by this
    whiten_size: int = 2  # first layer: frozen 2x2 PCA-whitening filters (+ and - each)
    whiten_epsilon: float = 5e-4  # added to the patch covariance's eigenvalues
    whiten_sample: int = 5000  # training images the whitening filters are computed from
    whiten_bias_epochs: int = 3  # its bias trains this many epochs, then is frozen
    dirac_init: bool = True  # convolutions start as identity on their first input channels
    flip: str = "alternating"  # "alternating" (each image flipped every other epoch), "random"
    translate_px: int = 2  # max random shift (reflect padding)
    photo_fraction: float = 0.0  # share of images shown as a photo would reach the model
    augment: str = "flip-translate"  # "flip-translate" or "rotate-zoom-flip" (report)
    dense_units: int = 128  # report-cnn's hidden layer
    head_dropout: float = 0.5  # report-cnn's dropout before the output
    dropout: float = 0.0  # report-cnn's dropout after each block
    validation_fraction: float = 0.1  # of the training images, held out for choices
    early_stopping_patience: int | None = None  # None: train every epoch, keep the last
    time_budget_minutes: float | None = None  # stop training after this much wall time
    calibration_images: int = 500  # training images used to calibrate int8 ranges
    # Test-time views averaged at inference ("none", "mirror", "mirror-translate": six views
    # in one batched invoke) or "auto": the most views that do not lower validation accuracy.
    tta: str = "auto"
    confident_accuracy: float = 0.975  # the doubt threshold keeps this accuracy on validation
    image_size: int = 32  # the model's input side, in pixels (32 or 64)
    # Start from a published model's float weights with a new head ("auto": when the smallest
    # label has fewer than init_auto_below training images, the repository's published model).
    init_from: str | None = "auto"
    init_auto_below: int = 300
    fine_tune_lr_scale: float = 0.25  # fine-tuning takes smaller steps from trained weights
    min_batches_per_epoch: int = 8  # small sets: the batch shrinks (to 16 at least) to take these
    max_int8_loss: float = 0.05  # an int8 model this far below its float model is not published
    corrections_repeat: int = 8  # each reviewer's correction is shown this many times an epoch
    # Refining the served model on corrections (same head) takes far smaller steps than
    # adapting it to new labels: at fine_tune_lr_scale a 3-epoch run lost 8 points of validation
    # accuracy in its first epoch (docs/feedback.md).
    corrections_lr_scale: float = 0.05
    # Refining on corrections, the base images' targets blend in the served model's own answers
    # at this weight, so it keeps answering clean images as it did (docs/feedback.md).
    corrections_distill: float = 0.5
    # Refining on corrections, BatchNorm keeps the served model's statistics (inference mode):
    # a few hundred shifted images shown 8 times an epoch would otherwise move the statistics
    # every clean image is normalised with.
    corrections_freeze_batchnorm: bool = False
    # Outlier exposure (Hendrycks et al., 2019): this many made-up outliers per training image
    # (training/outliers.py, never an evaluated kind) join the batches with a uniform target, so
    # pictures of none of the categories get weak outputs and a high novelty score.
    outlier_fraction: float = 0.0
    # Distillation (training/teachers.py): published models, comma-separated versions (or
    # "<seed>:<version>", for that seed's run only), whose served answers blend into the labels
    # at teacher_weight. Their training is not this run's.
    teachers: str = ""
    teacher_weight: float = 0.5
    seed: int = 0


# Runs without teachers smooth their labels as the field's default does (airbench's); a
# teacher's answers soften them instead.
LABEL_SMOOTHING_WITHOUT_TEACHERS = Recipe.label_smoothing

RECIPES = {
    "default": Recipe(
        name="default",
        description=(
            "airbench94's techniques in Keras (Keller Jordan) at airbench95's width and length: "
            "frozen 2x2 PCA-whitening first layer, three blocks of two GELU convolutions "
            "(128/384/384) with dirac init and fast "
            "BatchNorm without scale, logits scaled by 1/9; Nesterov SGD in decoupled per-1024 "
            "units with 64x learning rate on BatchNorm biases, lookahead; soft targets from the "
            "published wide model of the same seed (distillation; label smoothing 0.2 where no "
            "teacher applies), "
            "alternating flip and 2 px translation, a quarter of the images as photos arrive; "
            "six test-time views; 10% held out for validation, temperature and doubt threshold "
            "fitted on it."
        ),
        architecture="airbench",
        # airbench95's width, learning rate and epochs, chosen on validation (docs/training.md)
        widths=(128, 384, 384),
        learning_rate=10.0,
        epochs=15,
        photo_fraction=0.25,  # chosen on validation (docs/training.md); every seed trained so
        # Distillation, chosen on validation (docs/training.md): each seed learns from the
        # published wide model of its own seed (the one that held out its split), in place of
        # label smoothing. Other seeds, data or labels: no teacher, labels smoothed by 0.2.
        teachers=("0:20261204-210408-default-b32d4c78,1:20261204-220138-default-874e1624"),
        teacher_weight=1.0,
        label_smoothing=0.0,
    ),
    "report": Recipe(
        name="report",
        description=(
            "The original report's recipe: ~350K-parameter CNN (conv+ReLU+max-pool+dropout+dense), "
            "rotation/zoom/flip augmentation, Adam, categorical cross-entropy on one-hot labels, "
            "20% validation split, EarlyStopping(val_loss, patience 10, restore_best_weights)."
        ),
        architecture="report-cnn",
        widths=(32, 64, 128),
        activation="relu",
        epochs=51,
        batch_size=64,
        precision="float32",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        lookahead_every=0,
        augment="rotate-zoom-flip",
        flip="random",
        validation_fraction=0.2,
        early_stopping_patience=10,
        dropout=0.25,
        tta="none",
        init_from=None,
    ),
}


# --------------------------------------------------------------------------------------------
# What the stages hand each other
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    """The splits a run uses, and what identifies the data set in a manifest."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    name: str  # the data set's name, never this machine's path
    fingerprint: str
    limit: int | None
    split: str = "given"  # how the test split came about
    skipped: int = 0  # files that did not decode
    corrections: fixes.Corrections | None = None  # reviewers' labels (--corrections)
    base_train: int | None = None  # with corrections: the first this many are the data set's


@dataclass
class Trained:
    model: Any
    history: dict[str, list[float]]
    resumed_from: Path | None = None


@dataclass
class Export:
    run_dir: Path
    version: str
    stamp: datetime
    tflite: bytes
    served: Any  # the float model as served (with flip averaging when chosen)
    inference: dict[str, Any]
    sizes: dict[str, float]


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
    data = Data(
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
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
        log(
            "prepare",
            f"skipped {len(dataset.skipped)} file(s) that do not decode: {shown}",
        )
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
    Labels are smoothed as without a teacher then."""
    from training.teachers import applicable

    split = (recipe.seed, recipe.validation_fraction, len(data.x_train), len(data.x_val))
    why = applicable(recipe.teachers, data.class_names, recipe.image_size, data.fingerprint, split)
    if init_from or data.corrections is not None:
        why = "the run refines a published model or learns corrections"
    if why is None:
        return {}
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
    history = json.loads((path.parent / "history.json").read_text())
    earlier = json.loads((path.parent / mf.MANIFEST_NAME).read_text())
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
    network.save_weights_and_graph(trained.model, run_dir / mf.FLOAT_MODEL_NAME)
    trained.model.save(run_dir / "model.h5")
    (run_dir / "history.json").write_text(json.dumps(trained.history, indent=1) + "\n")
    inference = choose_inference(trained.model, recipe, data.x_val, data.y_val)
    calibration = cifar.subsample(data.x_train, data.y_train, recipe.calibration_images)[0]
    tflite = to_int8(with_features(equalised(trained.model)), calibration)
    (run_dir / mf.MODEL_NAME).write_bytes(tflite)
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
# Evaluate: float here, int8 as served in a TensorFlow-free process (training/evaluate.py),
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
    provenance.write_manifest(exported.run_dir, fields)  # provisional: evaluate.py reads it
    int8 = evaluate_int8(exported.run_dir, recipe, data)
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


def evaluate_int8(run_dir: Path, recipe: Recipe, data: Data) -> dict[str, Any]:
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
            return serving_process.evaluate(run_dir / mf.MANIFEST_NAME, *args, show_output=True)
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
        keys = publish(run_dir, destination)
        log("publish", f"{len(keys)} files to {destination} (latest last)")
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
    check_int8(metrics, recipe.max_int8_loss, len(data.y_test), exported.run_dir)
    publish_to(exported.run_dir, args.upload, clock)
    log("done", f"{exported.version} in {total / 60:.1f} min -> {exported.run_dir}")
    return manifest


def check_int8(metrics: dict[str, Any], max_loss: float, test_images: int, run_dir: Path) -> None:
    """Refuse to publish an int8 model that lost more than ``max_loss`` on its float model: a
    broken quantisation must not reach users (on a small test split a few images are noise)."""
    lost = -metrics["int8_minus_float"]
    if lost > max(max_loss, 3 / max(1, test_images)):
        raise SystemExit(
            f"error: the int8 model scores {metrics['int8_test_accuracy']:.2%}, "
            f"{lost * 100:.1f} points below the float model's "
            f"{metrics['float_test_accuracy']:.2%} (at most {max_loss * 100:g} "
            f"allowed); not published. Both are in {run_dir}"
        )


if __name__ == "__main__":
    main()
