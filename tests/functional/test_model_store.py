"""MODEL_URI: a manifest in S3 (moto) or on disk, the model beside it, checked on load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from classifier import service
from classifier.core import ModelError
from moto import mock_aws

from release.publish import publish


@pytest.fixture
def bucket(aws_env: None, tiny_run: dict[str, Any]) -> Any:
    with mock_aws():
        service.reset()
        s3 = service.s3_client()
        s3.create_bucket(Bucket="models-bucket")
        publish(Path(tiny_run["run_dir"]), "s3://models-bucket/team")
        yield s3
        service.reset()


def test_model_uri_from_s3_loads_the_latest_model(
    bucket: Any, monkeypatch: pytest.MonkeyPatch, tiny_run: dict[str, Any]
) -> None:
    monkeypatch.setenv("MODEL_URI", "s3://models-bucket/team/models/latest/manifest.json")
    service.reset()
    classifier = service.classifier()
    expected = json.loads((Path(tiny_run["run_dir"]) / "manifest.json").read_text())[
        "model_version"
    ]
    assert classifier.model_version == expected
    assert classifier.runtime.startswith("ai-edge-litert")
    assert service.classifier() is classifier  # cached per container


def test_a_pinned_version_loads_from_its_own_folder(bucket: Any, tiny_run: dict[str, Any]) -> None:
    version = json.loads((Path(tiny_run["run_dir"]) / "manifest.json").read_text())["model_version"]
    classifier = service.load_model(f"s3://models-bucket/team/models/{version}/manifest.json")
    assert classifier.model_version == version


def test_a_tampered_model_in_s3_is_refused(bucket: Any, tiny_run: dict[str, Any]) -> None:
    version = json.loads((Path(tiny_run["run_dir"]) / "manifest.json").read_text())["model_version"]
    bucket.put_object(
        Bucket="models-bucket", Key=f"team/models/{version}/model.tflite", Body=b"junk"
    )
    with pytest.raises(ModelError, match="does not match the manifest"):
        service.load_model("s3://models-bucket/team/models/latest/manifest.json")


def test_a_missing_manifest_in_s3_names_the_uri(bucket: Any) -> None:
    with pytest.raises(ModelError, match=r"cannot read s3://models-bucket/nope/manifest\.json"):
        service.load_model("s3://models-bucket/nope/manifest.json")


def test_a_local_path_works_too(tiny_manifest: Path) -> None:
    assert service.load_model(str(tiny_manifest)).class_names[3] == "cat"


def test_a_malformed_s3_uri_is_refused() -> None:
    with pytest.raises(ModelError, match="not an s3://bucket/key URI"):
        service.read_uri("s3://only-a-bucket")
