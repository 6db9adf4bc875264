"""The web page at /, in a real browser: headless Chromium (Debian's) driven by Selenium, against
the local server (uvicorn, as `make serve` runs it), with real PNG and JPEG files.

`make test` installs Chromium and its driver where they are missing (Debian's packages); these
tests skip, saying why, only where no browser can be found.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.browser.conftest import BROWSER_MISSING, choose, free_port, results, start_server
from tests.conftest import CLASSES, IMGS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]
if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)


@pytest.fixture
def page(browser: Any, server: str) -> Any:
    browser.get(server)
    return browser


def test_png_and_jpeg_files_show_category_confidence_and_ten_bars(
    page: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    jpeg = tmp_path / "ship photo.jpg"
    Image.open(IMGS / "ship.png").convert("RGB").resize((640, 480)).save(jpeg, "JPEG")
    choose(page, IMGS / "cat.png", jpeg)
    shown = {}
    for li in results(page):
        name = li.find_element(By.CSS_SELECTOR, ".name").text
        heading = li.find_element(By.TAG_NAME, "h2").text
        bars = li.find_elements(By.CSS_SELECTOR, "table.probs tr")
        assert len(bars) == 10, li.text
        labels = [b.find_element(By.TAG_NAME, "th").text for b in bars]
        assert sorted(labels) == sorted(CLASSES)
        image = li.find_element(By.TAG_NAME, "img")
        assert "classified as" in image.get_attribute("alt")
        shown[name.split(" (")[0]] = heading
    for name, expected in (("cat.png", "cat"), ("ship photo.jpg", "ship")):
        heading = shown[name]
        if heading.startswith("not sure: "):  # below the doubt threshold: the two likeliest
            assert expected in heading.removeprefix("not sure: ").rstrip("?").split(" or ")
        else:
            category, confidence = heading.split(" — ")
            assert category == expected and confidence.endswith("%")


def test_the_page_names_the_models_categories_and_flags_doubt(browser: Any, tmp_path: Path) -> None:
    """With a doubt threshold no answer reaches, every answer reads "not sure: A or B?"."""
    import json

    from selenium.webdriver.common.by import By

    served = ROOT / "models" / "latest" / "manifest.json"
    manifest = json.loads(served.read_text())
    model = (served.parent / manifest["model_path"]).resolve()
    shutil.copy(model, tmp_path / model.name)
    manifest["model_path"] = model.name
    manifest.setdefault("inference", {})["unsure_below"] = 1.0
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    port = free_port()
    process = start_server(port, tmp_path / "manifest.json")
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        lead = browser.find_element(By.CSS_SELECTOR, "p.lead").text
        assert f"{len(CLASSES)} categories: {', '.join(manifest['class_names'])}" in lead
        choose(browser, IMGS / "dog.png")
        (li,) = results(browser)
        heading = li.find_element(By.TAG_NAME, "h2").text
        assert heading.startswith("not sure: ") and heading.endswith("?")
        first, second = heading.removeprefix("not sure: ").rstrip("?").split(" or ")
        assert first != second and {first, second} <= set(CLASSES)
    finally:
        process.terminate()
        process.wait()


def test_a_file_that_is_not_an_image_is_explained_in_words(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    fake = tmp_path / "notes.png"
    fake.write_bytes(b"these are notes, not a picture")
    choose(page, fake)
    (li,) = results(page)
    assert li.find_element(By.TAG_NAME, "h2").text == "Not classified"
    message = li.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "refused it (400)" in message and "not a decodable image" in message


def test_a_file_over_the_limit_is_refused_with_the_limit_named(page: Any, tmp_path: Path) -> None:
    """Only what the browser cannot reduce can be over the limit (a picture never is)."""
    from selenium.webdriver.common.by import By

    big = tmp_path / "huge.png"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    choose(page, big)
    (li,) = results(page)
    message = li.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "at most 4.0 MB" in message


def test_a_picture_over_the_limit_is_reduced_and_classified(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    big = tmp_path / "noise.png"
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(big, "PNG")
    assert big.stat().st_size > 4 * 1024 * 1024
    choose(page, big)
    (li,) = results(page)
    assert "sent as a 128×128 PNG" in li.find_element(By.CSS_SELECTOR, ".name").text
    assert li.find_elements(By.CSS_SELECTOR, "table.probs tr")


def test_the_page_says_so_when_the_api_is_down(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    process = start_server(port, ROOT / "models" / "latest" / "manifest.json")
    browser.get(f"http://127.0.0.1:{port}/")
    process.terminate()
    process.wait()
    choose(browser, IMGS / "dog.png")
    (li,) = results(browser)
    assert "did not answer" in li.find_element(By.CSS_SELECTOR, "[role=alert]").text


def test_the_page_is_usable_by_keyboard_and_labelled(page: Any) -> None:
    from selenium.webdriver.common.by import By

    chooser = page.find_element(By.ID, "files")
    label = page.find_element(By.CSS_SELECTOR, "label[for=files]")
    assert "choose" in label.text.lower()
    assert chooser.get_attribute("accept") == "image/*"  # WebP, AVIF, HEIC are converted
    assert chooser.get_attribute("multiple") is not None
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(page).send_keys(Keys.TAB).perform()  # the first Tab reaches the file chooser
    assert page.switch_to.active_element == chooser
    assert page.find_element(By.ID, "status").get_attribute("aria-live") == "polite"
    assert page.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


def test_the_page_is_plain_html_without_external_resources(server: str) -> None:
    html = httpx.get(server).text
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http://"
        not in html.split("<script>")[1].split("</script>")[0].replace("http://127", "")
    )
    assert 'fetch(new URL("predict", base)' in html  # relative: works behind a stage too


def test_screenshot_for_the_readme(page: Any, tmp_path: Path) -> None:
    """Renders the page with one image per class, as docs/page.png shows it."""
    choose(page, *sorted(IMGS.glob("*.png"))[:4])
    shot = tmp_path / "page.png"
    page.save_screenshot(str(shot))
    assert Image.open(io.BytesIO(shot.read_bytes())).size[0] >= 800
    if os.environ.get("UPDATE_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "page.png")


@pytest.mark.parametrize("auth", ["jwt", "iam"])
def test_the_page_adapts_to_the_deployments_auth_mode(
    auth: str, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("API_AUTH", auth)
    port = free_port()
    process = start_server(port, ROOT / "models" / "latest" / "manifest.json")
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        token = browser.find_element(By.ID, "token")
        chooser = browser.find_element(By.ID, "files")
        notice = browser.find_element(By.ID, "iam")
        if auth == "jwt":
            assert token.is_displayed() and chooser.is_enabled() and not notice.is_displayed()
            label = browser.find_element(By.CSS_SELECTOR, "label[for=token]").text
            assert "Access token" in label
        else:
            assert notice.is_displayed() and "signed with AWS credentials" in notice.text
            assert not chooser.is_enabled() and not token.is_displayed()
    finally:
        process.terminate()
        process.wait()
