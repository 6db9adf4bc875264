"""What the page and the client send, measured: photo-making kinds of each 32x32 image, each
classified as the file (the server's own reduction), as the Python client's reduction
(scripts/client.for_upload) and as the page's (static/reduce.js, run in headless Chromium).

    python -m research.upload_reduction [--split validation|test] [--images 1000]
        [--large-images 200] [--sides 128] [--json docs/upload-reduction-test.json]

For each kind and path: accuracy (six views, as served), its drop against the 32x32 originals
with the paired standard error, and how often the answer equals the file's. Kinds of 1 MP and
more (slow to make: a 12 MP photo takes about a second) use the first ``--large-images`` only.
Choose the side on validation (the default split); the test split is for the published figure.
Files are made, sent through each path and deleted in chunks, so disk stays small.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import io
import json
import mimetypes
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from classifier import contract, core
from classifier.settings import REPO_MODEL
from PIL import Image

from research.photo_robustness import served_sample
from scripts.client import for_upload
from training import photos

ROOT = Path(__file__).resolve().parents[1]
REDUCE_JS = ROOT / "functions" / "classifier" / "static" / "reduce.js"
CHUNK = 250
LARGE = 1_000_000  # pixels: kinds this large are made for --large-images only


def _enlarged(px: np.ndarray, size: tuple[int, int], flt: Image.Resampling) -> Image.Image:
    """The picture filling the centre square of ``size``, the rest a grey border."""
    width, height = size
    side = min(size)
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(
        Image.fromarray(px).resize((side, side), flt), ((width - side) // 2, (height - side) // 2)
    )
    return canvas


def _rgba_sides(px: np.ndarray) -> bytes:
    """A 320x256 PNG whose sides outside the picture are transparent."""
    canvas = Image.new("RGBA", (320, 256), (0, 0, 0, 0))
    canvas.paste(Image.fromarray(px).resize((256, 256), Image.Resampling.LANCZOS), (32, 0))
    return photos.encode(canvas, "PNG")


def _turned(image: Image.Image, orientation: int, quality: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(photos.STORED[orientation])  # type: ignore[arg-type]
    return photos.encode(stored, quality=quality, exif=exif.tobytes())


B, BC, BL, L, N = (
    Image.Resampling.BOX,
    Image.Resampling.BICUBIC,
    Image.Resampling.BILINEAR,
    Image.Resampling.LANCZOS,
    Image.Resampling.NEAREST,
)
# name -> (pixels of one file, maker): sizes from 64 px to a phone's, the usual filters, JPEG
# qualities, PNG with alpha, EXIF orientations, borders (outside the centre square), WebP.
KINDS: dict[str, tuple[int, Callable[[np.ndarray], bytes]]] = {
    "png 64 nearest": (64 * 64, lambda px: photos.encode(_enlarged(px, (64, 64), N), "PNG")),
    "jpeg 128 bilinear q75": (
        128 * 128,
        lambda px: photos.encode(_enlarged(px, (128, 128), BL), quality=75),
    ),
    "jpeg 224 bicubic q90": (224 * 224, lambda px: photos.encode(photos.enlarged(px, 224))),
    "png rgba 320x256 transparent sides": (320 * 256, _rgba_sides),
    "jpeg 640x480 lanczos q95 borders": (
        640 * 480,
        lambda px: photos.encode(_enlarged(px, (640, 480), L), quality=95),
    ),
    "jpeg 1024 box q85 exif 6": (
        1024 * 1024,
        lambda px: _turned(_enlarged(px, (1024, 1024), B), 6, 85),
    ),
    "jpeg 768x1024 bicubic q90 exif 8": (
        768 * 1024,
        lambda px: _turned(_enlarged(px, (768, 1024), BC), 8, 90),
    ),
    "png 1200x900 bicubic grain": (
        1200 * 900,
        lambda px: photos.encode(
            Image.open(io.BytesIO(photos.phone_photo(px, (1200, 900), quality=100))), "PNG"
        ),
    ),
    "webp 300 bicubic q90": (300 * 300, lambda px: photos.encode(photos.enlarged(px, 300), "WEBP")),
    "photo 2016x1512 q80 exif 3 grain": (
        2016 * 1512,
        lambda px: photos.phone_photo(px, (2016, 1512), quality=80, orientation=3),
    ),
    "phone 4032x3024 q92 exif 6 grain": (
        4032 * 3024,
        lambda px: photos.phone_photo(px, orientation=6),
    ),
}
EXTENSION = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp"}


def extension(data: bytes) -> str:
    return next(ext for magic, ext in EXTENSION.items() if data.startswith(magic))


@contextmanager
def chromium(folder: Path) -> Iterator[Any]:
    """Headless Chromium on a page that loads reduce.js from ``folder`` (served over HTTP)."""
    from scripts.chromium import headless

    shutil.copy(REDUCE_JS, folder / "reduce.js")
    (folder / "index.html").write_text('<!doctype html><script src="reduce.js"></script>')
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = headless()
    driver.set_script_timeout(3600)
    driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
    try:
        yield driver
    finally:
        driver.quit()
        server.shutdown()


mimetypes.add_type("image/webp", ".webp")  # so the page's fetch sees the type a browser would


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


BROWSER_BATCH = """
const [names, side, asItIs, done] = arguments;
(async () => {
  const out = [];
  for (const name of names) {
    const blob = await (await fetch(name)).blob();
    const file = new File([blob], name, { type: blob.type });
    const sent = await reduceForUpload(file, side, ["image/png", "image/jpeg"], asItIs);
    if (sent.blob === file) { out.push(null); continue; }
    const bytes = new Uint8Array(await sent.blob.arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    }
    out.push(btoa(text));
  }
  done(out);
})();
"""


def browser_reductions(driver: Any, folder: Path, names: list[str], side: int) -> list[bytes]:
    """Each file as the page would send it (the file itself when the page sends it as it is).
    Asked a few at a time: Selenium gives up on a script that runs for minutes."""
    sent = []
    for start in range(0, len(names), 10):
        sent += driver.execute_async_script(
            BROWSER_BATCH, names[start : start + 10], side, contract.AS_IT_IS_BYTES
        )
    return [
        (folder / name).read_bytes() if text is None else base64.b64decode(text)
        for name, text in zip(names, sent, strict=True)
    ]


def server_array(data: bytes) -> np.ndarray | None:
    try:
        return core.image_to_array(data)
    except core.ImageError:
        return None  # refused (WebP sent as it is)


def measure_kind(
    make: Callable[[np.ndarray], bytes],
    x: np.ndarray,
    sides: list[int],
    driver: Any | None,
    folder: Path,
) -> dict[str, list[np.ndarray | None]]:
    """The model's input for each image of ``x`` through each path, made a chunk at a time."""
    paths: dict[str, list[np.ndarray | None]] = {"file": []}
    for start in range(0, len(x), CHUNK):
        files = [make(px) for px in x[start : start + CHUNK]]
        paths["file"] += [server_array(f) for f in files]
        for side in sides:
            client = [server_array(for_upload(f, side)[0]) for f in files]
            paths.setdefault(f"client {side}", []).extend(client)
        if driver is None:
            continue
        names = [f"{start + i}{extension(f)}" for i, f in enumerate(files)]
        for name, data in zip(names, files, strict=True):
            (folder / name).write_bytes(data)
        for side in sides:
            sent = browser_reductions(driver, folder, names, side)
            paths.setdefault(f"page {side}", []).extend(server_array(s) for s in sent)
        for name in names:
            (folder / name).unlink()
    return paths


