"""Shared by the browser tests: Debian's Chromium under Selenium, and the local server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import chromium, local_server
from scripts.chromium import CHROMEDRIVER, CHROMIUM
from scripts.local_server import free_port
from tests.conftest import ROOT

# Each browser test module skips with this reason when there is no browser to drive.
BROWSER_MISSING = (
    None
    if Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()
    else f"no Chromium at {CHROMIUM} or no chromedriver at {CHROMEDRIVER} "
    "(`apt-get install chromium chromium-driver`, which `make test` does as root)"
)


def start_server(port: int, manifest: Path) -> subprocess.Popen[bytes]:
    return local_server.start(port, manifest=manifest, quiet=True)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    process = start_server(port, ROOT / "models" / "latest" / "manifest.json")
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium.headless(
        "--window-size=1200,1600", count_sent=True, **{"goog:loggingPrefs": {"browser": "ALL"}}
    )
    driver.implicitly_wait(0)
    # Every page records what its Content-Security-Policy blocked (this script runs outside
    # the page's policy, as devtools do); no_policy_violations reads it after each test.
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', (e) => "
            "window.__violations.push(e.violatedDirective + ' blocked ' + e.blockedURI));"
        },
    )
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def no_policy_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each browser test fails on anything the pages' policy blocked: a securitypolicyviolation
    on the page it ends on, or a CSP refusal in the console of any page it opened."""
    yield
    if "browser" not in request.fixturenames:
        return
    driver = request.getfixturevalue("browser")
    seen = driver.execute_script("return window.__violations || []")
    refused = [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert seen == [] and refused == [], (seen, refused)


def wait_for(driver: Any, condition: Any, seconds: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def results(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, "#results li.result"))


def choose(driver: Any, *paths: Path) -> None:
    from selenium.webdriver.common.by import By

    before = len(results(driver))
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    wait_for(
        driver,
        lambda d: (
            len(results(d)) == before + len(paths)
            and "Done" in d.find_element(By.ID, "status").text
        ),
    )
