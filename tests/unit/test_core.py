"""The pure core: decoding every mode and size, refusing bad input, int8 in and out."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from classifier import core
from classifier.core import (
    ImageTooLarge,
    UndecodableImage,
    UnsupportedImage,
    dequantize,
    image_to_array,
    quantize,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import IMGS


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


SOLID = (200, 40, 90)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("RGB", lambda: Image.new("RGB", (32, 32), SOLID)),
        ("L", lambda: Image.new("L", (32, 32), 128)),
        ("1", lambda: Image.new("1", (32, 32), 1)),
        ("P", lambda: Image.new("RGB", (32, 32), SOLID).convert("P")),
        ("RGBA", lambda: Image.new("RGBA", (32, 32), (*SOLID, 255))),
        ("LA", lambda: Image.new("LA", (32, 32), (128, 255))),
        ("I;16", lambda: Image.fromarray(np.full((32, 32), 128 * 257, np.uint16))),
    ],
)
def test_every_png_mode_becomes_32x32_rgb_uint8(mode: str, make: Any) -> None:
    img = make()
    data = encode(img)
    assert Image.open(io.BytesIO(data)).mode.startswith(mode[0])
    pixels = image_to_array(data)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8


def test_sixteen_bit_grey_is_scaled_to_eight_bits() -> None:
    data = encode(Image.fromarray(np.full((32, 32), 65535, np.uint16)))
    assert (image_to_array(data) == 255).all()
    data = encode(Image.fromarray(np.full((32, 32), 128 * 257, np.uint16)))
    assert (image_to_array(data) == 128).all()


def test_transparent_pixels_become_white_and_opaque_keep_their_colour() -> None:
    img = Image.new("RGBA", (32, 32), (*SOLID, 255))
    img.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    img.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black
    pixels = image_to_array(encode(img))
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 1]) == (127, 127, 127)
    assert tuple(pixels[5, 5]) == SOLID


def test_palette_transparency_is_composited_onto_white() -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    data = encode(img, transparency=0)
    assert (image_to_array(data) == 255).all()


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    red, green, blue = image_to_array(data)[16, 16].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_a_phones_multi_picture_jpeg_is_accepted() -> None:
    first, second = Image.new("RGB", (40, 30), SOLID), Image.new("RGB", (40, 30), (0, 0, 0))
    data = encode(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert np.abs(image_to_array(data)[16, 16].astype(int) - SOLID).max() <= 3


def test_float_mode_is_clipped_into_eight_bits() -> None:
    img = Image.fromarray(np.full((32, 32), 300.0, np.float32), "F")
    assert (np.asarray(core.to_rgb(img)) == 255).all()


def test_32x32_png_pixels_pass_through_unchanged() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(image_to_array(encode(Image.fromarray(original))), original)


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (64, 48), (48, 64), (640, 480), (1000, 10)])
def test_any_size_is_resized_to_the_model_input(size: tuple[int, int]) -> None:
    pixels = image_to_array(encode(Image.new("RGB", size, SOLID)))
    assert pixels.shape == (32, 32, 3)
    assert np.abs(pixels.astype(int) - SOLID).max() <= 1


def test_non_square_images_are_centre_cropped_not_squashed() -> None:
    # 96x32: left third red, middle third green, right third blue -> only green survives.
    strip = np.zeros((32, 96, 3), np.uint8)
    strip[:, :32, 0] = strip[:, 32:64, 1] = strip[:, 64:, 2] = 255
    pixels = image_to_array(encode(Image.fromarray(strip)))
    assert pixels[..., 1].min() == 255 and pixels[..., 0].max() == 0 and pixels[..., 2].max() == 0


def test_exif_orientation_is_applied() -> None:
    # Stored 64x32, left half red and right half blue; EXIF 6 means "rotate 90 clockwise to view".
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32, 0] = 255
    stored[:, 32:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    viewed = image_to_array(data)
    top, bottom = viewed[2, 16].astype(int), viewed[29, 16].astype(int)
    assert top[0] > 200 and top[2] < 60  # red now on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below


def test_over_25_megapixels_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match=r"8000x8000 \(64.0 MP\); at most 25 MP"):
        image_to_array(png_header_only(8000, 8000))


def test_pixel_limit_is_configurable() -> None:
    data = encode(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageTooLarge):
        image_to_array(data, max_pixels=9_999)
    assert image_to_array(data, max_pixels=10_000).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
        b"\x89PNG\r\n\x1a\nnot really",  # a signature, then a header cut short (was a 500)
        (IMGS / "cat.png").read_bytes()[:20],
        b"\xff\xd8\xff\xe0" + b"\xff" * 12,
    ],
)
def test_bytes_that_are_not_an_image_are_undecodable(data: bytes) -> None:
    with pytest.raises(UndecodableImage):
        image_to_array(data)


def test_truncated_png_is_undecodable() -> None:
    data = (IMGS / "cat.png").read_bytes()
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        image_to_array(data[: len(data) // 2])


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_image_formats_are_unsupported(fmt: str) -> None:
    with pytest.raises(UnsupportedImage, match=f"format {fmt} is not accepted"):
        image_to_array(encode(Image.new("RGB", (32, 32)), fmt))


@given(st.lists(st.integers(0, 255), min_size=1, max_size=64))
def test_int8_quantisation_of_pixels_round_trips(values: list[int]) -> None:
    pixels = np.asarray(values, np.uint8)
    q = quantize(pixels, scale=1.0, zero_point=-128, dtype=np.int8)
    assert q.dtype == np.int8
    assert np.array_equal(q.astype(int), pixels.astype(int) - 128)
    assert np.array_equal(dequantize(q, scale=1.0, zero_point=-128), pixels.astype(np.float32))


@given(st.floats(0.01, 4.0), st.integers(-128, 127))
def test_quantise_clips_to_the_integer_range(scale: float, zero_point: int) -> None:
    q = quantize(np.array([-1e6, 0.0, 1e6]), scale=scale, zero_point=zero_point, dtype=np.int8)
    assert q[0] == -128 and q[2] == 127


def test_sample_images_all_decode() -> None:
    for path in sorted(Path(IMGS).glob("*.png")):
        assert image_to_array(path.read_bytes()).shape == (32, 32, 3)


# --- bounded cost ---------------------------------------------------------------------------
def test_every_format_in_the_contract_decodes() -> None:
    from classifier import contract

    for fmt in contract.ACCEPTED_FORMATS:
        data = encode(Image.new("RGB", (40, 30), SOLID), fmt)
        assert image_to_array(data).shape == (32, 32, 3), fmt


def smooth_scene(width: int, height: int) -> np.ndarray:
    """A photo-like image: gradients and a few blocks, no single-pixel detail."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = np.stack(
        [255 * xx / width, 255 * yy / height, 128 + 100 * np.sin(xx / 90) * np.cos(yy / 70)],
        axis=-1,
    )
    scene[height // 3 : height // 2, width // 3 : width // 2] = (250, 240, 20)
    return np.clip(scene, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(1600, 1200), (1200, 1600), (700, 700), (5000, 200)])
