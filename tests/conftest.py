"""Shared fixtures: sample events, a tiny trained model, fake AWS credentials, moto.

TensorFlow never enters this process: the tiny model is trained by the real training CLI in a
subprocess (tflite-runtime cannot run in a process that imported TensorFlow).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classifier.settings import REPO_MODEL
from PIL import Image

from training.data import CIFAR10_CLASSES

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
IMGS = ROOT / "imgs"
DATASET = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"
PUBLISHED = REPO_MODEL
CLASSES = CIFAR10_CLASSES


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `make invoke` uses)."""
    return dict(json.loads((EVENTS / name).read_text()))


def subprocess_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


def run_python(*args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """``python <args>`` from the repository root, its output captured (not checked)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# The plots a training run draws into its folder (and publishes with the model).
PLOTS = (
    "augmentations.png",
    "training_curves.png",
    "confusion_matrix.png",
    "examples.png",
    "reliability.png",
    "risk_coverage.png",
)


def run_cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    """``python <args>`` from the repository root as a user runs it (own data cache); fails the
    test with the command's last output if it fails."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=subprocess_env(CIFAR10_CACHE=str(cache)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def run_on_synthetic(
    module: str, data: dict[str, Any], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> --data <the synthetic CIFAR-10 batches> <args>``, as run_cli runs it."""
    return run_cli(["-m", module, "--data", str(data["batches"]), *args], tmp_path / "cache")


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake CIFAR-10: each class has its own colour and stripe direction, plus noise."""
    palette = np.random.default_rng(0).integers(30, 226, size=(10, 3))  # same for every split
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((n, 32, 32, 3), np.uint8)
    for i, label in enumerate(labels):
        stripes = ((xx * (label % 3) + yy * (label // 3 % 3) + i) % 8 < 4)[..., None] * 40
        noise = rng.normal(0, 12, size=(32, 32, 3))
        images[i] = np.clip(palette[label] + stripes + noise, 0, 255)
    return images, labels


def write_python_batches(
    root: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Path:
    """The official cifar-10-batches-py layout (5 training batches, a test batch, the meta)."""
    root.mkdir(parents=True, exist_ok=True)

    def dump(name: str, x: np.ndarray, y: np.ndarray) -> None:
        data = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with (root / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": [int(v) for v in y]}, f)

    for i, (xs, ys) in enumerate(zip(np.array_split(x_train, 5), np.array_split(y_train, 5))):
        dump(f"data_batch_{i + 1}", xs, ys)
    dump("test_batch", x_test, y_test)
    with (root / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f)
    return root


def write_folder(
    root: Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    fmt: str = "PNG",
) -> Path:
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (image, label) in enumerate(zip(xs, ys)):
            folder = root / split / CLASSES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:04d}.{fmt.lower()}", fmt)
    return root


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    x_train, y_train = synthetic_images(400, seed=1)
    x_test, y_test = synthetic_images(100, seed=2)
    root = tmp_path_factory.mktemp("data")
    return {
        "arrays": (x_train, y_train, x_test, y_test),
        "batches": write_python_batches(
            root / "cifar-10-batches-py", x_train, y_train, x_test, y_test
        ),
        "folder": write_folder(root / "folder", x_train, y_train, x_test, y_test),
    }


@pytest.fixture(scope="session")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, synthetic_data: dict[str, Any]
) -> dict[str, Any]:
    """A real run of the training CLI: tiny net, synthetic data, eight epochs, published locally."""
    out = tmp_path_factory.mktemp("runs")
    published = tmp_path_factory.mktemp("published")
    cache = tmp_path_factory.mktemp("cache")
    command = [
        sys.executable,
        "-m",
        "training.train",
        "--data",
        str(synthetic_data["batches"]),
        "--epochs",
        "8",
        "--widths",
        "8,16,16",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--upload",
        str(published),
        "--tta",
        "mirror",
    ]
    env = subprocess_env(CIFAR10_CACHE=str(cache))
    env.pop("TF_CPP_MIN_LOG_LEVEL")  # as a user runs it: the job quiets TensorFlow itself
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return {
        "run_dir": run_dir,
        "published": published,
        "manifest": published / "models" / "latest" / "manifest.json",
        "stdout": done.stdout,
        "stderr": done.stderr,
    }


@pytest.fixture(scope="session")
def tiny_manifest(tiny_run: dict[str, Any]) -> Path:
    return Path(tiny_run["manifest"])


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


SERVED = REPO_MODEL


@pytest.fixture(scope="session")
def served_manifest() -> Path:
    """The repository's published model, as `make serve` and a first deploy serve it: the
    unit and functional tests run on it, with no training first."""
    return SERVED


@pytest.fixture
def use_model(monkeypatch: pytest.MonkeyPatch, served_manifest: Path) -> Iterator[Path]:
    """Point MODEL_URI at the served model and reset the container's cached objects around."""
    from classifier import service

    monkeypatch.setenv("MODEL_URI", str(served_manifest))
    service.reset()
    yield served_manifest
    service.reset()


# Fixtures that train TensorFlow: a test that uses one is slow, whatever its module.
TRAINING_FIXTURES = {"tiny_run", "tiny_manifest"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _no_tensorflow_here() -> Iterator[None]:
    yield
    assert "tensorflow" not in sys.modules, "a test imported TensorFlow into the serving process"
