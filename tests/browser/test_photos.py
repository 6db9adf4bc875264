"""Photos as people pick them, on the page in headless Chromium: what goes up is the picture's
centre square reduced in the browser (static/reduce.js), and the answer is the one the server
gives the whole file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from classifier import contract
from PIL import Image

from tests.browser.conftest import BROWSER_MISSING, choose, results
from tests.conftest import IMGS
from training import photos

pytestmark = [pytest.mark.slow, pytest.mark.browser]
if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

UPLOAD_SIDE = 32 * contract.UPLOAD_SCALE


@pytest.fixture
def page(browser: Any, server: str) -> Any:
    browser.get(server)
    return browser


def shown(li: Any) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return li.find_element(By.TAG_NAME, "h2").text, li.find_element(By.CSS_SELECTOR, ".name").text


def servers_answer(server: str, data: bytes) -> str:
    """The server's answer to the whole file as the page words it, without the confidence (the
    server decodes a large JPEG at 1/8 scale, so it differs in the last digit)."""
    answer = httpx.post(server + "predict", content=data, headers={"content-type": "image/jpeg"})
    body = answer.json()
    if body["none_of_these"]:
        return f"none of these categories (closest: {body['category']})"
    if body["unsure"]:
        return f"not sure: {body['category']} or {body['runner_up']}?"
    return body["category"]


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_phone_photo_goes_up_as_a_small_png_and_gets_the_whole_files_answer(
    orientation: int, page: Any, server: str, tmp_path: Path
) -> None:
    pixels = np.asarray(Image.open(IMGS / "ship.png").convert("RGB"))
    data = photos.phone_photo(pixels, orientation=orientation)
    assert len(data) > 3_000_000
    photo = tmp_path / "IMG_0042.JPG"
    photo.write_bytes(data)
    choose(page, photo)
    (li,) = results(page)
    heading, name = shown(li)
    sent = page.execute_script("return window.__sent")
    assert len(sent) == 1 and sent[0] < 300 * 1024, sent
    assert f"sent as a {UPLOAD_SIDE}×{UPLOAD_SIDE} PNG of" in name
    assert heading.split(" — ")[0] == servers_answer(server, data)


def test_a_small_png_goes_as_it_is(page: Any) -> None:
    choose(page, IMGS / "cat.png")
    (li,) = results(page)
    assert page.execute_script("return window.__sent") == [(IMGS / "cat.png").stat().st_size]
    assert "sent as" not in shown(li)[1]


def test_a_webp_the_api_refuses_is_converted_on_the_way(page: Any, tmp_path: Path) -> None:
    webp = tmp_path / "ship.webp"
    Image.open(IMGS / "ship.png").convert("RGB").resize((640, 480)).save(webp, "WEBP")
    choose(page, webp)
    (li,) = results(page)
    heading, name = shown(li)
    assert "sent as a" in name and "ship" in heading, (heading, name)


def test_a_format_the_browser_cannot_open_is_explained(page: Any, tmp_path: Path) -> None:
    """HEIC on Chromium: the page says which formats to send instead of uploading it."""
    from selenium.webdriver.common.by import By

    heic = tmp_path / "IMG_0001.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(2000))
    choose(page, heic)
    (li,) = results(page)
    message = li.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "image/hei" in message and "PNG or JPEG" in message  # Chromium says image/heif
    assert page.execute_script("return window.__sent") == []
