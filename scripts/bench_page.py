"""The page as a person on a phone network feels it: time from picking a 4 MB photo to its answer,
and the bytes uploaded, sending the file (as the page did before) and sending its reduction.

    python -m scripts.bench_page [--runs 5] [--json docs/bench-page.json]

Headless Chromium (Debian's) with Selenium's network conditions (5 Mbit/s up, 20 down, 40 ms),
the local server (`make serve`) with the served model, one 12 MP JPEG from training.photos; the
two ways take turns. The time runs from the file input's change event to the answer on the page
(both read in the page's clock). The throttle is checked: the whole file cannot go up faster than
its bits at 5 Mbit/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from classifier.settings import REPO_MODEL
from PIL import Image

from scripts import local_server
from training import photos

ROOT = Path(__file__).resolve().parents[1]
UP, DOWN, LATENCY_MS = 5_000_000, 20_000_000, 40  # bits/s, bits/s, ms
WATCH = """
window.__t0 = null; window.__t1 = null; window.__sent = [];
document.getElementById("results").replaceChildren();
document.getElementById("files").addEventListener("change", () => {
  window.__t0 = performance.now();
}, { once: true });
new MutationObserver((changes, observer) => {
  const h2 = document.querySelector("#results li h2");
  if (h2 && (h2.closest("li").querySelector("table, .message"))) {
    window.__t1 = performance.now();
    window.__answer = h2.textContent;
    observer.disconnect();
  }
}).observe(document.getElementById("results"), { childList: true, subtree: true });
"""


def browser() -> Any:
    from scripts import chromium

    driver = chromium.headless(count_sent=True)
    driver.set_network_conditions(
        offline=False,
        latency=LATENCY_MS,
        download_throughput=DOWN // 8,
        upload_throughput=UP // 8,
    )
    return driver


def one(driver: Any, url: str, photo: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.execute_script(WATCH)
    driver.find_element(By.ID, "files").send_keys(str(photo))
    deadline = time.monotonic() + 120
    while driver.execute_script("return window.__t1") is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no answer on {url} within 120 s")
        time.sleep(0.05)
    t0, t1, answer, sent = driver.execute_script(
        "return [window.__t0, window.__t1, window.__answer, window.__sent]"
    )
    return {"seconds": (t1 - t0) / 1000, "uploaded_bytes": sum(sent), "answer": answer}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    port = local_server.free_port()
    server = local_server.start(port, manifest=REPO_MODEL, quiet=True)
    pixels = np.asarray(Image.open(ROOT / "imgs/ship.png").convert("RGB"))
    ways = {"file (before)": "?send=original", "reduced (after)": ""}
    samples: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "IMG_0042.JPG"
        photo.write_bytes(photos.phone_photo(pixels, orientation=6))
        size = photo.stat().st_size
        driver = browser()
        try:
            for _ in range(args.runs):
                for way, query in ways.items():
                    url = f"http://127.0.0.1:{port}/{query}"
                    samples[way].append(one(driver, url, photo))
        finally:
            driver.quit()
            local_server.stop(server)
    floor = size * 8 / UP
    result = {
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "photo": {"pixels": "4032x3024 (EXIF 6)", "bytes": size},
        "network": {"up_bit_s": UP, "down_bit_s": DOWN, "latency_ms": LATENCY_MS},
        "runs": args.runs,
        "ways": {
            way: {
                "median_seconds": round(statistics.median(s["seconds"] for s in runs), 2),
                "seconds": [round(s["seconds"], 2) for s in runs],
                "uploaded_bytes": runs[0]["uploaded_bytes"],
                "answers": sorted({s["answer"] for s in runs}),
            }
            for way, runs in samples.items()
        },
    }
    before = result["ways"]["file (before)"]["median_seconds"]
    if before < floor:
        raise SystemExit(f"no throttle: {before} s for {size} bytes, at least {floor:.1f} s")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
