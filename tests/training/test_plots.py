"""training/plots.py: the figures a run and the feedback loop draw are real PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("matplotlib", reason="matplotlib comes with the train extra (make train)")


def test_before_and_after_names_the_shift_it_drew(tmp_path: Path) -> None:
    from training.plots import before_after

    figures = {
        "shift": "faded_warm",
        "labelled": 10,
        "captured": 20,
        "sent": 40,
        "faded_warm_test": {"before": 0.6, "after": 0.8},
        "clean_test": {"before": 0.9, "after": 0.9},
    }
    out = tmp_path / "before-after.png"
    before_after(figures, out)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 400


def test_training_curves_draw_every_epoch(tmp_path: Path) -> None:
    from training.plots import training_curves

    out = tmp_path / "curves.png"
    history = {"loss": [2.0, 1.0], "val_loss": [2.1, 1.2], "accuracy": [0.3, 0.6]}
    history["val_accuracy"] = [0.3, 0.5]
    training_curves(history, out, title="tiny")
    with Image.open(out) as img:
        assert img.format == "PNG"
