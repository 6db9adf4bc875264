"""Each epoch's training images: alternating flips, translations and photo versions (airbench's,
in NumPy), outliers with uniform targets, and the report's Keras augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from training.progress import log

if TYPE_CHECKING:
    from training.job_types import Recipe


class Augmenter:
    """The training images of one epoch: flipped (alternating or random), translated, and, for
    a share of them, their photo version. uint8 in, uint8 out; NumPy only, so it is cheap."""

    def __init__(self, recipe: Recipe, x: np.ndarray, photos: np.ndarray | None) -> None:
        self.recipe, self.x, self.photos = recipe, x, photos
        self.rng = np.random.default_rng(recipe.seed)
        # Alternating flip: a random half starts mirrored, then every image flips each epoch.
        self.first_flip = self.rng.random(len(x)) < 0.5

    def epoch(self, epoch: int) -> np.ndarray:
        recipe, rng = self.recipe, self.rng
        images = self.x
        if self.photos is not None and recipe.photo_fraction > 0:
            use = rng.random(len(images)) < recipe.photo_fraction
            images = np.where(use[:, None, None, None], self.photos, images)
        if recipe.flip == "alternating":
            flip = self.first_flip ^ bool(epoch % 2)
        elif recipe.flip == "random":
            flip = rng.random(len(images)) < 0.5
        else:
            flip = np.zeros(len(images), bool)
        self.flipped = flip  # which images this epoch shows mirrored (for their soft targets)
        images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        return translate(images, recipe.translate_px, rng)


def translate(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by up to ``pad`` pixels each way (reflect padding)."""
    if pad <= 0:
        return images
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    shifts = rng.integers(0, 2 * pad + 1, size=(len(images), 2))
    out = np.empty_like(images)
    for dy in range(2 * pad + 1):  # one slice per shift: (2 pad + 1)^2 vectorised copies
        for dx in range(2 * pad + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[chosen] = padded[chosen, dy : dy + size, dx : dx + size]
    return out


def batches(
    recipe: Recipe,
    x: np.ndarray,
    y: np.ndarray,
    photos: np.ndarray | None,
    soft: np.ndarray | None = None,
) -> Any:
    """The training batches: each epoch's augmented images in a fresh random order. ``soft``
    (images x 2 x classes: as they are, mirrored) are targets to blend with the labels at the
    recipe's ``teacher_weight`` (teachers' answers: distillation) or ``corrections_distill``
    weight (the served model's own answers, when it learns from corrections)."""
    import keras

    n_classes = int(y.max()) + 1
    one_hot = np.eye(n_classes, dtype=np.float32)[y]
    weight = recipe.teacher_weight if recipe.teachers else recipe.corrections_distill
    weight = weight if soft is not None else 0.0
    augmenter = Augmenter(recipe, x, photos)
    outliers = None
    if recipe.outlier_fraction > 0:
        from training.outliers import training_outliers

        count = max(1, int(len(x) * recipe.outlier_fraction))
        outliers = training_outliers(count, recipe.seed, x, x.shape[1])
        log("build", f"outlier exposure: {count} made-up outliers, uniform targets")
    per_batch = round(recipe.batch_size * recipe.outlier_fraction)
    uniform = np.full((per_batch, n_classes), 1 / n_classes, np.float32)

    class EpochBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-len(x) // recipe.batch_size)

        def on_epoch_end(self) -> None:
            self.images = augmenter.epoch(self.epoch)
            self.order = augmenter.rng.permutation(len(x))
            self.epoch += 1

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            chosen = self.order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            images, targets = self.images[chosen], one_hot[chosen]
            if soft is not None and weight > 0:
                served = soft[chosen, augmenter.flipped[chosen].astype(int)]
                targets = (1 - weight) * targets + weight * served
            if outliers is not None and per_batch:
                extra = augmenter.rng.choice(
                    len(outliers), per_batch, replace=len(outliers) < per_batch
                )
                images = np.concatenate([images, outliers[extra]])
                targets = np.concatenate([targets, uniform])
            return images.astype(np.float32), targets

    return EpochBatches()


def report_augmenter() -> Any:
    """The report's rotation, zoom and flip (Keras layers), for its recipe and its plot."""
    import keras

    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(0.1, fill_mode="reflect"),
            keras.layers.RandomZoom(0.1, fill_mode="reflect"),
            keras.layers.RandomFlip("horizontal"),
        ],
        name="augment",
    )
    return lambda images: layers(images, training=True)


def report_batches(recipe: Recipe, x: np.ndarray, y: np.ndarray) -> Any:
    import tensorflow as tf

    augment = report_augmenter()
    one_hot = np.eye(int(y.max()) + 1, dtype=np.float32)
    return (
        tf.data.Dataset.from_tensor_slices((x, one_hot[y]))
        .shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
        .map(lambda a, b: (augment(tf.cast(a, tf.float32)), b), num_parallel_calls=2)
        .prefetch(2)
    )
