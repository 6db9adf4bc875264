"""Train a CIFAR-10 CNN, quantise it to int8 TFLite, evaluate it, plot it and publish it.

    python -m training.train --data ../shared/datasets/cifar10-jpeg [--recipe fast|report]
                             [--out runs/] [--upload s3://bucket/prefix | ./models]

Stages, in order: Prepare -> Build -> Train -> Quantise -> Evaluate -> Publish. Each prints one
summary line; the run folder collects the model files, manifest.json, metrics.json and plots.

The int8 model is evaluated by ``training.evaluate`` in a separate process, with the serving
code's preprocessing and TFLite runtime: tflite-runtime cannot run in a process that has
imported TensorFlow, and this way the number we report is the number the Lambdas would give.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from classifier import manifest as mf
from classifier.core import Quantization, sha256_hex

from training import data as cifar
from training import plots
from training.publish import in_serving_process, publish

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Hyper-parameters. Two recipes: the original report's, and our default ("fast").
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    architecture: str  # "whitened-vgg" (ours) or "report-cnn"
    widths: tuple[int, ...] = (64, 128, 192)  # channels per stage (whitened-vgg)
    epochs: int = 36  # passes over the training images
    batch_size: int = 256  # images per step
    optimizer: str = "sgd"  # "sgd" (Nesterov, one-cycle) or "adam"
    learning_rate: float = 0.2  # peak learning rate
    warmup_fraction: float = 0.2  # share of steps spent warming up to the peak
    momentum: float = 0.9
    weight_decay: float = 5e-3  # decoupled, multiplied by the learning rate each step
    label_smoothing: float = 0.2
    augment: str = "flip-translate"  # "flip-translate" or "rotate-zoom-flip"
    translate_px: int = 2  # max shift (reflect padding) for flip-translate
    validation_fraction: float = 0.1  # of the training images, held out for curves and safety
    early_stopping_patience: int | None = None  # None: never stop, but restore the best epoch
    dropout: float = 0.0
    time_budget_minutes: float | None = None  # stop training after this much wall time
    calibration_images: int = 500  # training images used to calibrate int8 ranges
    # Average the predictions for the image and its mirror image: "on", "off", or "auto" (only
    # if that raises validation accuracy). Costs a second pass per image at inference.
    tta_flip: str = "auto"
    seed: int = 0


RECIPES = {
    "fast": Recipe(
        name="fast",
        description=(
            "VGG-style net with BatchNorm and a fixed PCA-whitened 2x2 first layer (as in Keller "
            "Jordan's airbench), flip + 2 px translate, label smoothing 0.2, Nesterov SGD with a "
            "warm-up then cosine one-cycle schedule for a fixed budget; 10% of train held out for "
            "validation, best validation epoch restored; the exported model averages each image "
            "with its mirror image when that raises validation accuracy."
        ),
        architecture="whitened-vgg",
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
        epochs=51,
        batch_size=64,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        augment="rotate-zoom-flip",
        validation_fraction=0.2,
        early_stopping_patience=10,
        dropout=0.25,
        tta_flip="off",
    ),
}


def log(stage: str, message: str) -> None:
    print(f"[{stage:>8}] {message}", flush=True)


@contextlib.contextmanager
def native_output_captured() -> Iterator[None]:
    """Hold what native code writes to stdout/stderr (file descriptors 1 and 2) meanwhile; show
    it only if the block fails. TensorFlow's importers and converter print banners there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up noise off the screen; what matters still raises.

    TF_CPP_MIN_LOG_LEVEL=3 (unless set) hides the C++ log: on a CPU machine its lines are
    "failed call to cuInit: CUDA error" (no GPU, as expected), oneDNN and absl notices. A C++
    failure that matters surfaces as a Python exception anyway. Two Python warnings are silenced
    by message because they do not apply here: the converter's missing input statistics (the
    int8 input range comes from the representative images) and tf.lite.Interpreter's deprecation
    (used only to read tensor details here; serving uses LiteRT).
    """
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


# --------------------------------------------------------------------------------------------
# Prepare
# --------------------------------------------------------------------------------------------
def whitening_kernel(x: np.ndarray, size: int = 2, eps: float = 5e-4) -> np.ndarray:
    """2x2 PCA-whitening filters (+ and - of each eigenvector) from normalised image patches."""
    height, width = x.shape[1] - size + 1, x.shape[2] - size + 1
    # Every size x size patch, flattened in Keras's kernel order (dy, dx, channel).
    shifted = [
        x[:, dy : dy + height, dx : dx + width, :] for dy in range(size) for dx in range(size)
    ]
    patches = np.stack(shifted, axis=3).reshape(-1, size * size * x.shape[-1]).astype(np.float64)
    cov = np.cov(patches, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = eigenvectors / np.sqrt(eigenvalues + eps)  # columns are whitening filters
    filters = np.concatenate([filters, -filters], axis=1)  # keep both signs through the ReLU
    return filters.reshape(size, size, x.shape[-1], -1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
def build_model(recipe: Recipe, x_train: np.ndarray, n_classes: int) -> Any:
    """The Keras model; it takes RGB pixels in 0..255 and normalises them itself."""
    import keras
    from keras import layers

    mean = x_train.reshape(-1, 3).mean(axis=0)
    var = x_train.reshape(-1, 3).var(axis=0)
    inputs = keras.Input((32, 32, 3), name="pixels")
    x = layers.Normalization(mean=mean, variance=var, name="normalise")(inputs)

    if recipe.architecture == "report-cnn":
        for width in recipe.widths:
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
            x = layers.Dropout(recipe.dropout)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="report_cnn")

    def conv_bn_relu(x: Any, width: int) -> Any:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    sample = x_train[
        np.random.default_rng(recipe.seed).choice(
            len(x_train), min(5000, len(x_train)), replace=False
        )
    ]
    kernel = whitening_kernel((sample - mean) / np.sqrt(var))
    whiten = layers.Conv2D(
        kernel.shape[-1], 2, padding="same", use_bias=False, trainable=False, name="whiten"
    )
    x = whiten(x)
    whiten.set_weights([kernel])
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    for width in recipe.widths:
        x = conv_bn_relu(x, width)
        x = layers.MaxPooling2D()(x)
        x = conv_bn_relu(x, width)
    x = layers.GlobalMaxPooling2D()(x)
    if recipe.dropout:
        x = layers.Dropout(recipe.dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="whitened_vgg")


def compile_model(model: Any, recipe: Recipe, steps_per_epoch: int) -> None:
    import keras

    if recipe.optimizer == "adam":
        optimizer: Any = keras.optimizers.Adam(recipe.learning_rate)
    else:
        total = recipe.epochs * steps_per_epoch
        warmup = int(total * recipe.warmup_fraction)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate / 10,
            decay_steps=max(1, total - warmup),
            warmup_target=recipe.learning_rate,
            warmup_steps=warmup,
        )
        optimizer = keras.optimizers.SGD(
            schedule,
            momentum=recipe.momentum,
            nesterov=True,
            weight_decay=recipe.weight_decay or None,
        )
        # Decay the convolution and dense kernels only, not BatchNorm's scale and shift.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )


# --------------------------------------------------------------------------------------------
# Train
# --------------------------------------------------------------------------------------------
def make_augmenter(recipe: Recipe) -> Any:
    """A function of a batch of float images, used only while training."""
    import keras
    import tensorflow as tf

    if recipe.augment == "rotate-zoom-flip":
        layers = keras.Sequential(
            [
                keras.layers.RandomRotation(0.1, fill_mode="reflect"),
                keras.layers.RandomZoom(0.1, fill_mode="reflect"),
                keras.layers.RandomFlip("horizontal"),
            ],
            name="augment",
        )
        return lambda images: layers(images, training=True)

    pad = recipe.translate_px

    def flip_translate(images: Any) -> Any:
        images = tf.image.random_flip_left_right(images)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        return tf.map_fn(
            lambda im: tf.image.random_crop(im, (32, 32, 3)), padded, fn_output_signature=tf.float32
        )

    return flip_translate


def make_datasets(
    recipe: Recipe, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[Any, Any]:
    import tensorflow as tf

    augment = make_augmenter(recipe)
    n_classes = int(y.max()) + 1
    one_hot = np.eye(n_classes, dtype=np.float32)  # labels one-hot, as in the report
    train = (
        tf.data.Dataset.from_tensor_slices((x, one_hot[y]))
        .shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
        .map(lambda a, b: (augment(tf.cast(a, tf.float32)), b), num_parallel_calls=2)
        .prefetch(2)
    )
    val = (
        tf.data.Dataset.from_tensor_slices((x_val.astype(np.float32), one_hot[y_val]))
        .batch(512)
        .cache()
    )
    return train, val


def time_budget(minutes: float) -> Any:
    """A callback that stops training once ``minutes`` of wall time are spent (equal-time runs)."""
    import keras

    started: list[float] = []

    def begin(logs: Any = None) -> None:
        started.append(time.monotonic())

    def check(epoch: int, logs: Any = None) -> None:
        if time.monotonic() - started[0] > minutes * 60:
            print(f"time budget of {minutes:g} min spent after epoch {epoch + 1}")
            callback.model.stop_training = True

    callback = keras.callbacks.LambdaCallback(on_train_begin=begin, on_epoch_end=check)
    return callback


def train(model: Any, recipe: Recipe, train_ds: Any, val_ds: Any) -> dict[str, list[float]]:
    import keras

    patience = recipe.early_stopping_patience or recipe.epochs
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss" if recipe.early_stopping_patience else "val_accuracy",
            patience=patience,
            restore_best_weights=True,
            verbose=1,
        )
    ]
    if recipe.time_budget_minutes:
        callbacks.append(time_budget(recipe.time_budget_minutes))
    history = model.fit(
        train_ds,
        shuffle=False,  # the dataset shuffles itself each epoch (Keras would warn otherwise)
        validation_data=val_ds,
        epochs=recipe.epochs,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


# --------------------------------------------------------------------------------------------
# Quantise
# --------------------------------------------------------------------------------------------
def with_flip_averaging(model: Any) -> Any:
    """The model averaged over the image and its left-right mirror (one set of weights)."""
    import keras
    from keras import layers

    inputs = keras.Input(model.input_shape[1:], name="pixels")
    mirrored = layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name="mirror")(inputs)
    outputs = layers.Average(name="probabilities")([model(inputs), model(mirrored)])
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")


def choose_inference(
    model: Any, recipe: Recipe, x_val: np.ndarray, y_val: np.ndarray, names: tuple[str, ...]
) -> tuple[Any, dict[str, Any]]:
    """Whether serving averages each image with its mirror: as the recipe says, or (auto) if
    that raises validation accuracy. Returns the float model to report and the decision.

    The averaging is done by the serving code around the int8 model (manifest
    ``inference.flip_average``), not inside it: quantising the two-branch graph lost ~3 points.
    """
    if recipe.tta_flip == "off":
        return model, {"flip_average": False}
    mirrored = with_flip_averaging(model)
    plain, _ = float_accuracy(model, x_val, y_val, names)
    averaged, _ = float_accuracy(mirrored, x_val, y_val, names)
    use = recipe.tta_flip == "on" or averaged > plain
    decision = {
        "flip_average": use,
        "validation_accuracy": round(plain, 4),
        "validation_accuracy_flip_average": round(averaged, 4),
    }
    return (mirrored if use else model), decision


def quantise(model: Any, calibration: np.ndarray) -> bytes:
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
    return {"dtype": q.dtype, "quantization": {"scale": q.scale, "zero_point": q.zero_point}}


def float_accuracy(
    model: Any, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """Overall and per-class test accuracy of the float Keras model."""
    predicted = model.predict(x.astype(np.float32), batch_size=512, verbose=0).argmax(axis=1)
    per_class = {
        name: round(float((predicted[y == i] == i).mean()), 4) if (y == i).any() else 0.0
        for i, name in enumerate(names)
    }
    return float((predicted == y).mean()), per_class


# --------------------------------------------------------------------------------------------
# Evaluate (int8, in a TensorFlow-free process) — see training/evaluate.py
# --------------------------------------------------------------------------------------------
def evaluate_int8(run_dir: Path, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """Run ``training.evaluate`` on the test arrays in a fresh process without TensorFlow."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays, out = Path(tmp) / "test.npz", Path(tmp) / "int8_eval.json"
        np.savez(arrays, x=x_test, y=y_test)
        args = [str(run_dir / mf.MANIFEST_NAME), "--arrays", str(arrays), "--json", str(out)]
        done = in_serving_process("training.evaluate", *args, "--details")
        if done.returncode != 0:  # its per-class table is in metrics.json; show output on failure
            sys.stderr.write(done.stdout + done.stderr)
            raise subprocess.CalledProcessError(done.returncode, done.args)
        return dict(json.loads(out.read_text()))


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------
def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
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
# main
# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a CIFAR-10 CNN, quantise it to int8 TFLite, evaluate, plot, publish.",
    )
    parser.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"),
        help="folder with train/<class>/ and test/<class>/ images, a cifar-10-batches-py "
        "folder, or 'keras' (downloads)",
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
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
        "--tta-flip", choices=("auto", "on", "off"), help="override the recipe's flip averaging"
    )
    parser.add_argument(
        "--keras-model",
        type=Path,
        help="skip Build and Train: export this run's model.keras again (its manifest.json and "
        "history.json beside it give the recipe, curves and training time)",
    )
    return parser.parse_args(argv)


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
    if args.tta_flip:
        overrides["tta_flip"] = args.tta_flip
    if args.keras_model:
        # The trained model's own recipe, so the validation split and records match it.
        previous = json.loads((args.keras_model.parent / mf.MANIFEST_NAME).read_text())["recipe"]
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in previous.items()
        }
        recipe = Recipe(**{**fields, "tta_flip": recipe.tta_flip})
    return replace(recipe, **overrides)


