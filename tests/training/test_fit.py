"""training/fit.py: learning corrections with BatchNorm frozen leaves the served model's
statistics as they were; a diverged run stops at once (TensorFlow runs in a subprocess; this
process never imports it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_python, subprocess_env

FREEZE_CHECK = """
import json
from dataclasses import replace
import numpy as np
from training.tensorflow_quiet import import_tensorflow
import_tensorflow(0)
import keras
from training import network
from training.fit import freeze_batchnorm
from training.job_types import RECIPES
recipe = replace(RECIPES["default"], widths=(8, 16, 16), precision="float32")
x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3)).astype(np.float32)
model = network.build_model(recipe, x.astype(np.uint8), 3)
norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
before = [np.array(l.moving_mean) for l in norms]
freeze_batchnorm(model)
model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(x, np.eye(3)[np.arange(64) % 3], epochs=1, batch_size=32, verbose=0)
after = [np.array(l.moving_mean) for l in norms]
print(json.dumps({
    "layers": len(norms),
    "frozen": all(not l.trainable for l in norms),
    "unchanged": all(np.array_equal(a, b) for a, b in zip(before, after)),
}))
"""


@pytest.mark.slow
def test_frozen_batchnorm_keeps_the_served_models_statistics() -> None:
    done = run_python("-c", FREEZE_CHECK, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"layers": 6, "frozen": True, "unchanged": True}


@pytest.mark.slow
def test_a_diverged_run_stops_at_once_and_fails_by_name(
    synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    """A learning rate that overflows makes the loss NaN: the run stops in its first epoch and
    says so, instead of training on for all its epochs and failing later."""
    command = [sys.executable, "-m", "training.train", "--data", str(synthetic_data["batches"])]
    command += ["--epochs", "5", "--widths", "8,16,16", "--batch-size", "16", "--tta", "none"]
    command += ["--out", str(tmp_path / "runs"), "--set", "learning_rate=1e30"]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "error: training diverged: the loss is nan in epoch 1" in done.stderr + done.stdout
