"""Train an image classifier, quantise it to int8 TFLite, evaluate and calibrate it, publish it.

    python -m training.train --data ../shared/datasets/cifar10-jpeg [--recipe default|report]
                             [--out runs/] [--upload s3://bucket/prefix | ./models]

CIFAR-10 by default, or your own ``<label>/`` folders. Read top to bottom: the recipe, then one
function per stage under its banner, in execution order, each with its helpers: ``prepare`` ->
``build`` -> ``train`` -> ``quantise`` -> ``evaluate`` -> ``plot`` and ``publish_to``. Each
stage prints one line under its own name; the run folder collects the model files,
manifest.json, metrics.json and plots.

The int8 model is evaluated by ``training.evaluate`` in a separate process, with the serving
code's preprocessing and TFLite runtime: tflite-runtime cannot run in a process that has
imported TensorFlow, and this way the number we report is the number the Lambdas would give.
The same process fits the temperature and the doubt threshold on the validation images.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from classifier import manifest as mf
from classifier.core import (
    TTA_VIEWS,
    Quantization,
    combine_views,
    sha256_hex,
    tta_views,
)

from training import corrections as fixes
from training import data as cifar
from training import machine
from training.publish import in_serving_process, publish
from training.tensorflow_quiet import import_tensorflow, native_output_captured

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Hyper-parameters. Two recipes: ours ("default", airbench94's techniques) and the report's.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    architecture: str  # "airbench" (ours) or "report-cnn"
    widths: tuple[int, ...] = (
        64,
        256,
        256,
    )  # channels of the three blocks (two convs each)
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
    # Outlier exposure (Hendrycks et al., 2019): this many made-up outliers per training image
    # (training/outliers.py, never an evaluated kind) join the batches with a uniform target, so
    # pictures of none of the categories get weak outputs and a high novelty score.
    outlier_fraction: float = 0.0
    seed: int = 0


RECIPES = {
    "default": Recipe(
        name="default",
        description=(
            "airbench94's techniques in Keras (Keller Jordan): frozen 2x2 PCA-whitening first "
            "layer, three blocks of two GELU convolutions (64/256/256) with dirac init and fast "
            "BatchNorm without scale, logits scaled by 1/9; Nesterov SGD in decoupled per-1024 "
            "units with 64x learning rate on BatchNorm biases, lookahead; label smoothing 0.2, "
            "alternating flip and 2 px translation, a quarter of the images as photos arrive; "
            "six test-time views; 10% held out for validation, temperature and doubt threshold "
            "fitted on it."
        ),
        architecture="airbench",
        photo_fraction=0.25,  # chosen on validation (docs/training.md); both seeds trained so
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
# What the stages hand each other, and their log line
# --------------------------------------------------------------------------------------------
@dataclass
class Stopwatch:
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str, start: float) -> float:
        self.seconds[stage] = round(time.monotonic() - start, 2)
        return self.seconds[stage]


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


def log(stage: str, message: str) -> None:
    print(f"[{stage:>8}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Prepare: the data, its splits, the run folder, the photo versions and the augmentation
# --------------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, recipe: Recipe, clock: Stopwatch) -> Data:
    """Load (or decode) the data set and split off the recipe's validation images."""
    start = time.monotonic()
    try:
        dataset, cached = cifar.load(args.data, use_cache=not args.no_cache, size=recipe.image_size)
    except cifar.DataError as exc:
        raise SystemExit(f"error: {exc}") from exc
    x_all, y_all = subsample(dataset.x_train, dataset.y_train, args.limit)
    x_test, y_test = subsample(dataset.x_test, dataset.y_test, args.limit)
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
    data.x_train = np.concatenate([data.x_train, *[found.x[train]] * repeat])
    data.y_train = np.concatenate([data.y_train, *[found.y[train]] * repeat])
    data.corrections = found
    log(
        "prepare",
        f"corrections from {source}: {int(train.sum())} trained on (x{repeat}), "
        f"{int((~train).sum())} held out for the gate, {len(found.none_ids)} 'none of these' "
        f"(for the doubt threshold), {found.skipped} unreadable",
    )