def subsample(x: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a class-balanced shuffle (quick runs and tests)."""
    if not n or n >= len(x):
        return x, y
    order = np.random.default_rng(0).permutation(len(x))[:n]
    return x[order], y[order]


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


@dataclass
class Trained:
    model: Any
    history: dict[str, list[float]]
    resumed_from: Path | None = None

    @property
    def best_epoch(self) -> int:
        return int(np.argmax(self.history["val_accuracy"]))


@dataclass
class Export:
    run_dir: Path
    version: str
    stamp: datetime
    tflite: bytes
    served: Any  # the float model as served (with flip averaging when chosen)
    inference: dict[str, Any]
    sizes: dict[str, float]


def prepare(args: argparse.Namespace, recipe: Recipe, clock: Stopwatch) -> Data:
    """Load (or decode) the data set and split off the recipe's validation images."""
    start = time.monotonic()
    try:
        dataset, cached = cifar.load(args.data, use_cache=not args.no_cache)
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
    )
    log(
        "prepare",
        f"{len(x_train)} train / {len(x_val)} validation / {len(x_test)} test images from "
        f"{dataset.source} ({'cache' if cached else 'decoded'}, fingerprint "
        f"{data.fingerprint[:12]}) in {clock.lap('prepare', start):.1f}s",
    )
    return data


