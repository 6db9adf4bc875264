"""The API's worst cases: wall time and server peak memory for the costliest inputs we can build.

    python -m scripts.bench_worst [--source DIR] [--only NAME ...] [--json out.json]

Each input goes to a fresh local server (uvicorn, the published model, warmed with one small
image), so the peak RSS (the kernel's VmHWM of the server process) belongs to that input alone.
Inputs sit near the 25 MP per-image limit in every costly PNG/JPEG mode, and batches hold as
many of them as fit in the 4 MiB body. ``--source`` runs another checkout's ``functions/`` (for
a before/after table in one run). Goals on our 2-core machine: an accepted single image <= 1 s,
an accepted batch <= 2 s, peak RSS <= 300 MB; what is over a budget must be refused (413).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from scripts import local_server
from scripts.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]
W, H = 5000, 4999  # 24.995 MP: just under the 25 MP limit


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(
    width: int,
    height: int,
    *,
    bit_depth: int,
    colour_type: int,
    interlace: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A valid PNG of all-zero samples, written by hand (Pillow cannot write every layout)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]

    def row_bytes(w: int) -> int:
        return (w * channels * bit_depth + 7) // 8

    passes = (
        [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ]
        if interlace
        else [(0, 0, 1, 1)]
    )
    compressor = zlib.compressobj(9)
    parts = []
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if pw <= 0 or ph <= 0:
            continue
        row = bytes(1 + row_bytes(pw))
        for _ in range(ph):
            parts.append(compressor.compress(row))
    parts.append(compressor.flush())

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + extra
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def palette_png(width: int, height: int) -> bytes:
    plte = bytes(range(256)) * 3
    trns = bytes([0] + [255] * 255)

    return png(
        width,
        height,
        bit_depth=8,
        colour_type=3,
        extra=png_chunk(b"PLTE", plte[:768]) + png_chunk(b"tRNS", trns),
    )


def jpeg(
    mode: str,
    *,
    progressive: bool = False,
    exif_rotate: bool = False,
    size: tuple[int, int] = (W, H),
    quality: int = 85,
) -> bytes:
    """A smooth gradient (small file, full decoding cost)."""
    base = Image.linear_gradient("L").resize(size)
    across = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    img = base if mode == "L" else Image.merge("RGB", (base, across, base)).convert(mode)
    kwargs: dict = {"quality": quality, "progressive": progressive}
    if exif_rotate:
        exif = Image.Exif()
        exif[0x0112] = 6
        kwargs["exif"] = exif.tobytes()
    out = io.BytesIO()
    img.save(out, "JPEG", **kwargs)
    return out.getvalue()


def single(data: bytes, media: str) -> Callable[[str], httpx.Response]:
    return lambda url: httpx.post(
        f"{url}/predict", content=data, headers={"content-type": media}, timeout=60
    )


def batch(items: list[bytes], media: str) -> Callable[[str], httpx.Response]:
    files = [("file", (f"{i}", data, media)) for i, data in enumerate(items)]
    return lambda url: httpx.post(f"{url}/predict/batch", files=files, timeout=60)


def fill(item: bytes, limit: int = 4 * 1024 * 1024 - 64 * 1024, most: int = 32) -> list[bytes]:
    """As many copies of ``item`` as fit in the body limit (with multipart overhead)."""
    return [item] * max(1, min(most, limit // (len(item) + 200)))


def cases() -> list[tuple[str, bytes | list[bytes], str]]:
    grey16 = png(W, H, bit_depth=16, colour_type=0)
    rgba16 = png(W, H, bit_depth=16, colour_type=6)
    rgb_jpeg = jpeg("RGB")
    small_jpeg = jpeg("RGB", quality=20)
    return [
        ("PNG 16-bit grey", grey16, "image/png"),
        ("PNG 16-bit RGBA", rgba16, "image/png"),
        (
            "PNG 8-bit RGBA, interlaced",
            png(W, H, bit_depth=8, colour_type=6, interlace=True),
            "image/png",
        ),
        ("PNG 16-bit grey+alpha", png(W, H, bit_depth=16, colour_type=4), "image/png"),
        ("PNG palette + tRNS", palette_png(W, H), "image/png"),
        ("PNG 1-bit", png(W, H, bit_depth=1, colour_type=0), "image/png"),
        ("JPEG RGB", rgb_jpeg, "image/jpeg"),
        ("JPEG progressive", jpeg("RGB", progressive=True), "image/jpeg"),
        ("JPEG CMYK", jpeg("CMYK"), "image/jpeg"),
        ("JPEG EXIF-rotated", jpeg("RGB", exif_rotate=True), "image/jpeg"),
        ("PNG 25 MP + 1 row (refused)", png(W, H + 2, bit_depth=8, colour_type=6), "image/png"),
        ("batch: 16-bit RGBA PNGs", fill(rgba16), "image/png"),
        ("batch: 16-bit grey PNGs", fill(grey16), "image/png"),
        ("batch: 2 x 16-bit RGBA PNG", [rgba16] * 2, "image/png"),
        ("batch: 25 MP JPEGs", fill(small_jpeg), "image/jpeg"),
    ]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_case(source: Path, send: Callable[[str], httpx.Response]) -> tuple[int, float, float]:
    port = free_port()
    server = local_server.start(port, source=source)
    url = f"http://127.0.0.1:{port}"
    try:
        warm = (ROOT / "imgs" / "cat.png").read_bytes()
        httpx.post(f"{url}/predict", content=warm, headers={"content-type": "image/png"})
        start = time.perf_counter()
        response = send(url)
        seconds = time.perf_counter() - start
        return response.status_code, seconds, peak_rss_mb(server.pid)
    finally:
        local_server.stop(server)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_worst.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="checkout whose functions/ to serve (default: this one)",
    )
    parser.add_argument("--only", nargs="*", help="run only cases whose name contains these")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"server: {args.source.resolve()}"
    )
    print("| input | images | bytes | status | seconds | server peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name, payload, media in cases():
        if args.only and not any(word in name for word in args.only):
            continue
        items = payload if isinstance(payload, list) else [payload]
        send = batch(items, media) if isinstance(payload, list) else single(payload, media)
        status, seconds, rss = run_case(args.source, send)
        size = sum(len(i) for i in items)
        rows.append(
            {
                "input": name,
                "images": len(items),
                "bytes": size,
                "status": status,
                "seconds": round(seconds, 3),
                "peak_rss_mb": round(rss, 1),
            }
        )
        print(
            f"| {name} | {len(items)} | {size:,} | {status} | {seconds:.2f} | {rss:.0f} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
