"""The review page in headless Chromium: the token asked once, pending items oldest first with
the model's answer, a button and a key per category, none of these, skip; labels land in S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import BROWSER_MISSING, free_port, start_server, wait_for
from tests.conftest import CLASSES, IMGS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]
if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)
TOKEN = "page-reviewer-token"
SHOT = os.environ.get("REVIEW_SCREENSHOT")  # docs/review.png is drawn by this test


@pytest.fixture
def reviewed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    import secrets

    import boto3
    from moto.server import ThreadedMotoServer

    bucket = f"review-page-{secrets.token_hex(4)}"  # moto's state outlives one server

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "REVIEW_BUCKET": bucket,
        "REVIEWER_TOKEN": TOKEN,
        "CAPTURE": "all",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    api_port = free_port()
    server = start_server(api_port, ROOT / "models" / "latest" / "manifest.json")
    url = f"http://127.0.0.1:{api_port}"
    for name in ("cat.png", "dog.png", "ship.png"):  # captured oldest first
        with (IMGS / name).open("rb") as f:
            assert httpx.post(f"{url}/predict", files={"file": (name, f)}).status_code == 200
    yield url, (s3, bucket, moto)
    server.terminate()
    server.wait()
    if moto._thread is not None:  # a test may have stopped it already
        moto.stop()


def labels(store: Any) -> list[str]:
    s3, bucket, _ = store
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="labels/").get("Contents", [])
    return sorted(o["Key"].split("/")[1] for o in listing)


def test_a_reviewer_labels_by_key_and_button_skips_and_sees_the_oldest_first(
    reviewed_server: tuple[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, s3 = reviewed_server
    browser.get(f"{url}/review")
    token = browser.find_element(By.ID, "token")
    token.send_keys(TOKEN, Keys.ENTER)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.item")) == 3)
    items = browser.find_elements(By.CSS_SELECTOR, "li.item")
    assert [i.find_element(By.CSS_SELECTOR, ".meta").text.split(" · ")[0] for i in items] == [
        "cat.png",
        "dog.png",
        "ship.png",
    ]
    # The token is held in the page's memory only: no other page of this origin can read it.
    stored = browser.execute_script(
        "return JSON.stringify(sessionStorage) + JSON.stringify(localStorage)"
    )
    assert TOKEN not in stored
    first = items[0]
    assert "current" in first.get_attribute("class")
    assert first.find_element(By.TAG_NAME, "h2").text.startswith("model: cat")
    buttons = first.find_elements(By.CSS_SELECTOR, ".labels button")
    assert [b.get_attribute("data-label") for b in buttons] == [*CLASSES, "none", ""]
    keys = [b.find_element(By.TAG_NAME, "kbd").text for b in buttons]
    assert keys == [*"1234567890", "n", "s"]
    if SHOT:
        browser.save_screenshot(SHOT)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(str(CLASSES.index("cat") + 1))  # cat's key labels the current item
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.item")) == 2)
    body.send_keys("s")  # skip the dog for now: it goes to the end
    current = browser.find_element(By.CSS_SELECTOR, "li.item.current")
    assert current.find_element(By.CSS_SELECTOR, ".meta").text.startswith("ship.png")
    current.find_element(By.CSS_SELECTOR, "button.none").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.item")) == 1)
    wait_for(browser, lambda d: len(labels(s3)) == 2)
    assert labels(s3) == ["cat", "none"]


def test_when_storage_fails_the_page_says_so_and_keeps_the_reviewers_place(
    reviewed_server: tuple[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, store = reviewed_server
    browser.get(f"{url}/review")
    browser.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.item")) == 3)
    store[2].stop()  # S3 is gone: every call the API makes to it now fails
    browser.find_element(By.CSS_SELECTOR, "li.item.current button.none").click()
    wait_for(browser, lambda d: "your place is kept" in d.find_element(By.ID, "status").text, 60)
    status = browser.find_element(By.ID, "status").text
    assert "storage is unavailable" in status
    current = browser.find_element(By.CSS_SELECTOR, "li.item.current")
    assert current.find_element(By.CSS_SELECTOR, ".meta").text.startswith("cat.png")
    assert len(browser.find_elements(By.CSS_SELECTOR, "li.item")) == 3


def test_a_wrong_token_is_refused_on_the_page_and_labels_nothing(
    reviewed_server: tuple[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, s3 = reviewed_server
    browser.get(f"{url}/review")
    browser.find_element(By.ID, "token").send_keys("not-the-token", Keys.ENTER)
    wait_for(browser, lambda d: "not right" in d.find_element(By.ID, "status").text)
    assert browser.find_elements(By.CSS_SELECTOR, "li.item") == []
    assert not browser.find_element(By.ID, "login").get_attribute("hidden")
    assert labels(s3) == []
