"""Data loading without TensorFlow: labelled image folders, the CIFAR-10 python batches, Keras.

Folders come in two layouts: ``train/<label>/`` + ``test/<label>/`` (as CIFAR-10's JPEG copy), or
just ``<label>/`` folders, from which a stratified test split is held out (seeded, recorded).
Every source becomes the same four uint8/int arrays (x_train, y_train, x_test, y_test), with
images of any size and format the API accepts decoded by the serving core's
:func:`classifier.core.image_to_array`, the very function the Lambdas use, at the model's input
size. Files that do not decode are listed and skipped; a folder that cannot make a model (fewer
than two labels, a label with too few images, a label name that cannot be a category) is refused
before anything trains. Decoded arrays are cached (outside the data folder, which may be
read-only) so a second run starts in seconds.
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
from classifier.contract import IMAGE_FORMATS
from classifier.core import IMAGE_SIZE, image_to_array

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
IMAGE_SUFFIXES = {suffix for _, suffixes in IMAGE_FORMATS.values() for suffix in suffixes}
CACHE_VERSION = "2"
MIN_IMAGES_PER_LABEL = 10  # a test image, validation images and enough to train on
MAX_LABEL_CHARS = 64
TEST_FRACTION = 0.2  # of each label, held out as the test split of a one-level folder
SPLIT_SEED = 0  # the held-out test split is the same whatever the training seed


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
    split: str = "given"  # "given" (train/ and test/) or how the test split was held out
    skipped: tuple[str, ...] = ()  # files that did not decode, with why

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


def _decode_file(path: str, size: int = IMAGE_SIZE) -> np.ndarray | str:
    """The image's pixels, or why it cannot be read (a file is skipped, not fatal)."""
    try:
        return image_to_array(Path(path).read_bytes(), size=size)
    except Exception as exc:  # noqa: BLE001 - any undecodable file is reported and skipped
        return f"{type(exc).__name__}: {exc}"


def label_folders(folder: Path) -> list[Path]:
    """The label sub-folders of ``folder`` (hidden ones, such as .ipynb_checkpoints, ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_labels(names: list[str], where: Path) -> None:
    """Refuse label names that cannot be a category, and fewer than two labels."""
    if len(names) < 2:
        raise DataError(
            f"{where} has {len(names)} label folder(s) ({', '.join(names) or 'none'}); a "
            "classifier needs at least 2: one sub-folder of images per label"
        )
    for name in names:
        if not name.strip() or len(name) > MAX_LABEL_CHARS or not name.isprintable():
            raise DataError(
                f"label folder {name!r} in {where} cannot be a category: use 1 to "
                f"{MAX_LABEL_CHARS} printable characters"
            )
        if any(c in name for c in '/\\:*?"<>|') or name != name.strip():
            raise DataError(
                f"label folder {name!r} in {where} cannot be a category: no path characters "
                '(/ \\ : * ? " < > |) and no leading or trailing spaces'
            )


def _list_labelled(folder: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Every (non-hidden) file under each label folder, and its label; the content decides what
    an image is, as in the drop folder, so `IMG_1.JPG` and names without a suffix count."""
    labels = label_folders(folder)
    check_labels([p.name for p in labels], folder)
    files, indices = [], []
    for index, label in enumerate(labels):
        found = sorted(p for p in label.rglob("*") if p.is_file() and not p.name.startswith("."))
        files += found
        indices += [index] * len(found)
    return files, indices, tuple(p.name for p in labels)


def _check_counts(labels: np.ndarray, names: tuple[str, ...], where: Path, what: str) -> None:
    counts = np.bincount(labels, minlength=len(names))
    short = [f"{n!r} has {c}" for n, c in zip(names, counts) if c < MIN_IMAGES_PER_LABEL]
    if short:
        raise DataError(
            f"too few {what} in {where}: {'; '.join(short)}; each label needs at least "
            f"{MIN_IMAGES_PER_LABEL}"
        )


def _decode_all(
    files: Iterable[Path], workers: int, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, list[int], list[str]]:
    """The decoded images, the indices of the files they came from, and the files skipped."""
    paths = [str(p) for p in files]
    if workers <= 1 or len(paths) < 500:
        decoded = [_decode_file(p, size) for p in paths]
    else:
        with ProcessPoolExecutor(workers) as pool:
            decoded = list(pool.map(_decode_file, paths, [size] * len(paths), chunksize=100))
    kept = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    skipped = [f"{paths[i]}: {d}" for i, d in enumerate(decoded) if isinstance(d, str)]
    arrays = [decoded[i] for i in kept]
    images = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return images, kept, skipped


