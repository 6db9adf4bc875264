"""training/augmentation.py: alternating flips (every image mirrored every other epoch) and
translations by reflection, uint8 in and out, the same for the same seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.augmentation import Augmenter, translate
from training.job_types import RECIPES


def test_alternating_flip_mirrors_each_image_every_other_epoch() -> None:
    recipe = replace(RECIPES["default"], translate_px=0)
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    augmenter = Augmenter(recipe, x, None)
    even, odd = augmenter.epoch(0), augmenter.epoch(1)
    for i in range(len(x)):
        mirrored = np.array_equal(even[i], x[i, :, ::-1])
        assert mirrored != np.array_equal(even[i], x[i])
        assert np.array_equal(odd[i], x[i] if mirrored else x[i, :, ::-1])


def test_translation_shifts_by_at_most_its_pad_and_keeps_the_type() -> None:
    x = np.zeros((64, 8, 8, 3), np.uint8)
    x[:, 4, 4] = 255  # one bright pixel in the middle
    moved = translate(x, 2, np.random.default_rng(0))
    assert moved.shape == x.shape and moved.dtype == np.uint8
    for image in moved:
        (ys, xs) = np.nonzero(image[..., 0])
        assert abs(int(ys[0]) - 4) <= 2 and abs(int(xs[0]) - 4) <= 2
    assert len({np.nonzero(image[..., 0])[0][0] for image in moved}) > 1  # not all the same
