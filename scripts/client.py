"""The original report's client: send every PNG in a folder to the API and draw a contact sheet.

    python -m scripts.client [--url http://127.0.0.1:8000] [--folder imgs] [--out contact_sheet.png]

Prints each file with its predicted category and confidence, then writes a PNG of the images
labelled with their predictions (green when the file name, e.g. ``cat.png``, agrees).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont

TILE = 128  # pixels per image in the sheet (32x32 images are scaled up, nearest neighbour)
LABEL = 34  # pixels of text under each image


def classify_folder(url: str, folder: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
    """POST each PNG (sorted by name) to ``url``/predict as multipart field ``file``."""
    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"no PNG files in {folder}")
    results = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as client:
        for path in files:
            response = client.post(
                "/predict", files={"file": (path.name, path.read_bytes(), "image/png")}
            )
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
        image = Image.open(result["file"]).convert("RGB")
        sheet.paste(image.resize((TILE, TILE), Image.Resampling.NEAREST), (x, y))
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
    parser.add_argument("--folder", type=Path, default=Path("imgs"), help="folder of PNGs")
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