def _folder_key(root: Path, size: int) -> str:
    """A cheap identity for a folder of images at an input size: paths, sizes and mtimes."""
    digest = hashlib.sha256(f"folder:{CACHE_VERSION}:{size}:{root.resolve()}".encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def load_folder(root: Path, workers: int | None = None, size: int = IMAGE_SIZE) -> Dataset:
    """``root/train/<label>/`` and ``root/test/<label>/``, or ``root/<label>/`` with a test split
    held out (labels = sorted folder names)."""
    workers = workers or os.cpu_count() or 1
    if not (root / "train").is_dir() and not (root / "test").is_dir():
        return load_labelled(root, workers, size)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataError(
            f"{root} has only one of train/ and test/: give both (train/<label>/ and "
            "test/<label>/), or neither (just <label>/ folders; a test split is held out)"
        )
    train_files, train_labels, classes = _list_labelled(root / "train")
    test_files, test_labels, test_classes = _list_labelled(root / "test")
    if test_classes != classes:
        raise DataError(f"train labels {classes} differ from test labels {test_classes}")
    _check_counts(np.asarray(train_labels), classes, root / "train", "files")
    x_train, kept_train, skipped_train = _decode_all(train_files, workers, size)
    x_test, kept_test, skipped_test = _decode_all(test_files, workers, size)
    y_train = np.asarray(train_labels, np.int64)[kept_train]
    _check_counts(y_train, classes, root / "train", "readable images")
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=np.asarray(test_labels, np.int64)[kept_test],
        class_names=classes,
        source=str(root),
        skipped=tuple(skipped_train + skipped_test),
    )


def load_labelled(root: Path, workers: int, size: int = IMAGE_SIZE) -> Dataset:
    """``root/<label>/`` folders: a stratified, seeded share of each label held out as test."""
    files, labels, names = _list_labelled(root)
    _check_counts(np.asarray(labels, np.int64), names, root, "files")
    x, kept, skipped = _decode_all(files, workers, size)
    y = np.asarray(labels, np.int64)[kept]
    _check_counts(y, names, root, "readable images")
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(y), bool)
    for label in range(len(names)):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: max(1, round(len(members) * TEST_FRACTION))]] = True
    return Dataset(
        x_train=x[~test],
        y_train=y[~test],
        x_test=x[test],
        y_test=y[test],
        class_names=names,
        source=str(root),
        split=f"test held out: {TEST_FRACTION:.0%} of each label, seed {SPLIT_SEED}",
        skipped=tuple(skipped),
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


def load(source: str, *, use_cache: bool = True, size: int = IMAGE_SIZE) -> tuple[Dataset, bool]:
    """Load a data set by ``--data`` value at input ``size``; returns it and whether it came
    from the cache."""
    if source == "keras":
        return load_keras(), False
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(
            f"--data {source!r} is not a folder; pass a folder of <label>/ sub-folders (or "
            "train/<label>/ and test/<label>/), a cifar-10-batches-py folder, or 'keras'"
        )
    is_batches = (root / "data_batch_1").is_file()
    if is_batches and size != IMAGE_SIZE:
        raise DataError(f"the CIFAR-10 python batches are 32x32; --image-size {size} needs images")
    key = (
        hashlib.sha256(f"batches:{CACHE_VERSION}:{root.resolve()}".encode()).hexdigest()[:20]
        if is_batches
        else _folder_key(root, size)
    )
    cached = cache_dir() / f"cifar10-{key}.npz"
    if use_cache and cached.is_file():
        with np.load(cached) as z:
            names = tuple(str(n) for n in z["class_names"])
            return Dataset(
                z["x_train"],
                z["y_train"],
                z["x_test"],
                z["y_test"],
                names,
                str(root),
                split=str(z["split"]),
                skipped=tuple(str(s) for s in z["skipped"]),
            ), True
    dataset = load_python_batches(root) if is_batches else load_folder(root, size=size)
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
            split=np.asarray(dataset.split),
            skipped=np.asarray(dataset.skipped, dtype=str),
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


def subsample(x: np.ndarray, y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a class-balanced shuffle (quick runs and tests)."""
    if not n or n >= len(x):
        return x, y
    order = np.random.default_rng(0).permutation(len(x))[:n]
    return x[order], y[order]
