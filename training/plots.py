"""The training job's pictures (matplotlib only; no TensorFlow)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def training_curves(history: dict[str, list[float]], path: Path, *, title: str = "") -> None:
    """Loss and accuracy per epoch, training and validation."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], label=f"train {label}")
        ax.plot(epochs, history[f"val_{key}"], label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Training curves {title}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix of the int8 model on the test split."""
    rates = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}" if matrix[i, j] else "",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    accuracy = np.trace(matrix) / max(1, matrix.sum())
    ax.set_title(f"int8 model, test split: accuracy {accuracy:.2%}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def examples(
    x: np.ndarray,
    y: np.ndarray,
    predicted: np.ndarray,
    names: Sequence[str],
    path: Path,
    *,
    count: int = 32,
    seed: int = 0,
) -> None:
    """A grid of test images labelled predicted / true, mistakes in red."""
    picks = np.random.default_rng(seed).choice(len(x), size=min(count, len(x)), replace=False)
    cols = 8
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), picks):
        ok = predicted[i] == y[i]
        ax.imshow(x[i], interpolation="nearest")
        ax.set_title(
            f"{names[predicted[i]]}\n({names[y[i]]})", fontsize=8, color="black" if ok else "red"
        )
    fig.suptitle("int8 predictions on test images: predicted (true); mistakes in red")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def augmentations(
    x: np.ndarray, augment: Callable[[Any], Any], path: Path, label: str, *, variants: int = 5
) -> None:
    """Each row: an original training image, then random augmentations of it."""
    fig, axes = plt.subplots(len(x), variants + 1, figsize=((variants + 1) * 1.3, len(x) * 1.3))
    batch = x.astype(np.float32)
    columns = [batch] + [np.asarray(augment(batch)) for _ in range(variants)]
    for row in range(len(x)):
        for col, images in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(np.clip(images[row], 0, 255).astype(np.uint8), interpolation="nearest")
            ax.axis("off")
            if row == 0:
                ax.set_title("original" if col == 0 else f"augmented {col}", fontsize=8)
    fig.suptitle(f"Training augmentations: {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
