"""docs/architecture.png: the house, each folder a box, an arrow where one imports the other.

    python -m research.draw_architecture [--out docs/architecture.png]

The arrows are read from the code itself (every import, function-local ones included), so the
picture cannot drift from it; the boxes stand on floors, each above what it imports.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (folder, caption, floor, column): a box above everything it imports.
ROOMS = {
    "classifier/contract.py": ("the road's facts: keys, routes, names", 0, 1.8),
    "classifier": ("serving: pure core, FastAPI, drop folder", 1, 0.4),
    "training": ("the TensorFlow job: data to a run folder", 2, 1.3),
    "release": ("TensorFlow-free: evaluate, calibrate, publish, gate", 3, 1.3),
    "infra": ("one CDK app: stack, components, rollout", 1, 3.3),
    "scripts": ("demo, client, benchmarks", 4, 0.4),
    "research": ("measurements behind the docs", 4, 2.6),
}


def room_of(path: Path) -> str | None:
    relative = path.relative_to(ROOT).as_posix()
    if relative == "functions/classifier/contract.py":
        return "classifier/contract.py"
    if relative.startswith("functions/classifier/"):
        return "classifier"
    top = relative.split("/")[0]
    return top if top in ROOMS else None


def target_of(module: str) -> str | None:
    if module == "classifier.contract" or module.startswith("classifier.contract."):
        return "classifier/contract.py"
    top = module.split(".")[0]
    return top if top in ROOMS else None


def arrows() -> Counter[tuple[str, str]]:
    """(importer, imported) -> how many imports, between different rooms."""
    found: Counter[tuple[str, str]] = Counter()
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in ("tests", ".venv", "runs") or "cdk.out" in parts:
            continue
        source = room_of(path)
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            targets = {target_of(name) for name in names} - {None, source}
            if "classifier/contract.py" in targets and len(targets) > 1:
                targets.discard("classifier")  # `from classifier import contract`
            for target in targets:
                found[(source, str(target))] += 1
    return found


def draw(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(11, 7.5))
    ax.set_xlim(-0.6, 4.1)
    ax.set_ylim(-0.6, 4.7)
    ax.axis("off")
    width, height = 1.45, 0.6
    centre = {name: (column, floor) for name, (_, floor, column) in ROOMS.items()}
    for name, (caption, floor, column) in ROOMS.items():
        box = FancyBboxPatch(
            (column - width / 2, floor - height / 2),
            width,
            height,
            boxstyle="round,pad=0.04",
            facecolor="#e8f0fc" if name != "classifier/contract.py" else "#fdf2d0",
            edgecolor="#1d5fbf",
        )
        ax.add_patch(box)
        label = name if "." in name else f"{name}/"
        ax.text(column, floor + 0.1, label, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(column, floor - 0.13, caption, ha="center", va="center", fontsize=7.5)
    for (source, target), count in sorted(arrows().items()):
        (x1, y1), (x2, y2) = centre[source], centre[target]
        upward = y2 > y1
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1 - height / 2 if not upward else y1 + height / 2),
                (x2, y2 + height / 2 if not upward else y2 - height / 2),
                arrowstyle="-|>",
                mutation_scale=12,
                color="#a4161a" if upward else "#444444",
                linewidth=0.8 + 0.15 * min(count, 10),
                connectionstyle="arc3,rad=0.0",
                alpha=0.75,
            )
        )
    ax.set_title(
        "The house: a box per folder on floors, an arrow where one imports another "
        "(read from the code; red would run back up)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="research/draw_architecture.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png")
    args = parser.parse_args(argv)
    for (source, target), count in sorted(arrows().items()):
        print(f"{source} -> {target}: {count} imports")
    draw(args.out)
    print(f"drew {args.out}")


if __name__ == "__main__":
    main()
