"""training/data.py: CIFAR-10's batches or anyone's labelled folders, decoded once and cached; bad
folders refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import (
    run_python,
)
from training import data as cifar


# --- data sources -------------------------------------------------------------------------------
def test_folder_and_python_batches_give_the_same_arrays(
    synthetic_data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path))
    x_train, y_train, _, y_test = synthetic_data["arrays"]
    from_batches, _ = cifar.load(str(synthetic_data["batches"]))
    from_folder, _ = cifar.load(str(synthetic_data["folder"]))
    for dataset in (from_batches, from_folder):
        assert dataset.class_names == cifar.CIFAR10_CLASSES
        assert dataset.x_train.shape == (400, 32, 32, 3) and dataset.x_train.dtype == np.uint8
        assert dataset.x_test.shape == (100, 32, 32, 3)
    # The folder is listed class by class; the batches keep their order: compare as sets.
    order = np.lexsort((from_folder.y_train,))
    assert sorted(map(bytes, from_folder.x_train)) == sorted(map(bytes, x_train))
    assert np.array_equal(np.bincount(from_folder.y_train[order]), np.bincount(y_train))
    assert np.array_equal(from_batches.x_train, x_train) and np.array_equal(
        from_batches.y_test, y_test
    )


def test_the_second_load_comes_from_the_cache(
    synthetic_data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path))
    first, cached_first = cifar.load(str(synthetic_data["folder"]))
    second, cached_second = cifar.load(str(synthetic_data["folder"]))
    assert (cached_first, cached_second) == (False, True)
    assert first.fingerprint == second.fingerprint
    assert list(tmp_path.glob("cifar10-*.npz"))


def test_a_folder_that_cannot_make_a_model_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(cifar.DataError, match="has 0 label folder"):
        cifar.load(str(tmp_path))
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(cifar.DataError, match="only one of train/ and test/"):
        cifar.load(str(tmp_path))
    with pytest.raises(cifar.DataError, match="is not a folder"):
        cifar.load(str(tmp_path / "nope"))


@pytest.mark.slow
def test_keras_offline_fails_naming_the_other_sources(tmp_path: Path) -> None:
    done = run_python(
        "-m",
        "training.train",
        "--data",
        "keras",
        "--epochs",
        "1",
        KERAS_HOME=str(tmp_path),
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
    )
    assert done.returncode != 0
    assert "keras.datasets.cifar10 could not be downloaded" in done.stderr
    assert "cifar-10-batches-py" in done.stderr and "train/<class>/" in done.stderr
