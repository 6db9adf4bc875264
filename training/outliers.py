"""Pictures of none of the categories, made here (no download), to measure ``none_of_these``.

Each kind is a function ``(n, seed) -> list of images as PNG bytes`` at a size a person would send
(96 to 256 pixels), so the serving code reduces them as it does any upload. The kinds are split
by use, and the split is recorded with every figure:

* ``CHOOSE``: the kinds the novelty score's form was chosen on (noise, flat colours, shapes);
* ``EVALUATE``: kinds nothing was chosen on (digits, text, textures, gradients, line drawings);
* ``OUTSIDE``: scikit-image's bundled sample photographs (moon, text page, microscope slides, a
  star field, coins, ...), held back as an outside check, never trained or chosen on. Its
  pictures of a CIFAR category (the cat "chelsea" and "cat", the horse silhouette, the
  motorcycle) are left out: they are not outliers.

The threshold itself is fitted on the validation split's in-distribution images only.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Kind = Callable[[int, int], list[bytes]]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _side(rng: np.random.Generator) -> int:
    return int(rng.integers(96, 257))


def noise(n: int, seed: int) -> list[bytes]:
    """Uniform and Gaussian colour noise, some of it blurred."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = _side(rng)
        if i % 2:
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        else:
            pixels = np.clip(rng.normal(128, 60, (side, side, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if i % 3 == 0:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 6))))
        out.append(_png(image))
    return out


