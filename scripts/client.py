"""The original report's client: send every image in a folder to the API and draw a contact sheet.

    python -m scripts.client [--url http://127.0.0.1:8000] [--folder imgs] [--out contact_sheet.png]

Prints each file with its predicted category and confidence, then writes a PNG of the images
labelled with their predictions (green when the file name, e.g. ``cat.png``, agrees). Like the web
page, it sends what the model needs, not the file: :func:`for_upload` (a few lines of Pillow that
anyone's code can copy) reduces a photo to its centre square at 128 px, and converts formats the
API does not take (WebP, and whatever else Pillow opens) to PNG.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import httpx
from classifier.contract import AS_IT_IS_BYTES, UPLOAD_SCALE
from PIL import Image, ImageDraw, ImageFont, ImageOps

TILE = 128  # pixels per image in the sheet (32x32 images are scaled up, nearest neighbour)
LABEL = 34  # pixels of text under each image
SIDE = 32 * UPLOAD_SCALE  # what a picture is reduced to (the model's input is 32 px)
SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg"}


def for_upload(data: bytes, side: int = SIDE) -> tuple[bytes, str]:
    """The bytes to send for an image file, and their content type: a PNG or JPEG of at most
    AS_IT_IS_BYTES, or whose centre square is no larger than ``side``, as it is; anything else
    Pillow opens as the centre square, upright, transparency on white, area-averaged to ``side``
    px, as a PNG (what the server's own reduction of the whole file would make of it)."""
    image: Image.Image = Image.open(io.BytesIO(data))
    small = len(data) <= AS_IT_IS_BYTES or min(image.size) <= side
    if image.format in SENT_AS_IS and small:
        return data, SENT_AS_IS[image.format]
    image.draft("RGB", (3 * side, 3 * side))  # a large JPEG decodes at 1/2-1/8 scale: fast, small
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "P"):
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    n = min(image.size)
    left, top = (image.width - n) // 2, (image.height - n) // 2
    square = image.convert("RGB").resize(
        (min(n, side),) * 2, Image.Resampling.BOX, box=(left, top, left + n, top + n)
    )
    out = io.BytesIO()
    square.save(out, "PNG")
    return out.getvalue(), "image/png"


def classify_folder(url: str, folder: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
    """POST each image (sorted by name), reduced for upload, to ``url``/predict as multipart
    field ``file``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise SystemExit(f"no files in {folder}")
    results = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as client:
        for path in files:
            try:
                data, media = for_upload(path.read_bytes())
            except OSError as exc:  # Pillow cannot open it: the API will say what it takes
                data, media = path.read_bytes(), "application/octet-stream"
                print(f"{path.name:<20} sent as it is ({exc})", file=sys.stderr)
            response = client.post("/predict", files={"file": (path.name, data, media)})
            body = response.json()
            if response.status_code != 200:
                print(f"{path.name:<20} error {response.status_code}: {body.get('detail')}")
                results.append({"file": path, "error": body.get("detail")})
                continue
            print(f"{path.name:<20} {body['category']:<11} {body['confidence']:.2f}")
            results.append({"file": path, **body})
    return results


def contact_sheet(results: list[dict[str, Any]], out: Path, columns: int = 5) -> Path:
    """A grid of the images, each labelled with its predicted category and confidence."""
    rows = -(-len(results) // columns)
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for i, result in enumerate(results):
        x, y = (i % columns) * TILE, (i // columns) * (TILE + LABEL)
        try:
            image = ImageOps.exif_transpose(Image.open(result["file"])).convert("RGB")
            image = ImageOps.fit(image, (TILE, TILE), Image.Resampling.NEAREST)
        except OSError:
            image = Image.new("RGB", (TILE, TILE), "lightgrey")
        sheet.paste(image, (x, y))
        if "category" in result:
            text = f"{result['category']} {result['confidence']:.0%}"
            agrees = result["file"].stem.lower().startswith(result["category"])
            colour = (0, 120, 0) if agrees else (200, 0, 0)
        else:
            text, colour = "error", (200, 0, 0)
        draw.text((x + 4, y + TILE + 2), text, fill=colour, font=font)
        draw.text((x + 4, y + TILE + 18), result["file"].name, fill=(90, 90, 90), font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="scripts/client.py", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument("--folder", type=Path, default=Path("imgs"), help="folder of images")
    parser.add_argument("--out", type=Path, default=Path("contact_sheet.png"))
    args = parser.parse_args(argv)
    try:
        results = classify_folder(args.url, args.folder)
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach {args.url}: {exc}") from exc
    print(f"contact sheet: {contact_sheet(results, args.out)}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
