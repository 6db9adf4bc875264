"""The one moto fixture of the functional tests: the module's bucket (``BUCKET``), versioned as
the stack makes the uploads bucket, with the serving code's cached clients made inside the mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from classifier import api, capture, service
from fastapi.testclient import TestClient
from moto import mock_aws


@pytest.fixture
def s3(
    aws_env: None,
    use_model: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """A mocked S3 with the test module's ``BUCKET`` (versioned unless ``VERSIONED = False``)
    and the serving code's environment it names in ``ENV`` (UPLOADS_BUCKET, ...)."""
    bucket = request.module.BUCKET
    for name, value in getattr(request.module, "ENV", {}).items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        service.reset()
        capture.resume()
        client = service.s3_client()
        client.create_bucket(Bucket=bucket)
        if getattr(request.module, "VERSIONED", True):
            status = {"Status": "Enabled"}
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=status)
        yield client
        service.reset()
        capture.resume()


@pytest.fixture
def client(s3: Any) -> Iterator[TestClient]:
    """The API in-process, against the module's mocked bucket."""
    with TestClient(api.asgi) as c:
        yield c
