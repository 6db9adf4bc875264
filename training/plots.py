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


def reliability(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagram on the test split: accuracy per confidence bin, before and after the
    temperature, against the diagonal a calibrated model follows."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    test = calibration["test"]
    for key, label in (
        ("before", "as trained"),
        ("after", f"temperature {calibration['temperature']:g}"),
    ):
        rows = [r for r in test[key]["bins"] if r["count"]]
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label=f"{label} (ECE {test[key]['ece']:.1%})",
        )
    ax.set_xlabel("confidence shown")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability on the test split (15 bins)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def risk_coverage(calibration: dict[str, Any], path: Path) -> None:
    """Accuracy of the answers kept against the share kept, most confident first; the doubt
    threshold chosen on validation marked."""
    test = calibration["test"]
    curve = np.asarray(test["risk_coverage"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(curve[:, 0], curve[:, 1], label="test split")
    ax.axhline(
        calibration["target_confident_accuracy"],
        color="grey",
        linestyle=":",
        label=f"target {calibration['target_confident_accuracy']:.1%}",
    )
    ax.plot(
        [test["coverage"]],
        [test["confident_accuracy"]],
        "o",
        color="C3",
        label=f"threshold {calibration['unsure_below']:.2f}: {test['coverage']:.1%} sure, "
        f"{test['confident_accuracy']:.2%} right",
    )
    ax.set_xlabel("share of answers not flagged unsure (coverage)")
    ax.set_ylabel("accuracy of those answers")
    ax.set_ylim(max(0.5, float(curve[:, 1].min()) - 0.01), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def novelty_histograms(
    inside: np.ndarray,
    kinds: dict[str, np.ndarray],
    threshold: float,
    score: str,
    path: Path,
) -> None:
    """The novelty score of the test split against each kind of outlier, with the threshold."""
    names = list(kinds)
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    every = np.concatenate([inside, *kinds.values()])
    bins = np.linspace(np.percentile(every, 0.5), np.percentile(every, 99.5), 60)
    for ax, name in zip(axes.flat, names):
        ax.hist(inside, bins=bins, density=True, alpha=0.6, label="CIFAR-10 test")
        ax.hist(kinds[name], bins=bins, density=True, alpha=0.6, label=name)
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        flagged = float((kinds[name] > threshold).mean())
        ax.set_title(f"{name}: {flagged:.0%} flagged", fontsize=10)
        ax.set_yticks([])
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"novelty score ({score}); right of the dashed line: none of these", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def before_after(figures: dict[str, Any], path: Path) -> None:
    """The feedback demo's accuracies before and after learning from the corrections."""
    shift = figures.get("shift", "grey_and_dark")
    kinds = [
        (f"{shift}_test", f"{shift.replace('_', ' ')} (test split)"),
        ("clean_test", "clean test split"),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(kinds))
    for offset, when, colour in ((-0.18, "before", "#9ca3af"), (0.18, "after", "#1d5fbf")):
        values = [100 * figures[k][when] for k, _ in kinds]
        bars = ax.bar(x + offset, values, width=0.36, label=when, color=colour)
        ax.bar_label(bars, fmt="%.1f%%", fontsize=9)
    ax.set_xticks(x, [label for _, label in kinds])
    ax.set_ylim(50, 100)
    ax.set_ylabel("int8 accuracy as served (%)")
    ax.legend(loc="lower right")
    ax.set_title(
        f"{figures['labelled']} corrections of {figures['captured']} captured unsure answers "
        f"({figures['sent']} {shift.replace('_', ' ')} validation images sent)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
