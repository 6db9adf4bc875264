"""Shifted kinds of in-category images: what a deployed model meets that its training data lacked.

"grey and dark" (greyscale, brightness x0.45) is the feedback demo's shift: a night camera or a
dim scan. Nothing in CIFAR-10's training split looks like it, and the published model loses over
20 points on it (docs/measurements.md, "The feedback loop").
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

BRIGHTNESS = 0.45


def grey_and_dark(x: np.ndarray, brightness: float = BRIGHTNESS) -> np.ndarray:
    """uint8 RGB images (N, H, W, 3), made greyscale (ITU-R 601 luma) and darker."""
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dark = np.clip(np.rint(luma * brightness), 0, 255).astype(np.uint8)
    return np.repeat(dark[..., None], 3, axis=-1)


def as_png(x: np.ndarray) -> list[bytes]:
    """Each image as PNG bytes, as a client would send it."""
    out = []
    for pixels in x:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out
