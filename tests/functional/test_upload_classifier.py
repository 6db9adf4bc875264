"""The S3-upload Lambda with moto: every event shape, errors, idempotency, partial failures."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from classifier import service, upload_classifier
from PIL import Image

from scripts.events import s3_event, s3_record, sqs_event, sqs_message
from scripts.invoke import LocalContext
from tests.conftest import IMGS, load_event

BUCKET = "cifar10-uploads-example"
KEY = "uploads/my cat+1.png"  # what the sample events name, URL-encoded
RESULT = "results/my cat+1.png.json"


def put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    return dict(s3.put_object(Bucket=BUCKET, Key=key, Body=body))


def result(s3: Any, key: str = RESULT) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def invoke(event: dict[str, Any]) -> Any:
    return upload_classifier.handler(event, LocalContext(function_name="cifar10-uploads"))


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
    monkeypatch.setenv("MAX_OBJECT_BYTES", "1000")
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
    with pytest.raises(upload_classifier.UnknownEvent, match="neither an S3 notification"):
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


# --- every object gets an answer, whatever its name ------------------------------------------
def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        ("uploads/My Dog+1.PNG", "PNG"),
        ("uploads/ship.jpg", "JPEG"),
        ("uploads/IMG_0042.JPG", "JPEG"),
        ("uploads/2026-11-26 horse.jpeg", "JPEG"),
        ("uploads/no extension", "PNG"),
        ("uploads/a jpeg named .png", "JPEG"),
        ("uploads/ünïcødé/猫.Png", "PNG"),
    ],
)
def test_any_name_of_a_png_or_jpeg_is_classified(s3: Any, key: str, fmt: str) -> None:
    version = put(s3, key, png_bytes(fmt=fmt))["VersionId"]
    invoke(s3_event(s3_record(BUCKET, key, version_id=version, sequencer="0A")))
    record = result(s3, f"results/{key.removeprefix('uploads/')}.json")
    assert record["key"] == key
    assert record["category"] in record["probabilities"], record


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"hello, world", "not a decodable image"),
        (b"", "empty"),
        (b"GIF89a" + bytes(40), "not a decodable image|not accepted"),
    ],
)
def test_any_other_object_gets_an_error_result(s3: Any, body: bytes, reason: str) -> None:
    put(s3, "uploads/notes.txt", body)
    invoke(s3_event(s3_record(BUCKET, "uploads/notes.txt", sequencer="0A")))
    record = result(s3, "results/notes.txt.json")
    assert re.search(reason, record["error"]), record
    assert "category" not in record


# --- no stale results -------------------------------------------------------------------------
def test_an_older_version_processed_last_does_not_replace_the_newer_result(s3: Any) -> None:
    old = put(s3, KEY, png_bytes((200, 30, 30)))["VersionId"]
    new = put(s3, KEY, b"the newer version is not an image")["VersionId"]
    newer = s3_event(s3_record(BUCKET, KEY, version_id=new, sequencer="0055AED6DCD90281E6"))
    older = s3_event(s3_record(BUCKET, KEY, version_id=old, sequencer="0055AED6DCD90281E5"))
    invoke(sqs_event(sqs_message(newer)))
    response = invoke(sqs_event(sqs_message(older)))
    assert response == {"batchItemFailures": []}
    record = result(s3)
    assert record["version_id"] == new and "error" in record
    head = s3.head_object(Bucket=BUCKET, Key=RESULT)
    assert head["Metadata"]["sequencer"] == "0055AED6DCD90281E6"


def test_a_newer_version_replaces_an_older_result(s3: Any) -> None:
    old = put(s3, KEY, b"not an image at first")["VersionId"]
    new = put(s3, KEY, png_bytes())["VersionId"]
    invoke(s3_event(s3_record(BUCKET, KEY, version_id=old, sequencer="05")))
    invoke(s3_event(s3_record(BUCKET, KEY, version_id=new, sequencer="0501")))  # longer, later
    record = result(s3)
    assert record["version_id"] == new and "category" in record


@pytest.mark.parametrize(
    ("a", "b", "a_is_later"),
    [
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5", True),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E5", False),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E500", False),  # equal once right-padded
        ("0055AED6DCD90281E501", "0055AED6DCD90281E5", True),
        ("0055aed6dcd90281e6", "0055AED6DCD90281E5", True),
    ],
)
def test_sequencers_compare_right_padded(a: str, b: str, a_is_later: bool) -> None:
    assert upload_classifier.later(a, b) is a_is_later


def test_a_result_written_meanwhile_by_a_newer_upload_wins_the_race(s3: Any) -> None:
    """Between our conditional attempts another writer stores a later result: we back off."""
    put(s3, KEY, png_bytes())
    calls = {"n": 0}
    put_object = s3.put_object

    def racing_put(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1 and kwargs.get("Key") == RESULT:  # the newer writer lands first
            put_object(Bucket=BUCKET, Key=RESULT, Body=b"{}", Metadata={"sequencer": "FF"})
        return put_object(**kwargs)

    written = upload_classifier.write_result(
        type("S3", (), {"put_object": staticmethod(racing_put), "head_object": s3.head_object})(),
        BUCKET,
        RESULT,
        {"category": "cat"},
        "0A",
    )
    assert written == upload_classifier.SUPERSEDED
    assert s3.get_object(Bucket=BUCKET, Key=RESULT)["Body"].read() == b"{}"


def test_the_drop_folder_emits_the_apis_metrics_by_model_version(
    s3: Any, use_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cifar10-uploads")
    put(s3, KEY, (IMGS / "cat.png").read_bytes())
    put(s3, "uploads/notes.txt", b"not an image")
    event = sqs_event(
        *(sqs_message(s3_event(s3_record(BUCKET, k))) for k in (KEY, "uploads/notes.txt"))
    )
    capsys.readouterr()
    invoke(event)
    printed = capsys.readouterr().out.splitlines()
    (record,) = [json.loads(line) for line in printed if '"_aws"' in line]
    version = json.loads(use_model.read_text())["model_version"]
    assert record["ModelVersion"] == version and record["service"] == "cifar10-uploads"
    names = {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    category = result(s3)["category"]
    assert {"ImagesClassified", "ImagesRejected", "Confidence", f"Category_{category}"} <= names


def test_an_invocation_without_metrics_writes_nothing_and_warns_nothing(
    s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cifar10-uploads")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools' "No application metrics" would raise here
        # A key outside uploads/ is ignored: nothing classified, no metric recorded.
        invoke(s3_event(s3_record(BUCKET, "results/elsewhere.json")))
    assert '"_aws"' not in capsys.readouterr().out
