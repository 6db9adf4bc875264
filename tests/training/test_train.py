"""The training job, quickly: synthetic data, a tiny net, eight epochs (the `tiny_run` fixture).

TensorFlow runs only in subprocesses here; this process checks the results with the serving runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import (
    PLOTS,
    ROOT,
    run_python,
    subprocess_env,
)


def test_help_lists_the_options() -> None:
    done = run_python("-m", "training.train", "--help")
    assert done.returncode == 0
    for option in ("--data", "--recipe", "--upload", "--epochs", "--time-budget"):
        assert option in done.stdout


# --- one tiny run -------------------------------------------------------------------------------
def test_the_run_prints_a_line_per_stage(tiny_run: dict[str, Any]) -> None:
    for stage in ("prepare", "build", "train", "quantise", "evaluate", "publish", "done"):
        assert "] " in tiny_run["stdout"] and f"{stage:>8}]" in tiny_run["stdout"]


def test_the_run_shows_its_own_lines_not_tensorflows_start_up_noise(
    tiny_run: dict[str, Any],
) -> None:
    screen = tiny_run["stdout"] + tiny_run["stderr"]
    for noise in (
        "cuInit",
        "cuda drivers",
        "absl::InitializeLog",
        "oneDNN",
        "shuffle=True",
        "Saved artifact",
        "Statistics for quantized inputs",
        "tf.lite.Interpreter is deprecated",
        "fully_quantize",
        "XNNPACK",
    ):
        assert noise not in screen, noise
    own = [line for line in screen.splitlines() if line.startswith("[")]
    assert len(own) >= 7


def test_the_run_folder_has_models_manifest_metrics_and_plots(tiny_run: dict[str, Any]) -> None:
    run_dir = Path(tiny_run["run_dir"])
    names = {p.name for p in run_dir.iterdir()}
    assert {"model.keras", "model.h5", "model.tflite", "manifest.json", "metrics.json"} <= names
    assert "backup" not in names  # the resumable state goes once training is done
    for plot in PLOTS:
        with Image.open(run_dir / plot) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_the_tiny_model_learned_the_synthetic_classes(tiny_run: dict[str, Any]) -> None:
    metrics = json.loads((Path(tiny_run["run_dir"]) / "metrics.json").read_text())
    assert metrics["int8_test_accuracy"] > 0.3  # chance is 0.1


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_reports_every_epoch_and_its_whole_time(
    tmp_path: Path, synthetic_data: dict[str, Any]
) -> None:
    """A run longer than a session: killed after a few epochs, finished by ``--resume``."""
    import os
    import signal
    import time

    out, published = tmp_path / "runs", tmp_path / "published"
    common = ["--upload", str(published), "--tta", "none"]
    data = ["--data", str(synthetic_data["batches"])]
    tiny = ["--epochs", "40", "--widths", "8,16,16", "--batch-size", "16", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-m", "training.train", *data, *tiny, *common],
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(tmp_path / "cache")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    epochs = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list(out.glob("*/epochs.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 3:
            epochs = found[0]
            break
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert epochs is not None, "the first session never logged three epochs"
    before = [json.loads(line) for line in epochs.read_text().splitlines()]
    assert len(before) < 40

    done = run_python("-m", "training.train", "--resume", str(epochs.parent), *common, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "before resuming" in done.stdout
    manifest = json.loads((published / "models" / "latest" / "manifest.json").read_text())
    assert manifest["metrics"]["epochs_run"] == 40
    history = json.loads((epochs.parent / "history.json").read_text())
    assert len(history["loss"]) == 40
    # The first session's epochs count in the training time (its last one may have been killed
    # before its backup, and then ran again).
    first_session = sum(r["seconds"] for r in before[:-1])
    assert manifest["stage_seconds"]["train"] >= first_session