def subsample(x: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a class-balanced shuffle (quick runs and tests)."""
    if not n or n >= len(x):
        return x, y
    order = np.random.default_rng(0).permutation(len(x))[:n]
    return x[order], y[order]


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
        smallest = int(np.bincount(data.y_train, minlength=len(data.class_names)).min())
        source = compatible_published_model(recipe)
        # Corrections refine the served model: start from it (a new model would forget it).
        small = smallest < recipe.init_auto_below or data.corrections is not None
        changes["init_from"] = source if small else None
    if changes.get("init_from", recipe.init_from):
        scale = (
            recipe.fine_tune_lr_scale if data.corrections is None else recipe.corrections_lr_scale
        )
        changes["learning_rate"] = recipe.learning_rate * scale
        changes["whiten_bias_epochs"] = 0  # the published whitening bias is kept as trained
    return replace(recipe, **changes)


def compatible_published_model(recipe: Recipe) -> str | None:
    """The repository's published model, if its float weights fit this recipe's network."""
    latest = ROOT / "models" / mf.LATEST / mf.MANIFEST_NAME
    if not latest.is_file():
        return None
    manifest = json.loads(latest.read_text())
    folder = (latest.parent / manifest["model_path"]).resolve().parent
    trained = manifest.get("recipe", {})
    fits = (
        trained.get("architecture") == recipe.architecture
        and tuple(trained.get("widths", ())) == recipe.widths
        and (folder / mf.FLOAT_MODEL_NAME).is_file()
    )
    return str(folder.relative_to(ROOT)) if fits else None


def start_run(args: argparse.Namespace, recipe: Recipe) -> tuple[Path, datetime]:
    """The run folder: new, or (``--resume``) one whose training was interrupted."""
    if args.resume:
        run_dir = Path(args.resume)
        stamp = datetime.fromisoformat(json.loads((run_dir / "run.json").read_text())["started"])
        log("prepare", f"resuming {run_dir} from its last finished epoch")
        return run_dir, stamp
    stamp = datetime.now(UTC)
    run_dir = Path(args.out) / f"{stamp:%Y%m%d-%H%M%S}-{recipe.name}-seed{recipe.seed}"
    run_dir.mkdir(parents=True, exist_ok=False)
    # The code that trains is the code as it starts: later edits do not change this run.
    started = {
        "started": stamp.isoformat(),
        "recipe": asdict(recipe),
        "argv": sys.argv[1:],
        "code_version": code_version(),
    }
    (run_dir / "run.json").write_text(json.dumps(started, indent=1) + "\n")
    return run_dir, stamp


def whitening_kernel(x: np.ndarray, size: int, eps: float) -> np.ndarray:
    """size x size PCA-whitening filters (+ and - of each eigenvector) from normalised patches."""
    height, width = x.shape[1] - size + 1, x.shape[2] - size + 1
    # Every size x size patch, flattened in Keras's kernel order (dy, dx, channel).
    shifted = [
        x[:, dy : dy + height, dx : dx + width, :] for dy in range(size) for dx in range(size)
    ]
    patches = np.stack(shifted, axis=3).reshape(-1, size * size * x.shape[-1]).astype(np.float64)
    cov = np.cov(patches, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = eigenvectors / np.sqrt(eigenvalues + eps)  # columns are whitening filters
    filters = np.concatenate([filters, -filters], axis=1)  # keep both signs through the GELU
    return filters.reshape(size, size, x.shape[-1], -1).astype(np.float32)


def _as_photo(args: tuple[np.ndarray, int]) -> np.ndarray:
    """One image as a photo reaches the model: enlarged, JPEG-compressed, then brought back to
    the input size by the serving code's own decoding and reduction."""
    import io

    from classifier.core import image_to_array
    from PIL import Image

    image, seed = args
    rng = np.random.default_rng(seed)
    side = int(rng.choice((64, 96, 128, 224, 320)))
    big = Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=int(rng.integers(60, 96)))
    return image_to_array(buffer.getvalue(), size=image.shape[0])


def photo_versions(x: np.ndarray, seed: int) -> np.ndarray:
    """Every training image once as a photo would arrive (computed once, in parallel)."""
    jobs = [(image, seed * 1_000_003 + i) for i, image in enumerate(x)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(_as_photo, jobs, chunksize=500)))


class Augmenter:
    """The training images of one epoch: flipped (alternating or random), translated, and, for
    a share of them, their photo version. uint8 in, uint8 out; NumPy only, so it is cheap."""

    def __init__(self, recipe: Recipe, x: np.ndarray, photos: np.ndarray | None) -> None:
        self.recipe, self.x, self.photos = recipe, x, photos
        self.rng = np.random.default_rng(recipe.seed)
        # Alternating flip: a random half starts mirrored, then every image flips each epoch.
        self.first_flip = self.rng.random(len(x)) < 0.5

    def epoch(self, epoch: int) -> np.ndarray:
        recipe, rng = self.recipe, self.rng
        images = self.x
        if self.photos is not None and recipe.photo_fraction > 0:
            use = rng.random(len(images)) < recipe.photo_fraction
            images = np.where(use[:, None, None, None], self.photos, images)
        if recipe.flip == "alternating":
            flip = self.first_flip ^ bool(epoch % 2)
        elif recipe.flip == "random":
            flip = rng.random(len(images)) < 0.5
        else:
            flip = np.zeros(len(images), bool)
        images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        return translate(images, recipe.translate_px, rng)


