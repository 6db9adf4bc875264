"""training/photos.py: each image as a photo would reach the model (enlarged, JPEG, reduced by
the serving code), and photo-sized files of each kind."""

from __future__ import annotations

import numpy as np
from PIL import Image

from training import photos


def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def test_photo_versions_keep_shape_and_stay_close_to_the_originals() -> None:
    x = images()
    versions = photos.photo_versions(x, seed=0)
    assert versions.shape == x.shape and versions.dtype == np.uint8
    assert not np.array_equal(versions, x)
    smooth = np.repeat(np.repeat(x[:, ::8, ::8], 8, axis=1), 8, axis=2)  # little detail to lose
    close = photos.photo_versions(smooth, seed=0)
    assert np.abs(close.astype(int) - smooth).mean() < 12


def test_enlarged_jpegs_are_photo_sized_jpegs() -> None:
    (jpeg,) = photos.enlarged_jpegs(images()[:1], side=256)
    import io

    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG" and img.size == (256, 256)
