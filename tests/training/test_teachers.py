"""Distillation: teachers answer as the serving code does, and a run learns from them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from classifier.core import softmax
from classifier.manifest import Manifest
from classifier.runtime import load_classifier

from tests.conftest import CLASSES, PUBLISHED, run_on_synthetic
from training import train as t
from training.teachers import teacher_answers


def served_logits(run_dir: Path, x: np.ndarray) -> np.ndarray:
    """One view's logits through the serving classifier (no test-time views)."""
    manifest = Manifest.from_bytes((run_dir / "manifest.json").read_bytes())
    classifier = load_classifier((run_dir / "model.tflite").read_bytes(), manifest)
    classifier.inference = replace(classifier.inference, tta="none")
    return classifier.predict_outputs(x)


@pytest.mark.slow
def test_the_teachers_targets_are_their_served_answers_on_both_sides_averaged(
    tiny_run: dict[str, Any], synthetic_data: dict[str, Any]
) -> None:
    x, y = synthetic_data["arrays"][0][:64], synthetic_data["arrays"][1][:64]
    run_dir = tiny_run["run_dir"]
    soft = teacher_answers(f"{run_dir},{run_dir}", x, y)  # two teachers (the same one twice)
    expected = softmax((served_logits(run_dir, x) + served_logits(run_dir, x[:, :, ::-1])) / 2)
    assert soft.shape == (64, 2, 10)
    np.testing.assert_allclose(soft[:, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(soft[:, 0], soft[:, 1])  # either side gets the 2-view answer


@pytest.mark.slow
def test_a_run_with_a_teacher_asks_it_and_records_it(
    tiny_run: dict[str, Any], synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    tiny = ("--epochs", "2", "--widths", "8,16,16", "--batch-size", "16", "--tta", "mirror")
    teacher = ("--set", f"teachers={tiny_run['run_dir']}", "--set", "max_int8_loss=1")
    out = ("--out", str(tmp_path / "runs"))
    done = run_on_synthetic("training.train", synthetic_data, tmp_path, *tiny, *teacher, *out)
    assert f"soft targets: 1 teacher(s) ({tiny_run['run_dir'].name})" in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    recipe = json.loads((run_dir / "manifest.json").read_text())["recipe"]
    assert recipe["teachers"] == str(tiny_run["run_dir"])
    assert recipe["teacher_weight"] == t.RECIPES["default"].teacher_weight
    assert recipe["label_smoothing"] == 0.0  # the teacher's answers soften the labels instead


def test_a_teacher_that_is_not_a_model_folder_is_refused(tmp_path: Path) -> None:
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(SystemExit, match=r"teacher 'no-such-model': no manifest\.json"):
        teacher_answers("no-such-model", x, np.zeros(2, int))


TEACHER = json.loads(PUBLISHED.read_text())
CIFAR = TEACHER["data"]["fingerprint_sha256"]  # the data set the published model learnt


def adapted(
    teachers: str,
    class_names: tuple[str, ...],
    corrections: Any = None,
    fingerprint: str = CIFAR,
    seed: int = TEACHER["recipe"]["seed"],
) -> t.Recipe:
    """The default recipe with these teachers, as a run on this data resolves it."""
    data: Any = SimpleNamespace(
        x_train=np.zeros((45000, 1), np.uint8),
        y_train=np.arange(45000) % len(class_names),
        x_val=np.zeros((5000, 1), np.uint8),
        class_names=class_names,
        corrections=corrections,
        fingerprint=fingerprint,
    )
    recipe = replace(t.options([])[1], teachers=teachers, label_smoothing=0.0, seed=seed)
    return t.adapt(recipe, data)


def test_teachers_with_the_students_data_and_split_teach_and_others_are_dropped() -> None:
    teacher = TEACHER["model_version"]
    kept = adapted(teacher, tuple(CLASSES))
    assert kept.teachers == teacher and kept.label_smoothing == 0.0
    for dropped in (
        adapted(teacher, tuple(CLASSES), fingerprint="0" * 64),  # other images, same labels
        adapted(teacher, tuple(CLASSES), seed=TEACHER["recipe"]["seed"] + 1),  # it saw validation
        adapted(" , ", tuple(CLASSES)),  # none named
        adapted(teacher, ("cats", "dogs")),  # someone's own labels
        adapted("no-such-model", tuple(CLASSES)),  # not here
    ):
        assert dropped.teachers == ""
        assert dropped.label_smoothing == t.LABEL_SMOOTHING_WITHOUT_TEACHERS
    # Learning corrections, the served model's own answers soften the labels instead.
    learning = adapted(teacher, tuple(CLASSES), corrections=object())
    assert learning.teachers == "" and learning.label_smoothing == 0.0


@pytest.mark.slow
def test_a_teacher_named_for_a_seed_teaches_that_seeds_run_only() -> None:
    """Each seed's student learns from the teacher that held out its own split."""
    teacher, seed = TEACHER["model_version"], TEACHER["recipe"]["seed"]
    teachers = f"{seed}:{teacher},{seed + 1}:no-such-model"
    kept = adapted(teachers, tuple(CLASSES), seed=seed)
    assert kept.teachers == teacher and kept.label_smoothing == 0.0
    for other in (seed + 1, seed + 2):  # its teacher is not here; no teacher for it
        dropped = adapted(teachers, tuple(CLASSES), seed=other)
        assert dropped.teachers == ""
        assert dropped.label_smoothing == t.LABEL_SMOOTHING_WITHOUT_TEACHERS
