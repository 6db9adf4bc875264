"""The networks: airbench94's (whitening, GELU convolution blocks, scaled logits) and the
report's, their custom layers, and their float weights (saved in half precision, loaded back,
copied from a published model)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from classifier import contract

from training import ROOT, machine

if TYPE_CHECKING:
    from training.job_types import Recipe


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


def published_float_model(location: str) -> Path:
    """model.keras of a published model folder (models/<version>/ or a run folder), or of the
    model ``models/latest`` points at; or an ``s3://bucket/models/<version>/`` folder (the
    retraining pipeline's job starts from the served model in the model bucket)."""
    if location.startswith("s3://"):
        return fetch_float_model(location)
    folder = Path(location).expanduser()
    if (folder / contract.MANIFEST_NAME).is_file() and not (
        folder / contract.FLOAT_MODEL_NAME
    ).is_file():
        manifest = json.loads((folder / contract.MANIFEST_NAME).read_text())
        folder = (folder / manifest["model_path"]).resolve().parent  # latest -> its version
    path = folder / contract.FLOAT_MODEL_NAME
    if not path.is_file():
        raise SystemExit(
            f"error: --init-from {location}: no {contract.FLOAT_MODEL_NAME} there (models "
            "published since the float weights are kept have one)"
        )
    return path


def fetch_float_model(location: str) -> Path:
    """model.keras of an s3:// model folder and its manifest (which says whether the head can be
    kept: transfer_weights), downloaded into the data cache."""
    import boto3

    from training.data import cache_dir

    bucket, _, prefix = location[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/{contract.MANIFEST_NAME}")["Body"].read()
    )
    # latest's manifest names its version's model (../<version>/model.tflite): follow it.
    folder = os.path.normpath(f"{prefix}/{manifest['model_path']}").rsplit("/", 1)[0]
    target = cache_dir() / "init-from" / bucket / folder / contract.FLOAT_MODEL_NAME
    for name in (contract.MANIFEST_NAME, contract.FLOAT_MODEL_NAME):  # the weights last
        if not (target.parent / name).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                s3.download_file(bucket, f"{folder}/{name}", str(target.parent / name))
            except Exception as exc:  # botocore's ClientError: no such key, or no access
                raise SystemExit(
                    f"error: --init-from {location}: cannot read {name} there: {exc}"
                ) from exc
    return target


def compatible_published_model(recipe: Recipe) -> str | None:
    """The repository's published model, if its float weights fit this recipe's network."""
    latest = ROOT / contract.REPO_MODEL_PATH
    if not latest.is_file():
        return None
    manifest = json.loads(latest.read_text())
    folder = (latest.parent / manifest["model_path"]).resolve().parent
    trained = manifest.get("recipe", {})
    fits = (
        trained.get("architecture") == recipe.architecture
        and tuple(trained.get("widths", ())) == recipe.widths
        and (folder / contract.FLOAT_MODEL_NAME).is_file()
    )
    return str(folder.relative_to(ROOT)) if fits else None


def transfer_weights(model: Any, source_path: Path, class_names: tuple[str, ...] = ()) -> bool:
    """Copy every layer's weights from a trained model of the same architecture (input size and
    head may differ: convolutions do not depend on them); the head too when the source answers
    with the same labels in the same order (fine-tuning on corrections). True if it did."""
    import keras

    custom_layers()
    source = keras.models.load_model(source_path, compile=False)
    manifest = source_path.parent / contract.MANIFEST_NAME
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


def with_dtype(config: Any, dtype: str) -> Any:
    """A Keras model config with every layer's dtype policy set to ``dtype``."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config["config"], "name": dtype}}
        return {k: with_dtype(v, dtype) for k, v in config.items()}
    if isinstance(config, list):
        return [with_dtype(v, dtype) for v in config]
    return config


def save_weights_and_graph(model: Any, path: Path) -> None:
    """The float model as a later job starts from it: graph and weights in half precision, no
    optimizer state (half the bytes; :func:`load_float_model` casts them back to float32)."""
    import keras

    config = with_dtype(model.get_config(), "float16")
    plain = keras.Model.from_config(config, custom_objects=custom_layers())
    plain.set_weights([w.astype(np.float16) for w in model.get_weights()])
    plain.save(path)


def load_float_model(path: Path) -> Any:
    """A saved float model in float32 (the int8 converter and fine-tuning need float32)."""
    import keras

    saved = keras.models.load_model(path, custom_objects=custom_layers(), compile=False)
    config = with_dtype(saved.get_config(), "float32")
    model = keras.Model.from_config(config, custom_objects=custom_layers())
    model.set_weights([w.astype(np.float32) for w in saved.get_weights()])
    return model
