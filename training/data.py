"""CIFAR-10 loading without TensorFlow: image folders, the official python batches, or Keras.

Every source becomes the same four uint8/int arrays (x_train, y_train, x_test, y_test), with
images decoded by the serving core's :func:`classifier.core.image_to_array`, the very function
the Lambdas use. Decoded arrays are cached (outside the data folder, which may be read-only) so a
second run starts in seconds.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from classifier.core import image_to_array

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CACHE_VERSION = "1"


class DataError(RuntimeError):
    """The data source is missing, malformed or unreachable; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    y_train: np.ndarray  # (N,) int64 class index
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def fingerprint(self) -> str:
        """sha256 over the decoded pixels and labels: two runs saw the same data iff equal."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(",".join(self.class_names).encode())
        return digest.hexdigest()


def cache_dir() -> Path:
    root = os.environ.get("CIFAR10_CACHE") or Path.home() / ".cache" / "cifar10-serverless"
    return Path(root)


def _decode_file(path: str) -> np.ndarray:
    return image_to_array(Path(path).read_bytes())


def _list_split(root: Path, split: str) -> tuple[list[Path], list[int], tuple[str, ...]]:
    split_dir = root / split
    classes = tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir()))
    if not classes:
        raise DataError(f"{split_dir} has no class sub-folders; expected {split}/<class>/*.jpg")
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(
            p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        files += found
        labels += [index] * len(found)
    return files, labels, classes


def _decode_all(files: Iterable[Path], workers: int) -> np.ndarray:
    paths = [str(p) for p in files]
    if workers <= 1 or len(paths) < 2000:
        arrays = [_decode_file(p) for p in paths]
    else:
        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(_decode_file, paths, chunksize=500))
    return np.stack(arrays) if arrays else np.zeros((0, 32, 32, 3), np.uint8)


def _folder_key(root: Path) -> str:
    """A cheap identity for a folder of images: paths, sizes and mtimes of every file."""
    digest = hashlib.sha256(f"folder:{CACHE_VERSION}:{root.resolve()}".encode())
    for split in ("train", "test"):
        for path in sorted((root / split).rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(
                    f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
                )
    return digest.hexdigest()[:20]


def load_folder(root: Path, workers: int | None = None) -> Dataset:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (class = sorted folder names)."""
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataError(f"{root} must contain train/<class>/ and test/<class>/ folders")
    workers = workers or os.cpu_count() or 1
    train_files, train_labels, classes = _list_split(root, "train")
    test_files, test_labels, test_classes = _list_split(root, "test")
    if test_classes != classes:
        raise DataError(f"train classes {classes} differ from test classes {test_classes}")
    return Dataset(
        x_train=_decode_all(train_files, workers),
        y_train=np.asarray(train_labels, np.int64),
        x_test=_decode_all(test_files, workers),
        y_test=np.asarray(test_labels, np.int64),
        class_names=classes,
        source=str(root),
    )


def _unpickle(path: Path) -> dict[bytes, object]:
    with path.open("rb") as f:
        return pickle.load(f, encoding="bytes")  # noqa: S301 - the official CIFAR-10 format


def load_python_batches(root: Path) -> Dataset:
    """The official ``cifar-10-batches-py`` folder (data_batch_1..5, test_batch, batches.meta)."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"{root} is missing CIFAR-10 python batches: {', '.join(missing)}")

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        batch = _unpickle(root / name)
        data = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(data), np.asarray(batch[b"labels"], np.int64)

    train = [read(n) for n in names[:5]]
    x_test, y_test = read("test_batch")
    classes = CIFAR10_CLASSES
    if (root / "batches.meta").is_file():
        meta = _unpickle(root / "batches.meta")
        classes = tuple(n.decode() for n in meta[b"label_names"])  # type: ignore[attr-defined]
    return Dataset(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
        class_names=classes,
        source=str(root),
    )


def load_keras() -> Dataset:
    """``keras.datasets.cifar10`` (downloads once; imports TensorFlow)."""
    try:
        from keras.datasets import cifar10

        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    except Exception as exc:
        raise DataError(
            f"keras.datasets.cifar10 could not be downloaded ({type(exc).__name__}: {exc}). "
            "Offline, pass --data a folder with train/<class>/ and test/<class>/ images "
            "(such as ../shared/datasets/cifar10-jpeg) or an official cifar-10-batches-py folder."
        ) from exc
    return Dataset(
        x_train=x_train.astype(np.uint8),
        y_train=y_train.reshape(-1).astype(np.int64),
        x_test=x_test.astype(np.uint8),
        y_test=y_test.reshape(-1).astype(np.int64),
        class_names=CIFAR10_CLASSES,
        source="keras",
    )


def load(source: str, *, use_cache: bool = True) -> tuple[Dataset, bool]:
    """Load a data set by ``--data`` value; returns it and whether it came from the cache."""
    if source == "keras":
        return load_keras(), False
    root = Path(source)
    if not root.is_dir():
        raise DataError(
            f"--data {source!r} is not a folder; pass a folder with train/ and test/ class "
            "sub-folders, a cifar-10-batches-py folder, or 'keras'"
        )
    is_batches = (root / "data_batch_1").is_file()
    key = (
        hashlib.sha256(f"batches:{CACHE_VERSION}:{root.resolve()}".encode()).hexdigest()[:20]
        if is_batches
        else _folder_key(root)
    )
    cached = cache_dir() / f"cifar10-{key}.npz"
    if use_cache and cached.is_file():
        with np.load(cached) as z:
            names = tuple(str(n) for n in z["class_names"])
            return Dataset(
                z["x_train"], z["y_train"], z["x_test"], z["y_test"], names, str(root)
            ), True
    dataset = load_python_batches(root) if is_batches else load_folder(root)
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            x_train=dataset.x_train,
            y_train=dataset.y_train,
            x_test=dataset.x_test,
            y_test=dataset.y_test,
            class_names=np.asarray(dataset.class_names),
        )
        tmp.replace(cached)
    return dataset, False


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random hold-out of ``fraction`` of the training images (never the test split)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = round(len(x) * fraction)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]
