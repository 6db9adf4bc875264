"""Photo-sized files made from 32x32 images: what people send, reduced again by the serving code.

One generator for training and for measuring: training shows a share of its images as photos
would reach the model (:func:`photo_versions`), and research/photo_robustness.py measures the
served model on the same kinds of file (:func:`enlarged_jpegs`, :func:`photo_kinds`).
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

SIDES = (64, 96, 128, 224, 320)  # the sides training's photo versions are enlarged to
QUALITY = 90  # the JPEG quality of the measured kinds


def encode(picture: Image.Image, fmt: str = "JPEG", quality: int = QUALITY, **extra: Any) -> bytes:
    """A picture as the file a phone or a viewer would write."""
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}), **extra)
    return buffer.getvalue()


def enlarged(pixels: np.ndarray, side: int) -> Image.Image:
    """A 32x32 image enlarged with a bicubic filter, as viewers and phones enlarge."""
    return Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)


def as_photo(job: tuple[np.ndarray, int]) -> np.ndarray:
    """One image as a photo reaches the model: enlarged to a random side, JPEG-compressed at a
    random quality, then brought back to the input size by the serving code's own reduction."""
    from classifier.core import image_to_array

    image, seed = job
    rng = np.random.default_rng(seed)
    side = int(rng.choice(SIDES))
    file = encode(enlarged(image, side), quality=int(rng.integers(60, 96)))
    return image_to_array(file, size=image.shape[0])


def photo_versions(x: np.ndarray, seed: int) -> np.ndarray:
    """Every training image once as a photo would arrive (computed once, in parallel)."""
    jobs = [(image, seed * 1_000_003 + i) for i, image in enumerate(x)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(as_photo, jobs, chunksize=500)))


def enlarged_jpegs(x: np.ndarray, side: int, quality: int = QUALITY) -> list[bytes]:
    """Each 32x32 image enlarged to side x side and saved as a JPEG."""
    return [encode(enlarged(pixels, side), quality=quality) for pixels in x]


def photo_kinds(x: np.ndarray) -> dict[str, list[bytes]]:
    """The files people send, made from each 32x32 image: a 224 px JPEG, a 320x256 JPEG with
    the picture in its centre square and borders left and right, a 96 px RGBA PNG, and a
    128 px JPEG stored sideways with the EXIF tag that turns it upright (as phones do)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    kinds: dict[str, list[bytes]] = {
        k: [] for k in ("jpeg 224", "bordered 320x256 jpeg", "rgba 96 png", "exif-rotated 128 jpeg")
    }
    for pixels in x:
        bordered = Image.new("RGB", (320, 256), (128, 128, 128))
        bordered.paste(enlarged(pixels, 256), (32, 0))
        sideways = enlarged(pixels, 128).transpose(Image.Transpose.ROTATE_90)
        kinds["jpeg 224"].append(encode(enlarged(pixels, 224)))
        kinds["bordered 320x256 jpeg"].append(encode(bordered))
        kinds["rgba 96 png"].append(encode(enlarged(pixels, 96).convert("RGBA"), "PNG"))
        kinds["exif-rotated 128 jpeg"].append(encode(sideways, exif=exif.tobytes()))
    return kinds