def summarise(
    classify: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    base: np.ndarray,
    paths: dict[str, list[np.ndarray | None]],
) -> dict[str, Any]:
    """Accuracy, drop against the 32x32 originals (paired SE) and agreement with the file."""
    # Most paths give the same pixels for most images: each distinct input is classified once.
    distinct: dict[bytes, int] = {}
    index = {
        name: [distinct.setdefault(a.tobytes(), len(distinct)) for a in arrays if a is not None]
        if all(a is not None for a in arrays)
        else None
        for name, arrays in paths.items()
    }
    shape = next(a for arrays in paths.values() for a in arrays if a is not None).shape
    unique = np.stack([np.frombuffer(b, np.uint8).reshape(shape) for b in distinct])
    answered = classify(unique)
    answers = {name: None if i is None else answered[i] for name, i in index.items()}
    right_base = base[: len(y)] == y
    out: dict[str, Any] = {}
    for name, answer in answers.items():
        if answer is None:
            out[name] = {"refused": True}
            continue
        paired = right_base.astype(float) - (answer == y)
        out[name] = {
            "accuracy": round(float((answer == y).mean()), 4),
            "drop_points": round(float(paired.mean()) * 100, 2),
            "se_points": round(float(paired.std(ddof=1) / np.sqrt(len(y))) * 100, 2),
        }
        if answers["file"] is not None and name != "file":
            out[name]["agrees_with_file"] = round(float((answer == answers["file"]).mean()), 4)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=REPO_MODEL)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--large-images", type=int, default=200)
    parser.add_argument("--sides", type=int, nargs="+", default=[32 * contract.UPLOAD_SCALE])
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    manifest, classifier, x, y = served_sample(args.model, args.data, args.split, args.images)

    def classify(arrays: np.ndarray) -> np.ndarray:
        return classifier.predict_arrays(arrays).argmax(axis=1)

    base = classify(x)
    result: dict[str, Any] = {
        "model_version": manifest.model_version,
        "split": args.split,
        "base_32x32": round(float((base == y).mean()), 4),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "kinds": {},
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        _nothing() if args.no_browser else chromium(Path(tmp)) as driver,
    ):
        for kind in args.kinds:
            pixels, make = KINDS[kind]
            n = args.large_images if pixels >= LARGE else len(y)
            start = time.perf_counter()
            paths = measure_kind(make, x[:n], args.sides, driver, Path(tmp))
            row = summarise(classify, y[:n], base, paths)
            result["kinds"][kind] = {"images": n, **row}
            print(f"{kind} ({n} images, {time.perf_counter() - start:.0f} s)", flush=True)
            for name, figures in row.items():
                print(f"  {name:<12} {figures}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
