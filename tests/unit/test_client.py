"""scripts/client.py's for_upload: what a Python client sends for a file, against what the
server's own reduction makes of the whole file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from classifier import core
from PIL import Image

from scripts.client import SIDE, for_upload
from tests.conftest import IMGS
from training import photos


def ship() -> np.ndarray:
    return np.asarray(Image.open(IMGS / "ship.png").convert("RGB"))


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_a_phone_photo_goes_as_a_small_png_the_server_reduces_to_the_same_pixels(
    orientation: int,
) -> None:
    photo = photos.phone_photo(ship(), orientation=orientation)
    sent, media = for_upload(photo)
    image = Image.open(io.BytesIO(sent))
    assert media == "image/png" and image.format == "PNG" and image.size == (SIDE, SIDE)
    assert len(sent) < 300 * 1024 < len(photo)
    assert not image.getexif() and "exif" not in image.info
    whole, reduced = core.image_to_array(photo), core.image_to_array(sent)
    # Upright like the server's (a turned reduction would differ by tens of levels).
    assert np.abs(whole.astype(int) - reduced.astype(int)).mean() < 1.5


def test_a_small_png_or_jpeg_goes_as_it_is() -> None:
    png = (IMGS / "cat.png").read_bytes()
    assert for_upload(png) == (png, "image/png")
    jpeg = photos.encode(photos.enlarged(ship(), 96))
    assert for_upload(jpeg) == (jpeg, "image/jpeg")


def test_webp_is_converted_to_png() -> None:
    webp = photos.encode(photos.enlarged(ship(), 200), "WEBP")
    sent, media = for_upload(webp)
    assert media == "image/png" and Image.open(io.BytesIO(sent)).size == (SIDE, SIDE)


def test_transparency_becomes_white_as_on_the_server() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (800, 1000, 4), dtype=np.uint8)
    rgba[:, :300, 3] = 0  # the left of the centre square is transparent
    rgba[:, 300:, 3] = 255
    data = photos.encode(Image.fromarray(rgba, "RGBA"), "PNG")
    sent, media = for_upload(data)
    assert media == "image/png" and len(sent) < len(data)
    whole, reduced = core.image_to_array(data).astype(int), core.image_to_array(sent).astype(int)
    assert np.abs(whole - reduced).mean() < 1
    assert tuple(reduced[16, 0]) == (255, 255, 255) and tuple(reduced[16, 31]) != (255, 255, 255)


def test_a_small_file_goes_as_it_is_even_when_large_in_pixels() -> None:
    """Under 256 KB the file costs what its reduction would: the server's answer is exact."""
    jpeg = photos.encode(photos.enlarged(ship(), 1024), quality=80)
    assert len(jpeg) < 256 * 1024
    assert for_upload(jpeg) == (jpeg, "image/jpeg")
