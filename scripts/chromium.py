"""Debian's headless Chromium under Selenium, as the browser tests, `make bench-page` and the
upload-reduction study drive it."""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get(
    "CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver"
)
# Run before each page's own scripts: window.__sent lists the bytes of every fetch's body.
SENT_BYTES = """
window.__sent = [];
const __fetch = window.fetch;
window.fetch = (resource, init) => {
  const body = init && init.body;
  let bytes = 0;
  if (body instanceof Blob) bytes = body.size;
  else if (typeof body === "string") bytes = new TextEncoder().encode(body).length;
  else if (body instanceof FormData) {
    for (const [, value] of body) bytes += value instanceof Blob ? value.size : value.length;
  }
  window.__sent.push(bytes);
  return __fetch(resource, init);
};
"""


def headless(*arguments: str, count_sent: bool = False, **capabilities: Any) -> Any:
    """A Selenium driver of headless Chromium (extra command-line ``arguments`` and
    ``capabilities``); with ``count_sent``, pages record what each fetch sent (SENT_BYTES)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    for argument in arguments:
        options.add_argument(argument)
    for name, value in capabilities.items():
        options.set_capability(name, value)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if count_sent:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SENT_BYTES})
    return driver
