"""A labelled image set no CIFAR model has seen: circles, squares and triangles, drawn at random
sizes, colours and places on noisy backgrounds, saved as the mix of files people have (PNG and
JPEG of many sizes, grey, RGBA, 16-bit, EXIF-rotated, upper-case extensions, no extension).

    python -m scripts.make_shapes OUT [--per-label 300] [--seed 0]

OUT/<label>/ folders, one level: `make train DATA=OUT` holds out their test split itself.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABELS = ("circle", "square", "triangle")


def draw(label: str, rng: np.random.Generator) -> Image.Image:
    side = int(rng.choice((48, 64, 96, 160, 240, 320)))
    base = rng.integers(0, 256, 3)
    noise = rng.normal(0, 25, (side, side, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(image)
    size = side * rng.uniform(0.35, 0.7)
    cx, cy = side * rng.uniform(0.35, 0.65, 2)
    colour = tuple(int(c) for c in (base + rng.integers(90, 166, 3)) % 256)
    r = size / 2
    if label == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif label == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
    return image


def save(image: Image.Image, path: Path, kind: int) -> None:
    """One of the file kinds a folder of photos holds."""
    if kind == 0:
        image.save(path.with_suffix(".png"))
    elif kind == 1:
        image.save(path.with_suffix(".JPG"), quality=85)
    elif kind == 2:
        image.convert("L").save(path.with_suffix(".png"))  # grey
    elif kind == 3:
        image.convert("RGBA").save(path.with_suffix(".png"))
    elif kind == 4:
        grey16 = (np.asarray(image.convert("L"), np.uint16) * 257).astype(np.uint16)
        Image.fromarray(grey16).save(path.with_suffix(".png"))  # 16-bit greyscale
    elif kind == 5:
        # Stored rotated, with the EXIF tag that turns it upright again (as phones do).
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(
            path.with_suffix(".jpeg"), quality=90, exif=exif.tobytes()
        )
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        path.write_bytes(buffer.getvalue())  # no extension at all


def make(out: Path, per_label: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in LABELS:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            save(draw(label, rng), folder / f"{label}-{i:04d}", i % 7)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-label", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.out, args.per_label, args.seed)
    print(f"{args.per_label * len(LABELS)} images in {args.out}/{{{','.join(LABELS)}}}/")


if __name__ == "__main__":
    main()
