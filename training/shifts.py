"""Shifted kinds of in-category images: what a deployed model meets that its training data lacked.

"grey and dark" (greyscale, brightness x0.45) is the feedback demo's shift: a night camera or a
dim scan. Nothing in CIFAR-10's training split looks like it, and the published model loses over
20 points on it (docs/measurements.md, "The feedback loop"). The others are what other cameras
and pipelines do to a picture (SHIFTS); learning from corrections is tuned on the demo's shift
alone and measured on these too.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

BRIGHTNESS = 0.45


def grey_and_dark(x: np.ndarray, brightness: float = BRIGHTNESS) -> np.ndarray:
    """uint8 RGB images (N, H, W, 3), made greyscale (ITU-R 601 luma) and darker."""
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dark = np.clip(np.rint(luma * brightness), 0, 255).astype(np.uint8)
    return np.repeat(dark[..., None], 3, axis=-1)


def faded_warm(x: np.ndarray) -> np.ndarray:
    """Washed out and yellowed, as an old print: contrast x0.5 about mid-grey, blue x0.7."""
    faded = (x.astype(np.float32) - 128) * 0.5 + 128
    faded *= np.array([1.1, 1.0, 0.7], np.float32)
    return np.clip(np.rint(faded), 0, 255).astype(np.uint8)


def blurred(x: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """Out of focus: a Gaussian blur of ``radius`` pixels (at the model's 32 px)."""
    blur = ImageFilter.GaussianBlur(radius)
    return np.stack([np.asarray(Image.fromarray(p).filter(blur)) for p in x])


def noisy(x: np.ndarray, sigma: float = 20.0, seed: int = 0) -> np.ndarray:
    """A small sensor in low light: Gaussian noise of ``sigma`` grey levels, fixed by ``seed``."""
    noise = np.random.default_rng(seed).normal(0, sigma, x.shape).astype(np.float32)
    return np.clip(np.rint(x.astype(np.float32) + noise), 0, 255).astype(np.uint8)


def compressed(x: np.ndarray, quality: int = 10) -> np.ndarray:
    """Re-sent through a messaging app: JPEG at ``quality``."""
    out = []
    for pixels in x:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "grey_and_dark": grey_and_dark,
    "faded_warm": faded_warm,
    "blurred": blurred,
    "noisy": noisy,
    "compressed": compressed,
}


def as_png(x: np.ndarray) -> list[bytes]:
    """Each image as PNG bytes, as a client would send it."""
    out = []
    for pixels in x:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out
