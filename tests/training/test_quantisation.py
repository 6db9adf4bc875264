"""training/quantisation.py: the int8 model is int8 in and out, agrees with TensorFlow's
interpreter, and keeps every channel.

TensorFlow runs only in subprocesses here; this process checks the results with the serving runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classifier.manifest import Manifest
from classifier.runtime import load_classifier
from PIL import Image

from tests.conftest import (
    IMGS,
    PUBLISHED,
    run_python,
)


def test_the_quantised_model_is_int8_in_and_out_and_loads_in_the_serving_runtime(
    tiny_run: dict[str, Any],
) -> None:
    from classifier.runtime import _interpreter_class

    Interpreter, _ = _interpreter_class()  # LiteRT, as the Lambdas load it
    model = (Path(tiny_run["run_dir"]) / "model.tflite").read_bytes()
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    (inp,), outputs = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and all(out["dtype"] == np.int8 for out in outputs)
    # The answers, and the pooled features of the last block (8,16,16) for the novelty score.
    assert list(inp["shape"]) == [1, 32, 32, 3]
    assert sorted(list(out["shape"]) for out in outputs) == [[1, 10], [1, 16]]
    # Every tensor that carries weights is integer: no float kernels were left behind.
    floats = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert floats == []


def test_the_served_model_scores_novelty_with_its_features_as_its_manifest_says(
    tiny_run: dict[str, Any], synthetic_data: dict[str, Any]
) -> None:
    from classifier.core import FEATURE_NORM_SCORE

    run_dir = Path(tiny_run["run_dir"])
    manifest = Manifest.from_bytes((run_dir / "manifest.json").read_bytes())
    inference = manifest.inference
    assert inference.novelty == FEATURE_NORM_SCORE and inference.novel_above is not None
    assert inference.novelty_moments is not None
    assert all(spread > 0 for _, spread in inference.novelty_moments)
    classifier = load_classifier((run_dir / "model.tflite").read_bytes(), manifest)
    test_images = synthetic_data["arrays"][2]
    views = classifier.predict_views(test_images)
    assert views.feature_norms is not None and views.feature_norms.shape == (len(test_images),)
    assert np.isfinite(views.feature_norms).all() and (views.feature_norms > 0).all()
    # Standardised on validation: the test images' feature norms sit near the stored mean.
    (_, _), (norm_mean, norm_spread) = inference.novelty_moments
    assert abs(float(np.mean(views.feature_norms)) - norm_mean) < 3 * norm_spread
    # The manifest tells the two outputs apart as serving does: answers, then the features.
    answers_q = classifier.output_quantization
    recorded = manifest.raw["output"]["quantization"]
    assert (recorded["scale"], recorded["zero_point"]) == (answers_q.scale, answers_q.zero_point)
    assert manifest.raw["features"]["width"] == 16


TF_REFERENCE = """
import json, sys, tensorflow as tf
from classifier.core import Classifier
from classifier.manifest import Manifest
model, manifest_path, images = sys.argv[1], sys.argv[2], sys.argv[3:]
manifest = Manifest.from_bytes(open(manifest_path, "rb").read())
# The serving core's pre- and post-processing around TensorFlow's own interpreter.
classifier = Classifier(
    tf.lite.Interpreter(model_path=model), class_names=manifest.class_names,
    model_version=manifest.model_version, runtime="tensorflow", inference=manifest.inference,
)
rows = [list(classifier.predict(open(p, "rb").read()).probabilities.values()) for p in images]
print(json.dumps(rows))
"""


def compare_with_tensorflow(model_path: Path, manifest_path: Path, images: list[Path]) -> float:
    """Classes and probabilities from TensorFlow's interpreter (a subprocess) against ours.

    Returns the share of images with a clear winner, the ones whose class must agree: kernels
    may round an int8 output one or two steps apart, which can swap a near tie.
    """
    done = run_python("-c", TF_REFERENCE, str(model_path), str(manifest_path), *map(str, images))
    assert done.returncode == 0, done.stderr[-2000:]
    reference = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    classifier = load_classifier(model_path.read_bytes(), manifest)
    ours = np.asarray(
        [list(classifier.predict(p.read_bytes()).probabilities.values()) for p in images]
    )
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05
    assert np.array_equal(ours.argmax(axis=1)[clear], reference.argmax(axis=1)[clear])
    assert np.allclose(ours, reference, atol=0.03)
    return float(clear.mean())


def test_the_serving_runtime_agrees_with_tensorflows_interpreter(
    tiny_run: dict[str, Any], synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = Path(tiny_run["run_dir"])
    test_images = synthetic_data["arrays"][2]
    images = [tmp_path / f"{i}.png" for i in range(len(test_images))]
    for path, pixels in zip(images, test_images):
        Image.fromarray(pixels).save(path)
    clear = compare_with_tensorflow(run_dir / "model.tflite", run_dir / "manifest.json", images)
    # Enough clear winners for the classes to be compared (a tiny net is unsure of most).
    assert clear * len(images) >= 10


@pytest.mark.slow
@pytest.mark.skipif(not PUBLISHED.is_file(), reason="no published model in models/ yet")
def test_the_published_model_gives_tensorflows_classes_in_the_serving_runtime() -> None:
    manifest = json.loads(PUBLISHED.read_text())
    model = (PUBLISHED.parent / manifest["model_path"]).resolve()
    images = sorted(IMGS.glob("*.png"))
    assert compare_with_tensorflow(model, PUBLISHED, images) == 1.0  # every photo: a clear winner


EQUALISE_CHECK = """
import json, sys
import numpy as np
from training.tensorflow_quiet import import_tensorflow
import_tensorflow(0)
import tensorflow as tf
from training.network import build_model
from training.quantisation import equalised, to_int8
from training.job_types import RECIPES
from dataclasses import replace

