"""What the training job's stages share: the recipes, and what each stage hands the next.

(Not ``types.py``: SageMaker runs training/sagemaker_entry.py as a script, with training/ first on
the path, where a ``types.py`` would stand in for the standard library's.)

At the bottom of the job: every stage module imports its types from here, and nothing here
imports a stage. TensorFlow is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from training import corrections as fixes


# --------------------------------------------------------------------------------------------
# Hyper-parameters. Two recipes: ours ("default", airbench94's techniques) and the report's.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The network: its kind, widths and layers (report-cnn's own fields last)."""

    architecture: str  # "airbench" (ours) or "report-cnn"
    image_size: int = 32  # the model's input side, in pixels (32 or 64)
    widths: tuple[int, ...] = (64, 256, 256)  # channels of the three blocks (two convs each)
    activation: str = "gelu"
    logit_scale: float = 1 / 9  # the head's output is multiplied by this
    whiten_size: int = 2  # first layer: frozen 2x2 PCA-whitening filters (+ and - each)
    whiten_epsilon: float = 5e-4  # added to the patch covariance's eigenvalues
    whiten_sample: int = 5000  # training images the whitening filters are computed from
    whiten_bias_epochs: int = 3  # its bias trains this many epochs, then is frozen
    dirac_init: bool = True  # convolutions start as identity on their first input channels
    batchnorm_momentum: float = 0.6  # fast: the statistics follow the lookahead's jumps
    batchnorm_epsilon: float = 1e-12
    dense_units: int = 128  # report-cnn's hidden layer
    head_dropout: float = 0.5  # report-cnn's dropout before the output
    dropout: float = 0.0  # report-cnn's dropout after each block


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """How it learns: epochs, batches, precision, the optimiser and its schedule."""

    epochs: int = 12  # passes over the training images
    batch_size: int = 1024  # images per step
    min_batches_per_epoch: int = 8  # small sets: the batch shrinks (to 16 at least) to take these
    precision: str = "auto"  # "float32", "mixed_bfloat16", or "auto" (bf16 where the CPU has it)
    optimizer: str = "sgd"  # "sgd" (Nesterov, airbench's parametrisation) or "adam"
    # SGD in airbench's parametrisation: learning rate and weight decay per 1,024 examples,
    # decoupled from the momentum (changing one does not retune the others).
    learning_rate: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_lr_scale: float = 64.0  # BatchNorm biases learn this much faster (not decayed faster)
    warmup_fraction: float = 0.23  # share of steps rising linearly from lr_start to the peak
    lr_start: float = 0.2  # as a fraction of the peak
    lr_end: float = 0.07  # as a fraction of the peak, reached linearly at the last step
    label_smoothing: float = 0.2
    # Lookahead: every `lookahead_every` steps the weights move to an exponential average of
    # themselves, with a decay rising as lookahead_decay * (step / total) ** lookahead_power.
    lookahead_every: int = 5  # 0: off
    lookahead_decay: float = 0.95**5
    lookahead_power: float = 3.0
    early_stopping_patience: int | None = None  # None: train every epoch, keep the last
    time_budget_minutes: float | None = None  # stop training after this much wall time


@dataclass(frozen=True, kw_only=True)
class Augmentation:
    """What each epoch shows: flips, shifts, photo versions, made-up outliers."""

    augment: str = "flip-translate"  # "flip-translate" or "rotate-zoom-flip" (report)
    flip: str = "alternating"  # "alternating" (each image flipped every other epoch), "random"
    translate_px: int = 2  # max random shift (reflect padding)
    photo_fraction: float = 0.0  # share of images shown as a photo would reach the model
    # Outlier exposure (Hendrycks et al., 2019): this many made-up outliers per training image
    # (training/outliers.py, never an evaluated kind) join the batches with a uniform target, so
    # pictures of none of the categories get weak outputs and a high novelty score.
    outlier_fraction: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Choices:
    """What is held out and chosen on validation, and what the release may accept."""

    seed: int = 0
    validation_fraction: float = 0.1  # of the training images, held out for choices
    calibration_images: int = 500  # training images used to calibrate int8 ranges
    # Test-time views averaged at inference ("none", "mirror", "mirror-translate": six views
    # in one batched invoke) or "auto": the most views that do not lower validation accuracy.
    tta: str = "auto"
    confident_accuracy: float = 0.975  # the doubt threshold keeps this accuracy on validation
    max_int8_loss: float = 0.05  # an int8 model this far below its float model is not published


@dataclass(frozen=True, kw_only=True)
class StartingPoint:
    """Where the weights start: fresh, or a published model's float weights."""

    # Start from a published model's float weights with a new head ("auto": when the smallest
    # label has fewer than init_auto_below training images, the repository's published model).
    init_from: str | None = "auto"
    init_auto_below: int = 300
    fine_tune_lr_scale: float = 0.25  # fine-tuning takes smaller steps from trained weights


