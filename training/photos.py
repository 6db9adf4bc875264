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


PHONE = (4032, 3024)  # a 12 MP phone photo, landscape as the sensor stores it
GRAIN = 9.0  # sensor noise (grey levels, standard deviation): a photo's bytes come mostly from it
# EXIF orientation -> how a phone stores the upright picture so that the tag turns it back.
STORED = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def phone_photo(
    pixels: np.ndarray,
    size: tuple[int, int] = PHONE,
    *,
    quality: int = 92,
    grain: float = GRAIN,
    orientation: int = 1,
) -> bytes:
    """A 32x32 image as a phone would send it: enlarged (bicubic) to fill the photo's centre
    square, the sides continuing it (mirrored), sensor grain, JPEG at ``quality``, stored turned
    with the EXIF ``orientation`` (1, 3, 6 or 8) that shows it upright. Portrait when ``size``
    is taller than wide."""
    width, height = size
    side = min(width, height)
    square = np.asarray(enlarged(pixels, side), np.float32)
    across = ((0, 0), ((width - side) // 2, -(-(width - side) // 2)), (0, 0))
    down = (((height - side) // 2, -(-(height - side) // 2)), (0, 0), (0, 0))
    picture = np.pad(square, across if width > height else down, mode="symmetric")
    if grain:
        # One tile of noise repeated: the grain's statistics at a fraction of the cost.
        tile = np.random.default_rng(0).normal(0, grain, (512, 512, 3)).astype(np.float32)
        picture += np.tile(tile, (-(-height // 512), -(-width // 512), 1))[:height, :width]
    image = Image.fromarray(np.clip(np.rint(picture), 0, 255).astype(np.uint8))
    exif = Image.Exif()
    if STORED[orientation] is not None:
        image = image.transpose(STORED[orientation])  # type: ignore[arg-type]
        exif[0x0112] = orientation
    return encode(image, quality=quality, exif=exif.tobytes())
