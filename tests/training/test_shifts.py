"""training/shifts.py: each shift keeps the images' shape and type, changes them, and is the same
every time (the feedback loop measures before and after on the same shifted images)."""

from __future__ import annotations

import numpy as np
import pytest

from training import shifts


def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(shifts.SHIFTS))
def test_each_shift_changes_the_images_and_always_the_same_way(name: str) -> None:
    x = images()
    shifted = shifts.SHIFTS[name](x)
    assert shifted.shape == x.shape and shifted.dtype == np.uint8
    assert not np.array_equal(shifted, x)
    assert np.array_equal(shifts.SHIFTS[name](x), shifted)


def test_grey_and_dark_is_grey_and_darker() -> None:
    x = images()
    shifted = shifts.grey_and_dark(x)
    assert np.array_equal(shifted[..., 0], shifted[..., 2])
    assert shifted.mean() < 0.5 * x.mean()


def test_as_png_gives_images_a_client_would_send() -> None:
    (png,) = shifts.as_png(images()[:1])
    assert png.startswith(b"\x89PNG")
