"""Draw docs/lifecycle.png: how a model goes from a training job to users, and back.

python -m research.draw_lifecycle
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
BLUE, VIOLET, AMBER, GREEN, RED = "#dbeafe", "#e0e7ff", "#fef3c7", "#dcfce7", "#fee2e2"
STEPS = [
    ("make train-cloud", "SageMaker training job\nTF 2.19 container,\ntraining/ unchanged", BLUE),
    ("candidate", "models/<version>/\nverified as served,\nnever latest", VIOLET),
    ("make promote", "gate: vs the current\nmodel, same held-out\nimages, -0.2 pt at most", AMBER),
    ("latest moves", "promotion record,\nthen models/latest\n(verified, last)", GREEN),
    ("cdk deploy", "ModelVersion parameter:\nnew Lambda versions\npinned to the model", GREEN),
    (
        "CodeDeploy canary",
        "new version checked,\nthen 10% for 5 min,\nthen 100% (live alias)",
        GREEN,
    ),
]
ALARMS = "alarms on the new\nversion: errors, p99,\nAPI 5xx, mean\nconfidence, rejections"
ROLLBACK = (
    "an alarm fires:\nlive shifts back at once\n(old versions kept)\n\n"
    "make rollback: latest and\nfunctions to the previous"
)


def arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **style: str) -> None:
    options: dict[str, Any] = {"arrowstyle": "-|>", "color": "#334155", **style}
    ax.add_patch(FancyArrowPatch(start, end, mutation_scale=12, **options))


def box(ax: Axes, x: float, y: float, w: float, h: float, fill: str, edge: str) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=fill, ec=edge, lw=1))


def main() -> None:
    fig, ax = plt.subplots(figsize=(12, 4.2), dpi=110)
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    width, height, y = 1.8, 1.3, 2.4
    xs = [0.1 + i * 1.98 for i in range(len(STEPS))]
    for x, (title, text, colour) in zip(xs, STEPS):
        box(ax, x, y, width, height, colour, "#334155")
        centre = x + width / 2
        ax.text(centre, y + height - 0.25, title, ha="center", va="top", weight="bold", fontsize=9)
        ax.text(centre, y + 0.48, text, ha="center", va="center", fontsize=7.6)
    for a, b in itertools.pairwise(xs):
        arrow(ax, (a + width, y + height / 2), (b, y + height / 2))
    gate, canary = xs[2] + width / 2, xs[5] + width / 2
    arrow(ax, (gate, y), (gate, 1.85), color="#b91c1c")
    refused = "worse? refused:\nexit 1, latest untouched"
    ax.text(gate, 1.55, refused, ha="center", va="center", fontsize=8, color="#b91c1c")
    box(ax, xs[5], 0.35, width, 1.15, RED, "#b91c1c")
    ax.text(canary, 0.92, ALARMS, ha="center", va="center", fontsize=7.2)
    arrow(ax, (canary, y), (canary, 1.55), arrowstyle="<|-|>", color="#b91c1c")
    ax.text(xs[4] + width / 2, 0.92, ROLLBACK, ha="center", va="center", fontsize=7.2,
            color="#b91c1c")  # fmt: skip
    arrow(ax, (xs[5], 0.92), (xs[4] + width + 0.02, 0.92), color="#b91c1c")
    title = "A model's way to users: cloud training, promotion gate, canary rollout, rollback"
    ax.set_title(title, fontsize=11)
    out = ROOT / "docs" / "lifecycle.png"
    fig.savefig(out, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
