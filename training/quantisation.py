"""From the float model to the served one: the test-time views chosen on validation, float
accuracy with those views, per-channel equalisation, and the full-int8 TFLite conversion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from classifier.core import TTA_VIEWS, Quantization, combine_views, tta_views

from training.network import outputs_logits
from training.tensorflow_quiet import native_output_captured

if TYPE_CHECKING:
    from training.job_types import Recipe


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


def with_features(model: Any) -> Any:
    """The model with its pooled features as a second output, for the novelty score
    (classifier.core FEATURE_NORM_SCORE); as it is when it has no global pooling, or when the
    features are as wide as the answers (serving tells the two outputs apart by width)."""
    import keras

    pooled = [layer for layer in model.layers if "GlobalMaxPooling" in type(layer).__name__]
    if not pooled or pooled[-1].output.shape[-1] == model.output.shape[-1]:
        return model
    return keras.Model(model.input, [model.output, pooled[-1].output], name=model.name)


def to_int8(model: Any, calibration: np.ndarray) -> bytes:
    """Full-integer int8 TFLite: builtin int8 ops only, int8 input and outputs."""
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