def translate(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by up to ``pad`` pixels each way (reflect padding)."""
    if pad <= 0:
        return images
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    shifts = rng.integers(0, 2 * pad + 1, size=(len(images), 2))
    out = np.empty_like(images)
    for dy in range(2 * pad + 1):  # one slice per shift: (2 pad + 1)^2 vectorised copies
        for dx in range(2 * pad + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[chosen] = padded[chosen, dy : dy + size, dx : dx + size]
    return out


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

    precision = choose_precision(recipe)
    keras.mixed_precision.set_global_policy(precision)
    model = build_model(recipe, data.x_train, len(data.class_names))
    start_from = "random weights"
    if recipe.init_from:
        kept = transfer_weights(model, published_float_model(recipe.init_from), data.class_names)
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


def choose_precision(recipe: Recipe) -> str:
    """bfloat16 where the CPU has AMX (twice float32's images/s there); with AVX-512 BF16 alone
    it was no faster than float32, and elsewhere it is emulated and slower
    (docs/measurements.md)."""
    if recipe.precision != "auto":
        return recipe.precision
    return "mixed_bfloat16" if "amx_bf16" in machine.cpu_flags() else "float32"


def custom_layers() -> dict[str, Any]:
    """The airbench net's two small layers, registered so model.keras loads anywhere."""
    import keras

    @keras.saving.register_keras_serializable(package="classifier")
    class ScaledBias(keras.layers.Layer):
        """A per-channel bias stored divided by ``scale``: plain SGD then moves it ``scale**2``
        times faster than other weights (airbench's higher learning rate for BatchNorm biases)
        with one optimizer, and weight decay shrinks it at the same rate as the rest."""

        def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.scale = scale

        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

        def call(self, x: Any) -> Any:
            return x + keras.ops.cast(self.bias * self.scale, x.dtype)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "scale": self.scale}

    @keras.saving.register_keras_serializable(package="classifier")
    class GatedBias(keras.layers.Layer):
        """A bias whose gradient is cut once ``open`` is set to 0 (the whitening layer's bias
        trains for the first epochs only, without recompiling the model)."""

        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")
            self.open = self.add_weight(shape=(), initializer="ones", trainable=False, name="open")

        def call(self, x: Any) -> Any:
            gate = keras.ops.cast(self.open, self.bias.dtype)
            bias = gate * self.bias + (1 - gate) * keras.ops.stop_gradient(self.bias)
            return x + keras.ops.cast(bias, x.dtype)

    return {"ScaledBias": ScaledBias, "GatedBias": GatedBias}


def build_model(recipe: Recipe, x_train: np.ndarray, n_classes: int) -> Any:
    """The Keras model: RGB pixels in 0..255 in (it normalises them itself), logits out."""
    import keras
    from keras import layers

    mean = x_train.reshape(-1, 3).mean(axis=0)
    var = x_train.reshape(-1, 3).var(axis=0)
    inputs = keras.Input(x_train.shape[1:], name="pixels")
    x = layers.Normalization(mean=mean, variance=var, name="normalise")(inputs)
    if recipe.architecture == "report-cnn":
        return report_cnn(recipe, inputs, x, n_classes)

    extra = custom_layers()
    rng = np.random.default_rng(recipe.seed)
    sample = x_train[rng.choice(len(x_train), min(recipe.whiten_sample, len(x_train)), False)]
    kernel = whitening_kernel(
        (sample - mean) / np.sqrt(var), recipe.whiten_size, recipe.whiten_epsilon
    )
    whiten = layers.Conv2D(
        kernel.shape[-1],
        recipe.whiten_size,
        use_bias=False,
        trainable=False,
        name="whiten",
    )
    x = extra["GatedBias"](name="whiten_bias")(whiten(x))
    x = layers.Activation(recipe.activation)(x)
    sqrt_bias_scale = math.sqrt(recipe.bias_lr_scale)

    def conv_norm(x: Any, width: int, pool: bool) -> Any:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        if pool:
            x = layers.MaxPooling2D()(x)
        x = layers.BatchNormalization(
            momentum=recipe.batchnorm_momentum,
            epsilon=recipe.batchnorm_epsilon,
            center=False,
            scale=False,
        )(x)
        x = extra["ScaledBias"](sqrt_bias_scale)(x)
        return layers.Activation(recipe.activation)(x)

    for width in recipe.widths:
        x = conv_norm(x, width, pool=True)
        x = conv_norm(x, width, pool=False)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(n_classes, use_bias=False, name="head")(x)
    outputs = layers.Rescaling(recipe.logit_scale, name="logits", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="airbench")
    whiten.set_weights([kernel])
    initialise(model, recipe)
    return model


def initialise(model: Any, recipe: Recipe) -> None:
    """PyTorch's default initialisation (uniform within 1/sqrt(fan-in)), which airbench's
    learning rates were tuned with; convolutions start as identity on their first inputs."""
    rng = np.random.default_rng(recipe.seed)
    for layer in model.layers:
        if layer.name == "whiten" or layer.__class__.__name__ not in (
            "Conv2D",
            "Dense",
        ):
            continue
        kernel = layer.get_weights()[0]
        fan_in = int(np.prod(kernel.shape[:-1]))
        bound = 1 / math.sqrt(fan_in)
        kernel = rng.uniform(-bound, bound, kernel.shape).astype(np.float32)
        if recipe.dirac_init and kernel.ndim == 4:
            k, c_in, c_out = kernel.shape[0], kernel.shape[2], kernel.shape[3]
            n = min(c_in, c_out)
            kernel[:, :, :, :n] = 0
            kernel[k // 2, k // 2, np.arange(n), np.arange(n)] = 1
        layer.set_weights([kernel])


def published_float_model(location: str) -> Path:
    """model.keras of a published model folder (models/<version>/ or a run folder), or of the
    model ``models/latest`` points at."""
    folder = Path(location).expanduser()
    if (folder / mf.MANIFEST_NAME).is_file() and not (folder / mf.FLOAT_MODEL_NAME).is_file():
        manifest = json.loads((folder / mf.MANIFEST_NAME).read_text())
        folder = (folder / manifest["model_path"]).resolve().parent  # latest -> its version
    path = folder / mf.FLOAT_MODEL_NAME
    if not path.is_file():
        raise SystemExit(
            f"error: --init-from {location}: no {mf.FLOAT_MODEL_NAME} there (models published "
            "since the float weights are kept have one)"
        )
    return path


def transfer_weights(model: Any, source_path: Path, class_names: tuple[str, ...] = ()) -> bool:
    """Copy every layer's weights from a trained model of the same architecture (input size and
    head may differ: convolutions do not depend on them); the head too when the source answers
    with the same labels in the same order (fine-tuning on corrections). True if it did."""
    import keras

    custom_layers()
    source = keras.models.load_model(source_path, compile=False)
    manifest = source_path.parent / mf.MANIFEST_NAME
    same_labels = (
        bool(class_names)
        and manifest.is_file()
        and (json.loads(manifest.read_text()).get("class_names") == list(class_names))
    )
    skip = () if same_labels else ("head",)
    ours = [layer for layer in model.layers if layer.weights and layer.name not in skip]
    theirs = [layer for layer in source.layers if layer.weights and layer.name not in skip]
    shapes = [[w.shape for w in layer.get_weights()] for layer in ours]
    if shapes != [[w.shape for w in layer.get_weights()] for layer in theirs]:
        raise SystemExit(
            f"error: --init-from {source_path.parent}: its network differs from this recipe's "
            "(widths, architecture); fine-tune with the recipe it was trained with"
        )
    for mine, trained in zip(ours, theirs):
        mine.set_weights(trained.get_weights())
    return same_labels


def report_cnn(recipe: Recipe, inputs: Any, x: Any, n_classes: int) -> Any:
    """The original report's network (it ends in a softmax)."""
    import keras
    from keras import layers

    for width in recipe.widths:
        x = layers.Conv2D(width, 3, padding="same", activation=recipe.activation)(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(recipe.dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(recipe.dense_units, activation=recipe.activation)(x)
    x = layers.Dropout(recipe.head_dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="report_cnn")


def outputs_logits(model: Any) -> bool:
    return bool(model.layers[-1].name == "logits")


def compile_model(model: Any, recipe: Recipe, steps_per_epoch: int) -> None:
    import keras

    if recipe.optimizer == "adam":
        optimizer: Any = keras.optimizers.Adam(learning_rate=recipe.learning_rate)
    else:
        # airbench's units to Keras's: a mean (not summed) loss and decoupled weight decay.
        # Nesterov steps are (1 + 1/(1 - momentum)) times the gradient in the long run.
        kilostep = 1024 * (1 + 1 / (1 - recipe.momentum))
        peak = recipe.learning_rate * recipe.batch_size / kilostep
        optimizer = keras.optimizers.SGD(
            learning_rate=LinearWarmupDown(
                peak,
                recipe.epochs * steps_per_epoch,
                recipe.warmup_fraction,
                recipe.lr_start,
                recipe.lr_end,
            ),
            momentum=recipe.momentum,
            nesterov=True,
            weight_decay=recipe.weight_decay * kilostep / (1024 * recipe.learning_rate),
        )
    logits = outputs_logits(model)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=logits, label_smoothing=recipe.label_smoothing
        ),
        metrics=["accuracy"],
    )


def LinearWarmupDown(peak: float, total: int, warmup: float, start: float, end: float) -> Any:
    """Linear from start*peak to peak over the warm-up, then linear down to end*peak."""
    import keras

    @keras.saving.register_keras_serializable(package="classifier")
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step: Any) -> Any:
            ops = keras.ops
            step = ops.cast(step, "float32")
            up = max(1, int(total * warmup))
            rise = start + (1 - start) * step / up
            fall = 1 - (1 - end) * (step - up) / max(1, total - up)
            return peak * ops.where(step < up, rise, ops.maximum(fall, end))

        def get_config(self) -> dict[str, Any]:
            return {}

    return Schedule()


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
        model = build_model(recipe, data.x_train, len(data.class_names))
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
    import keras

    model = keras.models.load_model(path)
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


def fit_model(
    model: Any,
    recipe: Recipe,
    data: Data,
    photos: np.ndarray | None,
    backup: Path | None,
) -> tuple[dict[str, list[float]], float]:
    """model.fit over the recipe's epochs; resumable from ``backup`` (Keras BackupAndRestore).
    Returns the history of every epoch, earlier sessions' too, and those sessions' seconds."""
    import keras

    val = (
        data.x_val.astype(np.float32),
        np.eye(len(data.class_names), dtype=np.float32)[data.y_val],
    )
    callbacks: list[Any] = []
    if recipe.architecture == "report-cnn":
        train_data = report_batches(recipe, data.x_train, data.y_train)
        steps = -(-len(data.x_train) // recipe.batch_size)
    else:
        train_data = batches(recipe, data.x_train, data.y_train, photos)
        steps = len(train_data)
        callbacks.append(freeze_whiten_bias(recipe))
        if recipe.lookahead_every:
            callbacks.append(lookahead(recipe, recipe.epochs * steps))
    if recipe.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=recipe.early_stopping_patience,
                restore_best_weights=True,
                verbose=1,
            )
        )
    if recipe.time_budget_minutes:
        callbacks.append(time_budget(recipe.time_budget_minutes))
    epoch_log = None
    if backup is not None:
        # A session stopped while the backup is written must not lose the run: keep the
        # previous epoch's backup too where Keras can (3.10+); the log line follows the backup.
        double = (
            "double_checkpoint" in inspect.signature(keras.callbacks.BackupAndRestore).parameters
        )
        callbacks.append(
            keras.callbacks.BackupAndRestore(
                str(backup), **({"double_checkpoint": True} if double else {})
            )
        )  # gone once trained
        epoch_log = EpochLog(backup.parent / EPOCH_LOG)
        callbacks.append(epoch_log)
    history = model.fit(
        train_data,
        validation_data=val,
        validation_batch_size=1000,
        epochs=recipe.epochs,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if epoch_log is None:
        return {k: [float(v) for v in vs] for k, vs in history.history.items()}, 0.0
    rows = epoch_log.rows()
    earlier = sum(r["seconds"] for r in rows if r["epoch"] not in epoch_log.written)
    return {k: [r[k] for r in rows] for k in history.history}, earlier


EPOCH_LOG = "epochs.jsonl"


def EpochLog(path: Path) -> Any:
    """One JSON line per finished epoch in the run folder (metrics and seconds), so a run resumed
    in a later session still reports every epoch and its whole training time."""
    import keras

    class Log(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.written: set[int] = set()  # epochs finished in this session

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            row = {"epoch": epoch, "seconds": round(time.monotonic() - self.started, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            with path.open("a") as out:
                out.write(json.dumps(row) + "\n")
            self.written.add(epoch)

        def rows(self) -> list[dict[str, float]]:
            """Each epoch once (a rerun epoch's last line wins), in order."""
            by_epoch = {}
            for line in path.read_text().splitlines():
                row = json.loads(line)
                by_epoch[row["epoch"]] = row
            return [by_epoch[e] for e in sorted(by_epoch)]

    return Log()


def batches(recipe: Recipe, x: np.ndarray, y: np.ndarray, photos: np.ndarray | None) -> Any:
    """The training batches: each epoch's augmented images in a fresh random order."""
    import keras

    n_classes = int(y.max()) + 1
    one_hot = np.eye(n_classes, dtype=np.float32)[y]
    augmenter = Augmenter(recipe, x, photos)
    outliers = None
    if recipe.outlier_fraction > 0:
        from training.outliers import training_outliers

        count = max(1, int(len(x) * recipe.outlier_fraction))
        outliers = training_outliers(count, recipe.seed, x, x.shape[1])
        log("build", f"outlier exposure: {count} made-up outliers, uniform targets")
    per_batch = round(recipe.batch_size * recipe.outlier_fraction)
    uniform = np.full((per_batch, n_classes), 1 / n_classes, np.float32)

    class EpochBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-len(x) // recipe.batch_size)

        def on_epoch_end(self) -> None:
            self.images = augmenter.epoch(self.epoch)
            self.order = augmenter.rng.permutation(len(x))
            self.epoch += 1

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            chosen = self.order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            images, targets = self.images[chosen], one_hot[chosen]
            if outliers is not None and per_batch:
                extra = augmenter.rng.choice(
                    len(outliers), per_batch, replace=len(outliers) < per_batch
                )
                images = np.concatenate([images, outliers[extra]])
                targets = np.concatenate([targets, uniform])
            return images.astype(np.float32), targets

    return EpochBatches()


def report_augmenter() -> Any:
    """The report's rotation, zoom and flip (Keras layers), for its recipe and its plot."""
    import keras

    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(0.1, fill_mode="reflect"),
            keras.layers.RandomZoom(0.1, fill_mode="reflect"),
            keras.layers.RandomFlip("horizontal"),
        ],
        name="augment",
    )
    return lambda images: layers(images, training=True)


def report_batches(recipe: Recipe, x: np.ndarray, y: np.ndarray) -> Any:
    import tensorflow as tf

    augment = report_augmenter()
    one_hot = np.eye(int(y.max()) + 1, dtype=np.float32)
    return (
        tf.data.Dataset.from_tensor_slices((x, one_hot[y]))
        .shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
        .map(lambda a, b: (augment(tf.cast(a, tf.float32)), b), num_parallel_calls=2)
        .prefetch(2)
    )


def lookahead(recipe: Recipe, total_steps: int) -> Any:
    """Every few steps, the weights (and BatchNorm statistics) move to their running average."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.step = int(self.model.optimizer.iterations.numpy())  # resumed runs
            self.tracked = [w for w in self.model.weights if not w.path.endswith("/open")]
            self.average = [np.array(w.numpy()) for w in self.tracked]

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if self.step % recipe.lookahead_every and self.step < total_steps:
                return
            fraction = min(1.0, self.step / total_steps)
            decay = (
                1.0
                if self.step >= total_steps
                else (recipe.lookahead_decay * fraction**recipe.lookahead_power)
            )
            for w, avg in zip(self.tracked, self.average):
                avg *= decay
                avg += (1 - decay) * w.numpy()
                w.assign(avg)

    return Lookahead()


def freeze_whiten_bias(recipe: Recipe) -> Any:
    import keras

    class FreezeWhitenBias(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            gate = self.model.get_layer("whiten_bias").open
            gate.assign(1.0 if epoch < recipe.whiten_bias_epochs else 0.0)

    return FreezeWhitenBias()


def time_budget(minutes: float) -> Any:
    """A callback that stops training once ``minutes`` of wall time are spent (equal-time runs)."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if time.monotonic() - self.started > minutes * 60:
                print(f"time budget of {minutes:g} min spent after epoch {epoch + 1}")
                self.model.stop_training = True

    return TimeBudget()


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
    save_weights_and_graph(trained.model, run_dir / mf.FLOAT_MODEL_NAME)
    trained.model.save(run_dir / "model.h5")
    (run_dir / "history.json").write_text(json.dumps(trained.history, indent=1) + "\n")
    inference = choose_inference(trained.model, recipe, data.x_val, data.y_val)
    calibration = subsample(data.x_train, data.y_train, recipe.calibration_images)[0]
    tflite = to_int8(equalised(trained.model), calibration)
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


def save_weights_and_graph(model: Any, path: Path) -> None:
    """The float model as a later job starts from it: graph and weights in half precision, no
    optimizer state (4 MB instead of 16; fine-tuning casts them back to float32)."""
    import keras

    def half(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy":
                return {**value, "config": {**value["config"], "name": "float16"}}
            return {k: half(v) for k, v in value.items()}
        if isinstance(value, list):
            return [half(v) for v in value]
        return value

    plain = keras.Model.from_config(half(model.get_config()), custom_objects=custom_layers())
    plain.set_weights([w.astype(np.float16) for w in model.get_weights()])
    plain.save(path)


def predict_float(model: Any, x: np.ndarray, tta: str) -> np.ndarray:
    """The float model's outputs averaged over the test-time views, as serving averages them."""
    out = []
    for i in range(0, len(x), 1000):
        views, weights = tta_views(x[i : i + 1000], tta)
        out.append(
            combine_views(
                model.predict(views.astype(np.float32), batch_size=1000, verbose=0),
                weights,
            )
        )
    return np.concatenate(out)


def choose_inference(
    model: Any, recipe: Recipe, x_val: np.ndarray, y_val: np.ndarray
) -> dict[str, Any]:
    """The test-time views serving will average: the recipe's, or (auto) the most views whose
    validation accuracy is the best. The temperature and doubt threshold come later, fitted
    on the int8 model's own outputs."""
    tried = {
        tta: round(float((predict_float(model, x_val, tta).argmax(1) == y_val).mean()), 4)
        for tta in ((recipe.tta,) if recipe.tta != "auto" else tuple(TTA_VIEWS))
    }
    best = max(tried, key=lambda tta: (tried[tta], len(TTA_VIEWS[tta])))
    return {
        "tta": best,
        "outputs": "logits" if outputs_logits(model) else "probabilities",
        "validation_accuracy_by_tta": tried,
    }


def equalised(model: Any) -> Any:
    """The same function with each convolution's output channels scaled to unit running variance
    where a scale-free BatchNorm follows (through max-pooling, which commutes with a positive
    scale). In float nothing changes; in int8 each tensor shares one range across its channels,
    and one channel with a variance 10^9 times the others' (seen on grey digits trained from
    scratch) left the others no levels at all: the model answered the same for every image."""
    import keras

    if not any(layer.__class__.__name__ == "BatchNormalization" for layer in model.layers):
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    conv = None
    for layer in copy.layers:
        kind = layer.__class__.__name__
        if kind == "Conv2D" and layer.trainable and not layer.use_bias:
            conv = layer
        elif kind == "BatchNormalization" and conv is not None:
            kernel, mean, var = conv.kernel.numpy(), layer.moving_mean, layer.moving_variance
            if kernel.shape[-1] == var.shape[-1]:
                s = np.sqrt(var.numpy() + layer.epsilon)
                conv.kernel.assign(kernel / s)
                mean.assign(mean.numpy() / s)
                var.assign(var.numpy() / s**2)
            conv = None
    return copy


def to_int8(model: Any, calibration: np.ndarray) -> bytes:
    """Full-integer int8 TFLite: builtin int8 ops only, int8 input and output."""
    import tensorflow as tf

    def representative() -> Any:
        for image in calibration:
            yield [image[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with native_output_captured():  # the exporter's endpoint listing, the converter's settings
        return bytes(converter.convert())


def tensor_spec(details: dict[str, Any]) -> dict[str, Any]:
    """dtype and quantisation of a TFLite tensor, as the manifest records them."""
    q = Quantization.of(details)
    return {
        "dtype": q.dtype,
        "quantization": {"scale": q.scale, "zero_point": q.zero_point},
    }


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
    fields = manifest_fields(trained, exported, recipe, data)
    write_manifest(exported.run_dir, fields)  # provisional: evaluate.py needs model + manifest
    int8 = evaluate_int8(exported.run_dir, recipe, data)
    calibration = int8["calibration"]
    fields["inference"] = {
        **fields["inference"],
        "temperature": calibration["temperature"],
        "unsure_below": calibration["unsure_below"],
        "novelty": calibration["novelty"],
        "novel_above": calibration["novel_above"],
    }
    if data.corrections is not None:
        fields["corrections"] = data.corrections.summary()
    test = calibration["test"]
    metrics = {
        "float_test_accuracy": round(float_acc, 4),
        "int8_test_accuracy": int8["accuracy"],
        "int8_minus_float": round(int8["accuracy"] - float_acc, 4),
        "float_per_class": float_per_class,
        "int8_per_class": int8["per_class"],
        "validation_accuracy": exported.inference["validation_accuracy_by_tta"][tta],
        "epochs_run": len(trained.history["loss"]),
        "test_set": f"{data.name}/test ({len(data.y_test)} images)",
        "int8_runtime": int8["runtime"],
        "ece_before": test["before"]["ece"],
        "ece_after": test["after"]["ece"],
        "coverage": test["coverage"],
        "confident_accuracy": test["confident_accuracy"],
        "validation_calibration": calibration["validation"],
        "test_flagged_none_of_these": calibration["test_flagged_none_of_these"],
    }
    if "extra" in int8:
        metrics["held_out_corrections_accuracy"] = int8["extra"]["corrections"]["accuracy"]
    log(
        "evaluate",
        f"test accuracy float {float_acc:.4f}, int8 {int8['accuracy']:.4f} ({int8['runtime']}); "
        f"temperature {calibration['temperature']}: ECE {metrics['ece_before']:.3f} -> "
        f"{metrics['ece_after']:.3f}; sure of {metrics['coverage']:.1%} at "
        f"{metrics['confident_accuracy']:.2%} right, in {clock.lap('evaluate', start):.1f}s",
    )
    return fields, metrics, int8


def float_accuracy(
    model: Any, x: np.ndarray, y: np.ndarray, names: tuple[str, ...], tta: str
) -> tuple[float, dict[str, float]]:
    """Overall and per-class test accuracy of the float Keras model with the served views."""
    predicted = predict_float(model, x, tta).argmax(axis=1)
    per_class = {
        name: round(float((predicted[y == i] == i).mean()), 4) if (y == i).any() else 0.0
        for i, name in enumerate(names)
    }
    return float((predicted == y).mean()), per_class


def evaluate_int8(run_dir: Path, recipe: Recipe, data: Data) -> dict[str, Any]:
    """``training.evaluate`` in a fresh process without TensorFlow: the int8 model's test
    accuracy as served, with its temperature and doubt threshold fitted on validation."""
    with tempfile.TemporaryDirectory() as tmp:
        test, val = Path(tmp) / "test.npz", Path(tmp) / "validation.npz"
        out = Path(tmp) / "int8_eval.json"
        np.savez(test, x=data.x_test, y=data.y_test)
        np.savez(val, x=data.x_val, y=data.y_val)
        args = [
            str(run_dir / mf.MANIFEST_NAME),
            "--arrays",
            str(test),
            "--json",
            str(out),
        ]
        args += [
            "--calibrate-on",
            str(val),
            "--confident-accuracy",
            str(recipe.confident_accuracy),
        ]
        if data.corrections is not None:
            found = data.corrections
            held = found.held_out()
            none, gate = Path(tmp) / "none.npz", Path(tmp) / "corrections.npz"
            np.savez(none, x=found.none_x)
            np.savez(gate, x=found.x[held], y=found.y[held])
            args += ["--none-of-these", str(none), "--extra", f"corrections={gate}"]
        done = in_serving_process("training.evaluate", *args, "--details")
        if done.returncode != 0:  # its per-class table is in metrics.json; show output on failure
            sys.stderr.write(done.stdout + done.stderr)
            raise subprocess.CalledProcessError(done.returncode, done.args)
        return dict(json.loads(out.read_text()))


def manifest_fields(
    trained: Trained, exported: Export, recipe: Recipe, data: Data
) -> dict[str, Any]:
    """What the manifest says about the run (``classifier.manifest`` checks it when written)."""
    import keras
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=exported.tflite)
    in_detail, out_detail = (
        interpreter.get_input_details()[0],
        interpreter.get_output_details()[0],
    )
    return {
        "model_version": exported.version,
        "model_path": mf.MODEL_NAME,
        "class_names": list(data.class_names),
        "input": {
            "shape": list(data.x_train.shape[1:]),
            **tensor_spec(in_detail),
            "pixels": "RGB 0..255, decoded by classifier.core.image_to_array",
        },
        "output": {
            **tensor_spec(out_detail),
            "meaning": f"{exported.inference['outputs']} in class_names order",
        },
        "created": exported.stamp.isoformat(timespec="seconds"),
        "recipe": asdict(recipe),
        "data": {
            "source": data.name,
            "fingerprint_sha256": data.fingerprint,
            "train_images": len(data.x_train),
            "validation_images": len(data.x_val),
            "test_images": len(data.x_test),
            "limit": data.limit,
            "test_split": data.split,
            "skipped_files": data.skipped,
        },
        "parameters": int(trained.model.count_params()),
        "inference": exported.inference,
        "resumed_from": str(trained.resumed_from) if trained.resumed_from else None,
        "sizes": exported.sizes,
        "code_version": json.loads((exported.run_dir / "run.json").read_text())["code_version"],
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "machine": machine.describe(),
    }


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "training", "functions"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def write_manifest(run_dir: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """The run's manifest, built and checked by ``classifier.manifest.build``, then written."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != mf.MANIFEST_NAME
    }
    manifest = mf.build(fields, files)
    (run_dir / mf.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


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
    plots.confusion_matrix(
        np.asarray(int8["confusion"]),
        data.class_names,
        run_dir / "confusion_matrix.png",
    )
    plots.examples(
        data.x_test,
        data.y_test,
        np.asarray(int8["predictions"]),
        data.class_names,
        run_dir / "examples.png",
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
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train an image classifier (CIFAR-10 by default, or your own labelled "
        "folders), quantise it to int8 TFLite, evaluate, calibrate, plot, publish.",
    )
    parser.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"),
        help="a folder of <label>/ folders of images (a test split is held out), or with "
        "train/<label>/ and test/<label>/, a cifar-10-batches-py folder, or 'keras' (downloads)",
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    parser.add_argument("--out", default=str(ROOT / "runs"), help="parent of the run folder")
    parser.add_argument(
        "--upload",
        action="append",
        default=[],
        help="publish to s3://bucket/prefix or a local folder (repeatable): "
        "<dest>/models/<version>/ then <dest>/models/latest/manifest.json",
    )
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    parser.add_argument("--widths", help="override channel widths, e.g. 32,64,96")
    parser.add_argument("--time-budget", type=float, help="stop training after N minutes")
    parser.add_argument("--limit", type=int, help="use only the first N train and test images")
    parser.add_argument("--no-cache", action="store_true", help="decode the data again")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument(
        "--tta",
        choices=("auto", *TTA_VIEWS),
        help="override the recipe's test-time views",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any recipe field, e.g. --set lookahead_every=0 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        help="a run folder whose training stopped: continue it there (its recipe, data and "
        "--limit as recorded in its run.json, unless given again)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        choices=(32, 64),
        help="the model's input side in pixels",
    )
    parser.add_argument(
        "--init-from",
        help="start from a published model's float weights (models/<version>, a run folder), "
        "'auto' (the recipe's rule) or 'none'",
    )
    parser.add_argument(
        "--corrections",
        help="reviewers' labels, s3://<UploadsBucket>/labels/ or a folder of <label>/ folders: "
        "fine-tune on the data plus these (a share held out for the gate; 'none' items set the "
        "doubt threshold)",
    )
    parser.add_argument(
        "--keras-model",
        type=Path,
        help="skip Build and Train: export this run's model.keras again (its manifest.json and "
        "history.json beside it give the recipe, curves and training time)",
    )
    args = parser.parse_args(argv)
    if args.resume:  # the interrupted run's data, as its own command line gave it
        given = sys.argv[1:] if argv is None else argv
        started = json.loads((args.resume / "run.json").read_text())
        earlier = parser.parse_args(started["argv"])
        for option in ("--data", "--limit"):
            if not any(a == option or a.startswith(option + "=") for a in given):
                name = option.lstrip("-")
                setattr(args, name, getattr(earlier, name))
    return args


def configure(args: argparse.Namespace) -> Recipe:
    recipe = RECIPES[args.recipe]
    overrides: dict[str, Any] = {}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.widths:
        overrides["widths"] = tuple(int(w) for w in args.widths.split(","))
    if args.time_budget:
        overrides["time_budget_minutes"] = args.time_budget
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.tta:
        overrides["tta"] = args.tta
    if args.image_size:
        overrides["image_size"] = args.image_size
    if args.init_from:
        overrides["init_from"] = None if args.init_from == "none" else args.init_from
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in Recipe.__dataclass_fields__:
            raise SystemExit(f"error: --set {item}: the recipe has no field {name!r}")
        current = getattr(recipe, name)
        overrides[name] = (
            tuple(int(v) for v in value.split(","))
            if isinstance(current, tuple)
            else value.lower() in ("1", "true", "yes")
            if isinstance(current, bool)
            else type(current)(value)
            if current is not None
            else float(value)
        )
    if args.resume:  # the interrupted run's own recipe
        saved: dict[str, Any] = json.loads((args.resume / "run.json").read_text())["recipe"]
        restored: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
        }
        return Recipe(**restored)
    if args.keras_model:
        # The trained model's own recipe, so the validation split and records match it.
        previous = json.loads((args.keras_model.parent / mf.MANIFEST_NAME).read_text())["recipe"]
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in previous.items()
        }
        recipe = Recipe(**{**fields, "tta": recipe.tta})
    return replace(recipe, **overrides)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    recipe = configure(args)
    clock = Stopwatch()

    data = prepare(args, recipe, clock)
    if not args.resume and not args.keras_model:
        recipe = adapt(recipe, data)
    run_dir, stamp = start_run(args, recipe)
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
    manifest = write_manifest(
        exported.run_dir, {**fields, "metrics": metrics, "stage_seconds": clock.seconds}
    )
    lost = -metrics["int8_minus_float"]
    # A broken quantisation must not reach users; on a small test split a few images are noise.
    if lost > max(recipe.max_int8_loss, 3 / max(1, len(data.y_test))):
        raise SystemExit(
            f"error: the int8 model scores {metrics['int8_test_accuracy']:.2%}, "
            f"{lost * 100:.1f} points below the float model's "
            f"{metrics['float_test_accuracy']:.2%} (at most {recipe.max_int8_loss * 100:g} "
            f"allowed); not published. Both are in {exported.run_dir}"
        )
    publish_to(exported.run_dir, args.upload, clock)
    log("done", f"{exported.version} in {total / 60:.1f} min -> {exported.run_dir}")
    return manifest


if __name__ == "__main__":
    main()