def test_cheap_reduction_matches_a_direct_area_resize(size: tuple[int, int]) -> None:
    img = Image.fromarray(smooth_scene(*size))
    direct = np.asarray(
        img.resize((32, 32), Image.Resampling.BOX, box=core.centre_square(*img.size))
    ).astype(int)
    reduced = image_to_array(encode(img)).astype(int)
    assert np.abs(reduced - direct).mean() < 1.5
    assert np.abs(reduced - direct).max() <= 32  # two area averages on unaligned grids


@pytest.mark.parametrize("factor", [3, 4, 5, 8, 16])
def test_an_enlarged_photo_of_a_32x32_image_decodes_back_to_its_pixels(factor: int) -> None:
    """Area averaging undoes an enlargement by whole pixels exactly (a bicubic or Lanczos last
    step would blend neighbours): the behaviour chosen for photo-sized inputs."""
    pixels = np.random.default_rng(factor).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    enlarged = Image.fromarray(pixels).resize((32 * factor,) * 2, Image.Resampling.NEAREST)
    assert np.array_equal(image_to_array(encode(enlarged)), pixels)


@pytest.mark.parametrize(
    ("side", "factor"), [(512, 4), (3200, 25), (3232, 33), (700, 7), (96, 1), (4096, 32)]
)
def test_the_cheap_reduction_keeps_the_grid_aligned_where_it_can(side: int, factor: int) -> None:
    assert core.reduction_factor(side) == factor
    assert side // factor >= 32 * core.REDUCING_GAP or factor == 1


def test_a_large_jpeg_is_decoded_at_a_reduced_scale() -> None:
    data = encode(Image.fromarray(smooth_scene(4000, 3000)), "JPEG", quality=90)
    assert core.decode_cost(data) == 500 * 375
    full = Image.open(io.BytesIO(data)).convert("RGB")
    direct = np.asarray(
        full.resize((32, 32), Image.Resampling.BOX, box=core.centre_square(*full.size))
    ).astype(int)
    assert np.abs(image_to_array(data).astype(int) - direct).mean() < 2.0


def test_a_large_exif_rotated_photo_is_upright() -> None:
    stored = np.zeros((600, 1200, 3), np.uint8)
    stored[:, :600, 0] = 255  # left half red, right half blue; EXIF 6: rotate to view
    stored[:, 600:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    viewed = image_to_array(data)
    assert viewed[3, 16, 0] > 200 and viewed[3, 16, 2] < 60  # red on top
    assert viewed[28, 16, 2] > 200 and viewed[28, 16, 0] < 60  # blue below


def test_a_large_cut_out_is_composited_onto_white_before_reduction() -> None:
    rgba = np.zeros((1000, 1000, 4), np.uint8)  # transparent black everywhere...
    rgba[400:600, 400:600] = (255, 0, 0, 255)  # ...but an opaque red square in the middle
    pixels = image_to_array(encode(Image.fromarray(rgba, "RGBA"))).astype(int)
    assert (pixels[0, 0] == 255).all() and (pixels[31, 31] == 255).all()  # white, not black
    assert pixels[16, 16, 0] > 240 and pixels[16, 16, 1:].max() < 15


PEAK = """
import io, resource, sys
import numpy as np
from PIL import Image
from classifier.core import image_to_array
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image_to_array(data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "bytes_per_pixel"), [("I;16", 2), ("RGBA", 4), ("P", 1), ("LA", 2), ("CMYK", 4)]
)
def test_decoding_a_12_mp_image_costs_about_its_decoded_size_no_more(
    mode: str, bytes_per_pixel: int, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    width, height = 4000, 3000
    if mode == "I;16":
        img = Image.fromarray(np.full((height, width), 40000, np.uint16))
    elif mode == "P":
        img = Image.new("P", (width, height), 3)
        img.info["transparency"] = 0
    else:
        img = Image.new(mode, (width, height), (90,) * len(mode))
    path = tmp_path / "big"
    img.save(path, "JPEG" if mode == "CMYK" else "PNG")
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    decoded_mb = width * height * bytes_per_pixel / 2**20
    if mode == "CMYK":
        decoded_mb /= 64  # a JPEG this large decodes at 1/8 scale
    assert float(done.stdout) < decoded_mb + 30, f"{mode}: +{float(done.stdout):.0f} MB"