@dataclass(frozen=True, kw_only=True)
class Corrections:
    """Refining the served model on reviewers' labels (--corrections)."""

    corrections_repeat: int = 8  # each reviewer's correction is shown this many times an epoch
    # Refining the served model on corrections (same head) takes far smaller steps than
    # adapting it to new labels: at fine_tune_lr_scale a 3-epoch run lost 8 points of validation
    # accuracy in its first epoch (docs/feedback.md).
    corrections_lr_scale: float = 0.05
    # Refining on corrections, the base images' targets blend in the served model's own answers
    # at this weight, so it keeps answering clean images as it did (docs/feedback.md).
    corrections_distill: float = 0.5
    # Refining on corrections, BatchNorm keeps the served model's statistics (inference mode):
    # a few hundred shifted images shown 8 times an epoch would otherwise move the statistics
    # every clean image is normalised with.
    corrections_freeze_batchnorm: bool = False


@dataclass(frozen=True, kw_only=True)
class Distillation:
    """Learning from published models' served answers (training/teachers.py)."""

    # Distillation (training/teachers.py): published models, comma-separated versions (or
    # "<seed>:<version>", for that seed's run only), whose served answers blend into the labels
    # at teacher_weight. Their training is not this run's.
    teachers: str = ""
    teacher_weight: float = 0.5


@dataclass(frozen=True, kw_only=True)
class Recipe(
    Architecture, Schedule, Augmentation, Choices, StartingPoint, Corrections, Distillation
):
    """A whole recipe: its name and description, and each group's fields (a manifest records
    them flat, as ``dataclasses.asdict`` gives them, so every manifest ever written still
    loads)."""

    name: str
    description: str


# Runs without teachers smooth their labels as the field's default does (airbench's); a
# teacher's answers soften them instead.
LABEL_SMOOTHING_WITHOUT_TEACHERS = Recipe.label_smoothing

RECIPES = {
    "default": Recipe(
        name="default",
        description=(
            "airbench94's techniques in Keras (Keller Jordan) at airbench95's width and length: "
            "frozen 2x2 PCA-whitening first layer, three blocks of two GELU convolutions "
            "(128/384/384) with dirac init and fast "
            "BatchNorm without scale, logits scaled by 1/9; Nesterov SGD in decoupled per-1024 "
            "units with 64x learning rate on BatchNorm biases, lookahead; soft targets from the "
            "published wide model of the same seed (distillation; label smoothing 0.2 where no "
            "teacher applies), "
            "alternating flip and 2 px translation, a quarter of the images as photos arrive; "
            "six test-time views; 10% held out for validation, temperature and doubt threshold "
            "fitted on it."
        ),
        architecture="airbench",
        # airbench95's width, learning rate and epochs, chosen on validation (docs/training.md)
        widths=(128, 384, 384),
        learning_rate=10.0,
        epochs=15,
        photo_fraction=0.25,  # chosen on validation (docs/training.md); every seed trained so
        # Distillation, chosen on validation (docs/training.md): each seed learns from the
        # published wide model of its own seed (the one that held out its split), in place of
        # label smoothing. Other seeds, data or labels: no teacher, labels smoothed by 0.2.
        teachers=("0:20261204-210408-default-b32d4c78,1:20261204-220138-default-874e1624"),
        teacher_weight=1.0,
        label_smoothing=0.0,
    ),
    "report": Recipe(
        name="report",
        description=(
            "The original report's recipe: ~350K-parameter CNN (conv+ReLU+max-pool+dropout+dense), "
            "rotation/zoom/flip augmentation, Adam, categorical cross-entropy on one-hot labels, "
            "20% validation split, EarlyStopping(val_loss, patience 10, restore_best_weights)."
        ),
        architecture="report-cnn",
        widths=(32, 64, 128),
        activation="relu",
        epochs=51,
        batch_size=64,
        precision="float32",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        lookahead_every=0,
        augment="rotate-zoom-flip",
        flip="random",
        validation_fraction=0.2,
        early_stopping_patience=10,
        dropout=0.25,
        tta="none",
        init_from=None,
    ),
}


# --------------------------------------------------------------------------------------------
# What the stages hand each other
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    """The splits a run uses, and what identifies the data set in a manifest."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    name: str  # the data set's name, never this machine's path
    fingerprint: str
    limit: int | None
    split: str = "given"  # how the test split came about
    skipped: int = 0  # files that did not decode
    corrections: fixes.Corrections | None = None  # reviewers' labels (--corrections)
    base_train: int | None = None  # with corrections: the first this many are the data set's


@dataclass
class Trained:
    model: Any
    history: dict[str, list[float]]
    resumed_from: Path | None = None


@dataclass
class Export:
    run_dir: Path
    version: str
    stamp: datetime
    tflite: bytes
    served: Any  # the float model as served (with flip averaging when chosen)
    inference: dict[str, Any]
    sizes: dict[str, float]
