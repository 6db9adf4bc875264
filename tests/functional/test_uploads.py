"""The S3-upload Lambda with moto: every event shape, errors, idempotency, partial failures."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from classifier import service, uploads
from moto import mock_aws

from scripts.invoke import LocalContext
from tests.conftest import IMGS, load_event

pytestmark = pytest.mark.slow
BUCKET = "cifar10-uploads-example"
KEY = "uploads/my cat+1.png"  # what the sample events name, URL-encoded
RESULT = "results/my cat+1.png.json"


@pytest.fixture
def s3(aws_env: None, use_model: Path) -> Iterator[Any]:
    with mock_aws():
        service.reset()
        client = service.s3_client()
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client
        service.reset()


def put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    return dict(s3.put_object(Bucket=BUCKET, Key=key, Body=body))


def result(s3: Any, key: str = RESULT) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def invoke(event: dict[str, Any]) -> Any:
    return uploads.handler(event, LocalContext(function_name="cifar10-uploads"))


def assert_classified(record: dict[str, Any], manifest: Path) -> None:
    assert record["bucket"] == BUCKET and record["key"] == KEY
    assert record["category"] in record["probabilities"] and len(record["probabilities"]) == 10
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert record["model_version"] == json.loads(manifest.read_text())["model_version"]
    assert record["classified_at"] and record["etag"]
    assert "error" not in record


@pytest.mark.parametrize(
    "name", ["s3-put.json", "sqs-s3-put.json", "eventbridge-object-created.json"]
)
def test_each_event_shape_writes_a_result(name: str, s3: Any, use_model: Path) -> None:
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    response = invoke(load_event(name))
    assert_classified(result(s3), use_model)
    if name.startswith("sqs"):
        assert response == {"batchItemFailures": []}


def test_the_key_is_url_decoded_per_record(s3: Any) -> None:
    event = load_event("s3-put.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "uploads/my+cat%2B1.png"
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    invoke(event)
    assert result(s3)["key"] == "uploads/my cat+1.png"


def test_the_version_id_is_read_and_recorded(s3: Any) -> None:
    first = put(s3, KEY, (IMGS / "cat.png").read_bytes())
    put(s3, KEY, b"a newer version that is not an image")
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["versionId"] = first["VersionId"]
    invoke(event)
    record = result(s3)
    assert record["version_id"] == first["VersionId"]
    assert "error" not in record  # the cat version was read, not the newest


def test_a_non_image_gets_a_result_with_an_error(s3: Any) -> None:
    put(s3, KEY, b"%PDF-1.7 definitely not a PNG")
    invoke(load_event("s3-put.json"))
    record = result(s3)
    assert "not a decodable image" in record["error"]
    assert "category" not in record


def test_an_oversized_object_gets_an_error_without_being_read(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    service.settings.cache_clear()
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    invoke(load_event("s3-put.json"))
    assert "at most 1000 are accepted" in result(s3)["error"]


def test_keys_under_the_results_prefix_are_ignored(s3: Any) -> None:
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = "results/my+cat%2B1.png.json"
    put(s3, "results/my cat+1.png.json", b"{}")
    assert invoke(event) == {"results": []}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        "results/my cat+1.png.json"
    ]


def test_prefixes_come_from_the_environment(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOADS_PREFIX", "in/")
    monkeypatch.setenv("RESULTS_PREFIX", "out/")
    service.settings.cache_clear()
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = "in/a/b.png"
    put(s3, "in/a/b.png", (IMGS / "cat.png").read_bytes())
    invoke(event)
    assert result(s3, "out/a/b.png.json")["key"] == "in/a/b.png"


def test_redelivery_overwrites_the_same_result(s3: Any) -> None:
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    invoke(load_event("sqs-s3-put.json"))
    first = result(s3)
    invoke(load_event("sqs-s3-put.json"))
    second = result(s3)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")["Contents"]]
    assert keys == [RESULT]
    assert {k: v for k, v in first.items() if k != "classified_at"} == {
        k: v for k, v in second.items() if k != "classified_at"
    }


def test_sqs_reports_only_the_failed_message(s3: Any, use_model: Path) -> None:
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    event = load_event("sqs-s3-put.json")
    missing = json.loads(event["Records"][0]["body"])
    missing["Records"][0]["s3"]["object"]["key"] = "uploads/deleted-before-we-looked.png"
    bad = copy.deepcopy(event["Records"][0])
    bad["messageId"] = "message-that-fails"
    bad["body"] = json.dumps(missing)
    event["Records"].append(bad)
    response = invoke(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-that-fails"}]}
    assert_classified(result(s3), use_model)


def test_a_missing_object_is_a_failure_to_retry_not_a_skip(s3: Any) -> None:
    with pytest.raises(Exception, match="NoSuchKey"):
        invoke(load_event("s3-put.json"))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")


def test_a_whole_sqs_batch_failing_raises_so_it_is_retried(s3: Any) -> None:
    with pytest.raises(Exception, match="All records failed"):
        invoke(load_event("sqs-s3-put.json"))


def test_an_s3_test_event_in_sqs_is_acknowledged(s3: Any) -> None:
    event = load_event("sqs-s3-put.json")
    event["Records"][0]["body"] = json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    )
    assert invoke(event) == {"batchItemFailures": []}


def test_an_unknown_event_is_refused_by_name(s3: Any) -> None:
    with pytest.raises(uploads.UnknownEvent, match="neither an S3 notification"):
        invoke({"hello": "world"})


def test_a_model_that_cannot_load_is_retried(
    s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    monkeypatch.setenv("MODEL_URI", str(tmp_path / "nothing.json"))
    service.reset()
    with pytest.raises(Exception, match="All records failed"):
        invoke(load_event("sqs-s3-put.json"))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")