def flat_colours(n: int, seed: int) -> list[bytes]:
    """One colour filling the picture, with a little sensor noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        side = _side(rng)
        colour = rng.integers(0, 256, 3)
        pixels = colour + rng.normal(0, 3, (side, side, 3))
        out.append(_png(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))))
    return out


def shapes(n: int, seed: int) -> list[bytes]:
    """A few filled circles, rectangles and triangles on a plain background."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        side = _side(rng)
        image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = (int(v) for v in rng.integers(0, side * 3 // 4, 2))
            size = int(rng.integers(side // 8, side // 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            box = (x0, y0, x0 + size, y0 + size)
            shape = int(rng.integers(3))
            if shape == 0:
                draw.ellipse(box, fill=colour)
            elif shape == 1:
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon(
                    [(x0, y0 + size), (x0 + size, y0 + size), (x0 + size // 2, y0)], colour
                )
        out.append(_png(image))
    return out


def digits(n: int, seed: int) -> list[bytes]:
    """scikit-learn's bundled handwritten digits (8x8, grey), enlarged, in light or dark ink."""
    from sklearn.datasets import load_digits

    images = load_digits().images  # 0..16
    rng = np.random.default_rng(seed)
    out = []
    for index in rng.choice(len(images), n, replace=n > len(images)):
        grey = (images[index] / 16 * 255).astype(np.uint8)
        if rng.random() < 0.5:
            grey = 255 - grey  # dark ink on white paper, as scanned
        side = _side(rng)
        out.append(_png(Image.fromarray(grey).resize((side, side), Image.Resampling.BILINEAR)))
    return out


WORDS = (
    "invoice total due",
    "chapter one",
    "the quick brown fox",
    "SALE 50% OFF",
    "lorem ipsum",
    "meeting at 10:30",
    "EXIT",
    "def main():",
    "Dear Sir or Madam",
    "page 12 of 40",
)


def text(n: int, seed: int) -> list[bytes]:
    """Lines of text in black or colour on paper-like backgrounds."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        side = _side(rng)
        paper = tuple(int(v) for v in rng.integers(200, 256, 3))
        image = Image.new("RGB", (side, side), paper)
        draw = ImageDraw.Draw(image)
        size = int(rng.integers(10, 28))
        font = ImageFont.load_default(size=size)
        y = int(rng.integers(0, side // 6))
        while y < side:
            ink = tuple(int(v) for v in rng.integers(0, 120, 3))
            draw.text((int(rng.integers(0, 12)), y), str(rng.choice(WORDS)), fill=ink, font=font)
            y += int(size * rng.uniform(1.2, 2.0))
        out.append(_png(image))
    return out


def textures(n: int, seed: int) -> list[bytes]:
    """Stripes, checkerboards, dots and plaid at random frequencies, angles and colours."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = _side(rng)
        yy, xx = np.mgrid[0:side, 0:side] / side
        angle = rng.uniform(0, np.pi)
        frequency = rng.uniform(4, 30)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        pattern = i % 4
        if pattern == 0:
            level = np.sin(2 * np.pi * frequency * u) > 0
        elif pattern == 1:
            level = (np.floor(frequency * u) + np.floor(frequency * v)) % 2 == 0
        elif pattern == 2:
            level = np.hypot(frequency * u % 1 - 0.5, frequency * v % 1 - 0.5) < 0.3
        else:
            level = (np.sin(2 * np.pi * frequency * u) + np.sin(2 * np.pi * frequency * v)) > 0.5
        a, b = rng.integers(0, 256, (2, 3))
        pixels = np.where(level[..., None], a, b).astype(np.uint8)
        out.append(_png(Image.fromarray(pixels)))
    return out


def gradients(n: int, seed: int) -> list[bytes]:
    """Linear and radial colour gradients."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = _side(rng)
        yy, xx = np.mgrid[0:side, 0:side] / side
        if i % 2:
            t = np.hypot(xx - rng.random(), yy - rng.random())
        else:
            angle = rng.uniform(0, 2 * np.pi)
            t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(1e-6, float(np.ptp(t)))
        a, b = rng.integers(0, 256, (2, 3))
        pixels = a + (b - a) * t[..., None]
        out.append(_png(Image.fromarray(pixels.astype(np.uint8))))
    return out


def line_drawings(n: int, seed: int) -> list[bytes]:
    """Random strokes and scribbles on white, like a sketch or a diagram."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        side = _side(rng)
        image = Image.new("RGB", (side, side), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 15))):
            points = [tuple(int(v) for v in p) for p in rng.integers(0, side, (4, 2))]
            ink = tuple(int(v) for v in rng.integers(0, 100, 3))
            draw.line(points, fill=ink, width=int(rng.integers(1, 5)))
        out.append(_png(image))
    return out


# CIFAR categories among scikit-image's samples: not outliers, left out.
IN_CATEGORY_SAMPLES = ("cat", "chelsea", "horse", "stereo_motorcycle")


def sample_photographs(n: int, seed: int) -> list[bytes]:
    """scikit-image's bundled sample pictures (the outside check), as whole pictures and crops."""
    import skimage.data

    pictures = []
    for name in sorted(skimage.data.__all__):
        if name in IN_CATEGORY_SAMPLES:
            continue
        try:
            array = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001, S112 (some need an optional download: skipped)
            continue
        if array.ndim not in (2, 3) or min(array.shape[:2]) < 64:
            continue
        if array.dtype != np.uint8:
            array = array.astype(np.float64)
            array = (255 * (array - array.min()) / max(1e-9, float(np.ptp(array)))).astype(np.uint8)
        pictures.append(Image.fromarray(array).convert("RGB"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        picture = pictures[i % len(pictures)]
        width, height = picture.size
        if i < len(pictures):  # each picture whole first, then random crops
            out.append(_png(picture))
            continue
        side = int(rng.integers(min(width, height) // 3, min(width, height) + 1))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        out.append(_png(picture.crop((x, y, x + side, y + side))))
    return out


CHOOSE: dict[str, Kind] = {"noise": noise, "flat colours": flat_colours, "shapes": shapes}
EVALUATE: dict[str, Kind] = {
    "digits": digits,
    "text": text,
    "textures": textures,
    "gradients": gradients,
    "line drawings": line_drawings,
}
OUTSIDE: dict[str, Kind] = {"scikit-image photos": sample_photographs}
KINDS: dict[str, Kind] = {**CHOOSE, **EVALUATE, **OUTSIDE}
USE = {
    **dict.fromkeys(CHOOSE, "chosen on"),
    **dict.fromkeys(EVALUATE, "evaluated"),
    **dict.fromkeys(OUTSIDE, "outside check"),
}


def scrambled(n: int, seed: int, images: np.ndarray) -> list[bytes]:
    """In-category images with their structure destroyed: pixels shuffled, or 4x4 tiles swapped
    (a training-only kind: the colours and textures of real photos, none of their objects)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(images), n, replace=n > len(images)):
        pixels = images[i].copy()
        side = pixels.shape[0]
        if rng.random() < 0.5:
            flat = pixels.reshape(-1, 3)
            pixels = flat[rng.permutation(len(flat))].reshape(pixels.shape)
        else:
            tile = side // 4
            tiles = [
                pixels[r : r + tile, c : c + tile]
                for r in range(0, side, tile)
                for c in range(0, side, tile)
            ]
            order = rng.permutation(len(tiles))
            rows = [
                np.concatenate([tiles[k] for k in order[j : j + 4]], axis=1)
                for j in range(0, 16, 4)
            ]
            pixels = np.concatenate(rows, axis=0)
        out.append(_png(Image.fromarray(pixels)))
    return out


def training_outliers(n: int, seed: int, images: np.ndarray, size: int) -> np.ndarray:
    """Outliers to train on (outlier exposure): the "chosen on" kinds and scrambled training
    images, decoded as served. Never an evaluated or outside-check kind."""
    from classifier.core import image_to_array

    kinds: list[Kind] = [*CHOOSE.values()]
    per_kind = -(-n // (len(kinds) + 1))
    made = [b for index, kind in enumerate(kinds) for b in kind(per_kind, seed + index)]
    made += scrambled(per_kind, seed + len(kinds), images)
    order = np.random.default_rng(seed).permutation(len(made))[:n]
    return np.stack([image_to_array(made[i], size=size) for i in order])