rng = np.random.default_rng(0)
x = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
model = build_model(replace(RECIPES["default"], widths=(8, 16, 16)), x, 4)
model.predict(x[:64].astype(np.float32), verbose=0)
# What training did on grey digits: one channel before a scale-free BatchNorm grew 10^4 times
# larger than the others. BatchNorm divides it back, so the float model is unchanged.
conv = next(l for l in model.layers if l.__class__.__name__ == "Conv2D" and l.trainable)
norm = next(l for l in model.layers if l.__class__.__name__ == "BatchNormalization")
images = x.astype(np.float32)
kernel = conv.kernel.numpy(); kernel[..., 0] *= 1e4; conv.kernel.assign(kernel)
mean, var = norm.moving_mean.numpy(), norm.moving_variance.numpy()
mean[0] *= 1e4; var[0] *= 1e8
norm.moving_mean.assign(mean); norm.moving_variance.assign(var)
float_outputs = model.predict(images, verbose=0)
reference = float_outputs.argmax(1)

def agreement(m):
    interpreter = tf.lite.Interpreter(model_content=to_int8(m, x[:100]))
    interpreter.allocate_tensors()
    i, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    got = []
    for image in x:
        interpreter.set_tensor(i["index"], (image.astype(np.int16) - 128).astype(np.int8)[None])
        interpreter.invoke()
        got.append(interpreter.get_tensor(o["index"])[0].argmax())
    return float((np.array(got) == reference).mean())

scaled = equalised(model)
print(json.dumps({
    "float_unchanged": float(np.abs(scaled.predict(images, verbose=0) - float_outputs).max()),
    "plain": agreement(model),
    "equalised": agreement(scaled),
}))
"""


@pytest.mark.slow
def test_quantisation_keeps_a_channel_of_huge_variance_from_silencing_the_others() -> None:
    done = run_python("-c", EQUALISE_CHECK)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["float_unchanged"] < 1e-3  # equalising is exact in float
    assert result["equalised"] >= 0.9  # int8 answers as the float model does
    assert result["plain"] < result["equalised"]  # and without it, it would not