def import_tensorflow(seed: int) -> None:
    """Import TensorFlow and Keras quietly, and seed them."""
    quiet_tensorflow()
    with native_output_captured():  # "Could not find cuda drivers", absl's pre-init notice
        import keras
        import tensorflow  # noqa: F401

    keras.utils.set_random_seed(seed)


def fit(recipe: Recipe, data: Data, clock: Stopwatch) -> Trained:
    """Build the recipe's model and train it (the best validation epoch is restored)."""
    start = time.monotonic()
    import_tensorflow(recipe.seed)
    model = build_model(recipe, data.x_train, len(data.class_names))
    train_ds, val_ds = make_datasets(recipe, data.x_train, data.y_train, data.x_val, data.y_val)
    compile_model(model, recipe, steps_per_epoch=-(-len(data.x_train) // recipe.batch_size))
    log(
        "build",
        f"{model.name}: {model.count_params():,} parameters, recipe {recipe.name} "
        f"in {clock.lap('build', start):.1f}s",
    )
    start = time.monotonic()
    trained = Trained(model, train(model, recipe, train_ds, val_ds))
    best = trained.best_epoch
    log(
        "train",
        f"{len(trained.history['loss'])} epochs in {clock.lap('train', start) / 60:.1f} min; "
        f"best validation accuracy {trained.history['val_accuracy'][best]:.4f} at epoch "
        f"{best + 1}",
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


def export(trained: Trained, recipe: Recipe, data: Data, out: Path, clock: Stopwatch) -> Export:
    """A run folder with the Keras files, the choice of flip averaging and the int8 model."""
    start = time.monotonic()
    stamp = datetime.now(timezone.utc)
    run_dir = out / f"{stamp:%Y%m%d-%H%M%S}-{recipe.name}"
    run_dir.mkdir(parents=True, exist_ok=False)
    trained.model.save(run_dir / "model.keras")
    trained.model.save(run_dir / "model.h5")
    (run_dir / "history.json").write_text(json.dumps(trained.history, indent=1) + "\n")
    served, inference = choose_inference(
        trained.model, recipe, data.x_val, data.y_val, data.class_names
    )
    calibration = subsample(data.x_train, data.y_train, recipe.calibration_images)[0]
    tflite = quantise(trained.model, calibration)
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
        served=served,
        inference=inference,
        sizes=sizes,
    )
    log(
        "quantise",
        f"int8 {sizes['tflite_int8_bytes'] / 1024:,.0f} KB vs .h5 {sizes['h5_bytes'] / 1024:,.0f}"
        f" KB ({sizes['saving_vs_h5']:.0%} smaller); inference {inference} "
        f"in {clock.lap('quantise', start):.1f}s",
    )
    return exported


def manifest_fields(
    trained: Trained, exported: Export, recipe: Recipe, data: Data
) -> dict[str, Any]:
    """What the manifest says about the run (``classifier.manifest`` checks it when written)."""
    import keras
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=exported.tflite)
    in_detail, out_detail = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {
        "model_version": exported.version,
        "model_path": mf.MODEL_NAME,
        "class_names": list(data.class_names),
        "input": {
            "shape": [32, 32, 3],
            **tensor_spec(in_detail),
            "pixels": "RGB 0..255, decoded by classifier.core.image_to_array",
        },
        "output": {
            **tensor_spec(out_detail),
            "meaning": "softmax probabilities in class_names order",
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
        },
        "parameters": int(trained.model.count_params()),
        "inference": exported.inference,
        "resumed_from": str(trained.resumed_from) if trained.resumed_from else None,
        "sizes": exported.sizes,
        "code_version": code_version(),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def evaluate(
    trained: Trained, exported: Export, recipe: Recipe, data: Data, clock: Stopwatch
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Float accuracy here, int8 accuracy as served (another process): the manifest's fields,
    the metrics, and the int8 evaluation's details (predictions, confusion) for the plots."""
    start = time.monotonic()
    float_acc, float_per_class = float_accuracy(
        exported.served, data.x_test, data.y_test, data.class_names
    )
    fields = manifest_fields(trained, exported, recipe, data)
    write_manifest(exported.run_dir, fields)  # provisional: evaluate.py needs model + manifest
    int8 = evaluate_int8(exported.run_dir, data.x_test, data.y_test)
    best = trained.best_epoch
    metrics = {
        "float_test_accuracy": round(float_acc, 4),
        "int8_test_accuracy": int8["accuracy"],
        "int8_minus_float": round(int8["accuracy"] - float_acc, 4),
        "float_per_class": float_per_class,
        "int8_per_class": int8["per_class"],
        "best_validation_accuracy": round(trained.history["val_accuracy"][best], 4),
        "best_epoch": best + 1,
        "epochs_run": len(trained.history["loss"]),
        "test_set": f"{data.name}/test ({len(data.y_test)} images)",
        "int8_runtime": int8["runtime"],
    }
    log(
        "evaluate",
        f"test accuracy float {float_acc:.4f}, int8 {int8['accuracy']:.4f} "
        f"({int8['runtime']}) in {clock.lap('evaluate', start):.1f}s",
    )
    return fields, metrics, int8


def draw_plots(
    trained: Trained,
    exported: Export,
    recipe: Recipe,
    data: Data,
    int8: dict[str, Any],
    clock: Stopwatch,
) -> None:
    """Training curves, confusion matrix, examples and the augmentation, into the run folder."""
    start = time.monotonic()
    run_dir = exported.run_dir
    plots.training_curves(trained.history, run_dir / "training_curves.png", title=exported.version)
    plots.confusion_matrix(
        np.asarray(int8["confusion"]), data.class_names, run_dir / "confusion_matrix.png"
    )
    plots.examples(
        data.x_test,
        data.y_test,
        np.asarray(int8["predictions"]),
        data.class_names,
        run_dir / "examples.png",
    )
    if recipe.augment == "rotate-zoom-flip" or recipe.name == "report":
        augmenter, title = make_augmenter(RECIPES["report"]), "rotation, zoom, flip (report)"
    else:
        augmenter, title = make_augmenter(recipe), f"flip + {recipe.translate_px}px translate"
    plots.augmentations(data.x_train[:8], augmenter, run_dir / "augmentations.png", title)
    clock.lap("plots", start)


def publish_run(run_dir: Path, destinations: list[str], clock: Stopwatch) -> None:
    """Publish to each destination: models/<version>/ first, verified, latest last."""
    start = time.monotonic()
    for destination in destinations:
        keys = publish(run_dir, destination)
        log("publish", f"{len(keys)} files to {destination} (latest last)")
    clock.lap("publish", start)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    recipe = configure(args)
    clock = Stopwatch()

    data = prepare(args, recipe, clock)
    if args.keras_model:
        trained = load(args.keras_model, recipe, clock)
    else:
        trained = fit(recipe, data, clock)
    exported = export(trained, recipe, data, Path(args.out), clock)
    fields, metrics, int8 = evaluate(trained, exported, recipe, data, clock)
    draw_plots(trained, exported, recipe, data, int8, clock)

    # The sum of the stages: a re-export counts the training time of the run it came from.
    total = sum(clock.seconds.values())
    metrics["wall_minutes"] = round(total / 60, 2)
    (exported.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    manifest = write_manifest(
        exported.run_dir, {**fields, "metrics": metrics, "stage_seconds": clock.seconds}
    )
    publish_run(exported.run_dir, args.upload, clock)
    log("done", f"{exported.version} in {total / 60:.1f} min -> {exported.run_dir}")
    return manifest


if __name__ == "__main__":
    main()
