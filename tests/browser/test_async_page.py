"""The page's async path in Chromium: a file over 4 MiB goes to S3 (a local moto server) with the
presigned POST, the drop-folder handler classifies it, and the page shows the answer."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from scripts.events import s3_event, s3_record
from tests.browser.conftest import BROWSER_MISSING, choose, free_port, results, start_server
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]
if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)
BUCKET = "page-uploads"


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "UPLOADS_BUCKET": BUCKET,
        "MODEL_URI": str(ROOT / "models" / "latest" / "manifest.json"),
    }.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    server.stop()


def drop_folder(stop: threading.Event) -> None:
    """What S3 -> SQS -> Lambda does when deployed: each new upload goes to the handler."""
    from classifier import service, upload_classifier

    service.reset()
    s3 = service.s3_client()
    seen: set[str] = set()
    while not stop.is_set():
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/").get("Contents", [])
        for obj in listed:
            if obj["Key"] not in seen:
                seen.add(obj["Key"])
                upload_classifier.process(s3_event(s3_record(BUCKET, obj["Key"], sequencer="0A")))
        time.sleep(0.2)


def test_a_file_over_4_mib_goes_through_s3_and_comes_back_classified(
    local_aws: str,
    browser: Any,
    tmp_path: Path,
) -> None:
    import boto3
    from selenium.webdriver.common.by import By

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_cors(
        Bucket=BUCKET,
        CORSConfiguration={
            "CORSRules": [
                {"AllowedMethods": ["POST"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}
            ]
        },
    )
    port = free_port()
    api = start_server(port, ROOT / "models" / "latest" / "manifest.json")
    stop = threading.Event()
    worker = threading.Thread(target=drop_folder, args=(stop,), daemon=True)
    worker.start()
    try:
        big = tmp_path / "big horse.png"
        noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
        noise.save(big, "PNG")
        assert big.stat().st_size > 4 * 1024 * 1024
        # The page reduces pictures to a few KB (test_photos.py); sent whole, as a browser that
        # cannot reduce them sends them, a file over 4 MiB takes the presigned POST to S3.
        browser.get(f"http://127.0.0.1:{port}/?send=original")
        choose(browser, big)
        (li,) = results(browser)
        heading = li.find_element(By.TAG_NAME, "h2").text
        # Noise is none of the categories: "none of these categories (closest: A)" is the likely
        # answer, but a category ("cat — 87.0%") or a doubt ("not sure: A or B?") is an answer too.
        answered = (" — " in heading, heading.startswith(("not sure: ", "none of these")))
        assert any(answered), li.text
        assert len(li.find_elements(By.CSS_SELECTOR, "table.probs tr")) == 10
    finally:
        stop.set()
        api.terminate()
        api.wait()
