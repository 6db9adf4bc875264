"""Your own labels: one-level <label>/ folders of mixed images train a model that answers with
those labels everywhere; folders that cannot make a model are refused in seconds, by name."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scripts.make_shapes import LABELS, make
from tests.conftest import ROOT, subprocess_env
from training import data as cifar


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 images per label, every file kind, plus a file that is not an image."""
    folder = make(tmp_path_factory.mktemp("shapes") / "set", per_label=30)
    (folder / LABELS[0] / "notes.txt").write_text("not an image")
    return folder


def test_one_level_folders_get_a_stratified_held_out_test_split(shapes: Path) -> None:
    dataset = cifar.load_folder(shapes, workers=1)
    assert dataset.class_names == LABELS
    assert dataset.x_train.shape[1:] == (32, 32, 3) and dataset.x_train.dtype == np.uint8
    # 20% of each label, the same whatever the training seed; nothing in both splits
    assert np.bincount(dataset.y_test).tolist() == [6, 6, 6]
    assert np.bincount(dataset.y_train).tolist() == [24, 24, 24]
    assert "20% of each label, seed 0" in dataset.split
    assert len(dataset.skipped) == 1 and "notes.txt" in dataset.skipped[0]
    train = {bytes(x) for x in dataset.x_train}
    assert not [x for x in dataset.x_test if bytes(x) in train]


def test_any_size_and_kind_decodes_at_the_chosen_input_size(shapes: Path) -> None:
    dataset = cifar.load_folder(shapes, workers=1, size=64)
    assert dataset.x_train.shape[1:] == (64, 64, 3)
    assert len(dataset.y_train) + len(dataset.y_test) == 90  # png, JPG, grey, RGBA, 16-bit,
    # EXIF-rotated and extension-less files all count


def folder_of(tmp_path: Path, counts: dict[str, int]) -> Path:
    from PIL import Image

    for label, n in counts.items():
        (tmp_path / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (40, 40), (i, 0, 0)).save(tmp_path / label / f"{i}.png")
    return tmp_path


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"only": 20}, "has 1 label folder(s) (only); a classifier needs at least 2"),
        ({"kitty": 20, "puppy": 4}, "'puppy' has 4; each label needs at least 10"),
        ({"kitty": 20, " puppy": 20}, "no leading or trailing spaces"),
        ({"kitty": 20, "p" * 65: 20}, "use 1 to 64 printable characters"),
        ({"kitty": 20, "a:b": 20}, "no path characters"),
    ],
)
def test_folders_that_cannot_make_a_model_say_what_to_fix(
    tmp_path: Path, counts: dict[str, int], message: str
) -> None:
    with pytest.raises(cifar.DataError, match=re.escape(message)):
        cifar.load_folder(folder_of(tmp_path, counts), workers=1)


def test_a_label_short_of_readable_images_is_refused_after_skipping(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, {"kitty": 12, "puppy": 12})
    for i in range(3):
        (folder / "puppy" / f"broken{i}.png").write_bytes(b"\x89PNG broken")
        (folder / "puppy" / f"{i}.png").write_bytes(b"not a png either")
    with pytest.raises(cifar.DataError, match=r"readable images.*'puppy' has 9"):
        cifar.load_folder(folder, workers=1)


def test_the_training_cli_refuses_a_bad_folder_in_seconds_before_training(tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "set", {"kitty": 20, "puppy": 3})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(folder), "--out", str(tmp_path)],
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "'puppy' has 3; each label needs at least 10" in done.stderr
    assert time.monotonic() - started < 30
    assert "tensorflow" not in done.stderr.lower()  # it stopped before building anything
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no run folder, no cache entry


@pytest.fixture(scope="module")
def shapes_run(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The training CLI on the label set (a small net, few epochs: what is checked is the flow)."""
    out, published = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("published")
    done = subprocess.run(
        [
            sys.executable, "-m", "training.train", "--data", str(shapes), "--epochs", "4",
            "--widths", "8,16,16", "--init-from", "none", "--out", str(out),
            "--upload", str(published),
        ],
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(tmp_path_factory.mktemp("cache"))),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"stdout": done.stdout, "manifest": published / "models" / "latest" / "manifest.json"}


@pytest.mark.slow
def test_the_first_screen_says_how_the_test_split_was_made(shapes_run: dict[str, Any]) -> None:
    out = shapes_run["stdout"]
    assert "of 3 labels (circle, square, triangle)" in out
    assert "no test/ folder: test held out: 20% of each label, seed 0" in out
    assert "skipped 1 file(s) that do not decode" in out and "notes.txt" in out


@pytest.mark.slow
def test_the_served_model_answers_with_the_folders_labels_everywhere(
    shapes_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifier import service
    from classifier.api import asgi
    from fastapi.testclient import TestClient

    from scripts.make_shapes import draw

    manifest = json.loads(shapes_run["manifest"].read_text())
    assert manifest["class_names"] == list(LABELS)
    assert manifest["data"]["test_split"].startswith("test held out: 20% of each label")
    assert manifest["data"]["skipped_files"] == 1
    monkeypatch.setenv("MODEL_URI", str(shapes_run["manifest"]))
    service.reset()
    try:
        client = TestClient(asgi)  # the app as served: routers built on first use
        buffer = io.BytesIO()
        draw("square", np.random.default_rng(5)).save(buffer, format="PNG")
        sent = {"file": ("square.png", buffer.getvalue())}
        answer = client.post("/predict", files=sent).json()
        assert set(answer["probabilities"]) == set(LABELS) and answer["category"] in LABELS
        assert "3 categories: circle, square, triangle" in client.get("/").text
        schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictionOut"]
        assert schema["properties"]["category"]["enum"] == list(LABELS)
        assert client.get("/model").json()["class_names"] == list(LABELS)
    finally:
        service.reset()


@pytest.mark.slow
def test_fine_tuning_starts_from_a_published_models_float_weights_with_a_new_head(
    shapes: Path, tiny_run: dict[str, Any], tmp_path: Path
) -> None:
    (published,) = [
        p for p in (Path(tiny_run["published"]) / "models").iterdir() if p.name != "latest"
    ]
    assert (published / "model.keras").is_file()  # published beside the int8 model
    done = subprocess.run(
        [
            sys.executable, "-m", "training.train", "--data", str(shapes), "--epochs", "1",
            "--widths", "8,16,16", "--init-from", str(published), "--out", str(tmp_path),
        ],
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"from the float weights of {published}, new head" in done.stdout
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name != "cache"]
    recipe = json.loads((run_dir / "manifest.json").read_text())["recipe"]
    assert recipe["init_from"] == str(published) and recipe["whiten_bias_epochs"] == 0
    compared = subprocess.run(
        [sys.executable, "-c", COMPARE, *(str(p / "model.keras") for p in (published, run_dir))],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-2000:]
    found = json.loads(compared.stdout.strip().splitlines()[-1])
    # The frozen whitening starts (and stays) where the published model ended; the head is new:
    # three outputs, not ten.
    assert found == {"whiten_equal": True, "head_outputs": [10, 3]}


COMPARE = """
import json, sys, numpy as np, keras
from training.network import custom_layers
custom_layers()
source, tuned = (keras.models.load_model(p, compile=False) for p in sys.argv[1:3])
print(json.dumps({
    "whiten_equal": bool(np.allclose(source.get_layer("whiten").get_weights()[0],
                                     tuned.get_layer("whiten").get_weights()[0])),
    "head_outputs": [m.get_layer("head").get_weights()[0].shape[-1] for m in (source, tuned)],
}))
"""
