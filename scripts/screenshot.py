"""The web page of a model, with some images dropped on it, as a PNG (for the docs).

    python -m scripts.screenshot OUT.png --model models/latest/manifest.json IMAGE [IMAGE ...]

Serves the model locally (as `make serve` does), opens the page in headless Chromium (Debian's,
driven by Selenium), chooses the images and saves the page once every answer is shown.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from scripts import local_server

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--model", type=Path, default=local_server.REPO_MODEL)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    port = local_server.free_port()
    server = local_server.start(port, manifest=args.model.resolve(), quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size=1200,{args.height}")
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "files").send_keys(
            "\n".join(str(p.resolve()) for p in args.images)
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = driver.find_elements(By.CSS_SELECTOR, "#results li.result")
            if (
                len(shown) == len(args.images)
                and "Done" in driver.find_element(By.ID, "status").text
            ):
                break
            time.sleep(0.2)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        server.terminate()
        server.wait()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
