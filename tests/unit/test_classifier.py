"""The Classifier on a real int8 model: the repository's published one."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classifier.core import TTA_VIEWS, ModelError, image_to_array, softmax, tta_views
from classifier.manifest import Manifest, resolve
from classifier.runtime import load_classifier, runtime_name

from tests.conftest import IMGS


def load(manifest_path: Path, **kwargs: Any) -> Any:
    manifest = Manifest.from_bytes(manifest_path.read_bytes())
    model = Path(resolve(str(manifest_path), manifest.model_path)).read_bytes()
    return load_classifier(model, manifest, **kwargs)


class Spy:
    """Wraps an interpreter and records the tensors set on it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.fed = inner, []

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self.fed.append(value.copy())
        self.inner.set_tensor(index, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def needs_tflite_runtime() -> None:
    """tflite-runtime is the python3.11 bundle target's runtime: its wheels stop at CPython 3.11."""
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        pytest.skip("tflite-runtime (the python3.11 target's runtime) needs CPython <= 3.11")


def test_litert_is_the_default_runtime_where_installed() -> None:
    assert runtime_name().startswith("ai-edge-litert 2.3")
    needs_tflite_runtime()
    assert runtime_name("tflite-runtime").startswith("tflite-runtime 2.14")


def test_ai_edge_litert_gives_the_same_answers(served_manifest: Path) -> None:
    needs_tflite_runtime()
    litert = load(served_manifest, runtime="ai-edge-litert")
    assert litert.runtime.startswith("ai-edge-litert")
    tflite = load(served_manifest, runtime="tflite-runtime")
    pixels = np.stack([image_to_array(p.read_bytes()) for p in sorted(IMGS.glob("*.png"))])
    ours, theirs = tflite.predict_arrays(pixels), litert.predict_arrays(pixels)
    # Kernels may round an int8 output a step apart, so only a clear winner must agree; the
    # probabilities must all be close.
    top2 = np.sort(ours, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05
    assert clear.sum() >= len(pixels) // 2  # enough clear winners to compare
    assert np.array_equal(ours.argmax(axis=1)[clear], theirs.argmax(axis=1)[clear])
    assert np.allclose(ours, theirs, atol=0.03)


def test_without_litert_it_falls_back_to_tflite_runtime(
    served_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_tflite_runtime()
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as in the python3.11 bundle
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert load(served_manifest).runtime.startswith("tflite-runtime")


@pytest.mark.parametrize("tta", sorted(TTA_VIEWS))
def test_all_views_in_one_invoke_equal_one_invoke_per_view(served_manifest: Path, tta: str) -> None:
    classifier = load(served_manifest)
    classifier.inference = replace(classifier.inference, tta=tta)
    spy = Spy(classifier._interpreter)
    classifier._interpreter = spy
    pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    together = classifier.predict_outputs(pixels)
    assert len(spy.fed) == 1 and spy.fed[0].shape[0] == 5 * len(TTA_VIEWS[tta])
    views, weights = tta_views(pixels, tta)
    one_by_one = [classifier._run(view)[0] for view in np.split(views, len(weights))]
    assert np.allclose(together, sum(w * o for w, o in zip(weights, one_by_one)), atol=1e-6)


def test_the_six_views_are_the_image_its_mirror_and_one_pixel_shifts_of_both() -> None:
    pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    views, weights = tta_views(pixels, "mirror-translate")
    six = np.split(views, 6)
    assert np.array_equal(six[0], pixels) and np.array_equal(six[1], pixels[:, :, ::-1])
    # up-left: the content moves one pixel down and right (reflect padding at the border)
    assert np.array_equal(six[2][:, 1:, 1:], pixels[:, :-1, :-1])
    assert np.array_equal(six[4][:, :-1, :-1], pixels[:, 1:, 1:])
    assert np.array_equal(six[3], six[2][:, :, ::-1]) and np.array_equal(six[5], six[4][:, :, ::-1])
    assert weights.sum() == pytest.approx(1.0) and weights[0] == weights[1] == 2 * weights[2]


def test_the_temperature_is_applied_to_what_the_model_outputs(served_manifest: Path) -> None:
    classifier = load(served_manifest)
    pixels = np.stack([image_to_array(p.read_bytes()) for p in sorted(IMGS.glob("*.png"))])
    raw = classifier.predict_outputs(pixels)
    logits = raw if classifier.inference.outputs == "logits" else np.log(np.clip(raw, 1e-7, None))
    for temperature in (0.5, 2.0):
        classifier.inference = replace(classifier.inference, temperature=temperature)
        expected = softmax(logits, temperature)
        assert np.allclose(classifier.predict_arrays(pixels), expected, atol=1e-5)
    # A higher temperature says less; the answer itself never changes.
    hot = classifier.predict_arrays(pixels)
    classifier.inference = replace(classifier.inference, temperature=0.5)
    cold = classifier.predict_arrays(pixels)
    assert np.array_equal(hot.argmax(1), cold.argmax(1)) and (hot.max(1) <= cold.max(1)).all()


def test_answers_below_the_doubt_threshold_are_flagged_with_the_runner_up(
    served_manifest: Path,
) -> None:
    classifier = load(served_manifest)
    data = (IMGS / "cat.png").read_bytes()
    sure = classifier.predict(data)
    assert sure.unsure is (sure.confidence < classifier.inference.unsure_below)  # the manifest's
    classifier.inference = replace(classifier.inference, unsure_below=sure.confidence + 1e-6)
    doubtful = classifier.predict(data)
    assert doubtful.unsure and doubtful.category == sure.category
    others = {k: p for k, p in doubtful.probabilities.items() if k != doubtful.category}
    assert doubtful.runner_up in others
    assert others[doubtful.runner_up] == max(others.values())
    classifier.inference = replace(classifier.inference, unsure_below=sure.confidence)
    assert classifier.predict(data).unsure is False  # at the threshold counts as sure


def test_a_manifest_without_a_novelty_threshold_never_says_none_of_these(
    served_manifest: Path,
) -> None:
    raw = json.loads(served_manifest.read_text())
    raw["inference"].pop("novel_above", None)
    manifest = Manifest.from_dict(raw)
    assert manifest.inference.novel_above is None
    model = Path(resolve(str(served_manifest), manifest.model_path)).read_bytes()
    classifier = load_classifier(model, manifest)
    noise = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    images = [(IMGS / "cat.png").read_bytes(), *(png(x) for x in noise)]
    answers = classifier.predict_many(images)
    assert [a.none_of_these for a in answers] == [False] * len(images)
    assert all("none_of_these" in a.as_dict() for a in answers)


def test_images_scoring_above_the_novelty_threshold_are_none_of_these(
    served_manifest: Path,
) -> None:
    classifier = load(served_manifest)
    cat, flat = (IMGS / "cat.png").read_bytes(), png(np.full((32, 32, 3), 128, np.uint8))
    outputs = classifier.predict_views(np.stack([image_to_array(cat), image_to_array(flat)]))
    cat_score, flat_score = classifier.novelty_scores(outputs)
    assert flat_score > cat_score  # a grey square is further from every category than a cat
    between = (cat_score + flat_score) / 2
    classifier.inference = replace(classifier.inference, novel_above=float(between))
    answers = classifier.predict_many([cat, flat])
    assert [a.none_of_these for a in answers] == [False, True]
    assert answers[1].category in classifier.class_names  # still the closest category


@pytest.mark.parametrize("score", ["energy", "max-logit", "max-probability"])
def test_every_novelty_score_grows_as_the_logits_weaken(score: str) -> None:
    from classifier.core import novelty

    strong = np.array([[9.0, 0.0, 0.0]])
    weak = strong / 9
    scores = novelty(np.vstack([strong, weak]), outputs_kind="logits", score=score, temperature=1)
    assert scores[1] > scores[0]


def test_the_feature_score_grows_as_the_features_weaken_and_as_the_logits_do() -> None:
    from classifier.core import FEATURE_NORM_SCORE, novelty

    def score(logits: np.ndarray, norms: list[float]) -> np.ndarray:
        return novelty(
            logits,
            outputs_kind="logits",
            score=FEATURE_NORM_SCORE,
            temperature=1,
            feature_norms=np.array(norms),
            moments=((-5.0, 2.0), (10.0, 4.0)),
        )

    strong = np.array([[9.0, 0.0, 0.0]] * 2)
    weak_features = score(strong, [12.0, 3.0])
    assert weak_features[1] > weak_features[0]  # same logits, weaker features
    weak_logits = score(np.vstack([strong[:1], strong[:1] / 9]), [12.0, 12.0])
    assert weak_logits[1] > weak_logits[0]  # same features, weaker logits
    with pytest.raises(ValueError, match="needs the model's features output"):
        novelty(strong, outputs_kind="logits", score=FEATURE_NORM_SCORE, temperature=1)


class AnswersOnly(Spy):
    """An interpreter showing only its answers output (a model published without features)."""

    def get_output_details(self) -> list[dict[str, Any]]:
        return [d for d in self.inner.get_output_details() if int(d["shape"][-1]) == 10]


def test_a_manifest_asking_for_the_feature_score_of_a_model_without_features_is_refused(
    served_manifest: Path,
) -> None:
    from classifier.core import FEATURE_NORM_SCORE, Classifier

    served = load(served_manifest)
    inference = replace(
        served.inference, novelty=FEATURE_NORM_SCORE, novelty_moments=((0.0, 1.0), (5.0, 1.0))
    )
    kwargs: dict[str, Any] = {
        "class_names": served.class_names,
        "model_version": "v",
        "runtime": served.runtime,
    }
    with pytest.raises(ModelError, match="needs a features output"):
        Classifier(AnswersOnly(served._interpreter), inference=inference, **kwargs)
    without_moments = replace(inference, novelty_moments=None)
    with pytest.raises(ModelError, match="needs a features output"):
        Classifier(served._interpreter, inference=without_moments, **kwargs)


def test_an_unknown_novelty_score_is_refused_by_name() -> None:
    from classifier.core import novelty

    with pytest.raises(ValueError, match="unknown novelty score 'odd'"):
        novelty(np.zeros((1, 3)), outputs_kind="logits", score="odd", temperature=1)


def png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_unknown_runtime_is_refused_by_name(served_manifest: Path) -> None:
    with pytest.raises(ModelError, match="'onnx' is unknown"):
        load(served_manifest, runtime="onnx")


def test_input_quantisation_is_read_from_the_model(served_manifest: Path) -> None:
    classifier = load(served_manifest)
    details = classifier._interpreter.get_input_details()[0]
    scale, zero_point = details["quantization"]
    assert (classifier.input_quantization.scale, classifier.input_quantization.zero_point) == (
        scale,
        zero_point,
    )
    assert classifier.input_quantization.dtype == "int8"
    recorded = json.loads(served_manifest.read_text())["input"]["quantization"]
    assert recorded == {"scale": scale, "zero_point": zero_point}


def test_the_fed_tensor_uses_the_models_scale_and_zero_point(served_manifest: Path) -> None:
    classifier = load(served_manifest)
    spy = Spy(classifier._interpreter)
    classifier._interpreter = spy
    data = (IMGS / "cat.png").read_bytes()
    classifier.predict(data)
    q = classifier.input_quantization
    expected = np.clip(np.rint(image_to_array(data) / q.scale + q.zero_point), -128, 127)
    (fed,) = spy.fed  # one invoke: every test-time view of the image in one batch
    assert fed.dtype == np.int8 and fed.shape[0] == len(TTA_VIEWS[classifier.inference.tta])
    assert np.array_equal(fed[0], expected.astype(np.int8))
    if fed.shape[0] > 1:
        assert np.array_equal(fed[1], expected[:, ::-1].astype(np.int8))


def test_mirror_averaging_gives_an_image_and_its_mirror_the_same_answer(
    served_manifest: Path,
) -> None:
    classifier = load(served_manifest)
    classifier.inference = replace(classifier.inference, tta="mirror")
    pixels = np.stack([image_to_array(p.read_bytes()) for p in sorted(IMGS.glob("*.png"))])
    averaged = classifier.predict_arrays(pixels)
    assert np.allclose(classifier.predict_arrays(pixels[:, :, ::-1]), averaged, atol=1e-6)


def test_prediction_has_all_classes_summing_to_one(served_manifest: Path) -> None:
    classifier = load(served_manifest)
    prediction = classifier.predict((IMGS / "dog.png").read_bytes())
    assert list(prediction.probabilities) == list(classifier.class_names)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert prediction.category == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.confidence == max(prediction.probabilities.values())
    assert prediction.model_version == json.loads(served_manifest.read_text())["model_version"]


def test_a_batch_gives_the_same_answers_as_one_by_one(served_manifest: Path) -> None:
    classifier = load(served_manifest)
    images = [p.read_bytes() for p in sorted(IMGS.glob("*.png"))]
    together = classifier.predict_many(images)
    alone = [classifier.predict(image) for image in images]
    assert together == alone


def test_a_model_that_differs_from_its_manifest_is_refused(served_manifest: Path) -> None:
    manifest = Manifest.from_bytes(served_manifest.read_bytes())
    model = Path(resolve(str(served_manifest), manifest.model_path)).read_bytes()
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_classifier(model + b"\0", manifest)


def nine_classes(raw: dict[str, Any]) -> None:
    raw["class_names"] = raw["class_names"][:9]


def another_input_shape(raw: dict[str, Any]) -> None:
    raw["input"]["shape"] = [64, 64, 3]


def other_quantisation(raw: dict[str, Any]) -> None:
    raw["input"]["quantization"]["zero_point"] = 0


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (nine_classes, "10 outputs but the manifest names 9 classes"),
        (another_input_shape, "input shape"),
        (other_quantisation, "quantisation"),
    ],
)
def test_a_manifest_that_disagrees_with_its_model_is_refused_naming_what(
    served_manifest: Path, change: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    raw = json.loads(served_manifest.read_text())
    change(raw)
    manifest = Manifest.from_dict(raw)
    model = Path(resolve(str(served_manifest), manifest.model_path)).read_bytes()
    with pytest.raises(ModelError, match=refusal):
        load_classifier(model, manifest)


def test_pixel_arrays_of_the_wrong_shape_are_refused(served_manifest: Path) -> None:
    with pytest.raises(ValueError, match=r"expected \(N, 32, 32, 3\)"):
        load(served_manifest).predict_arrays(np.zeros((2, 28, 28, 3), np.uint8))


def test_predictions_from_many_threads_equal_one_at_a_time(served_manifest: Path) -> None:
    """The API classifies in a thread pool; one interpreter must not be invoked concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    classifier = load(served_manifest)
    images = [p.read_bytes() for p in sorted(IMGS.glob("*.png"))] * 4
    expected = [classifier.predict(data).probabilities for data in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda d: classifier.predict(d).probabilities, images))
    assert together == expected
