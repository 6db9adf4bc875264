"""release/pipeline.py: the retraining pipeline's steps against a model bucket in moto.

The gate is the real one (``make promote``'s, in serving processes) on two real models: the tiny
model trained on the synthetic data set (the better one there) and the repository's published
model (at chance on synthetic images), with the data set uploaded as ``make upload-data`` does.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto import mock_aws

from release import cloud, pipeline
from release import promote as pr
from release.publish import Destination, point_latest
from tests.conftest import PUBLISHED
from tests.release.conftest import put_two_models

MODELS, UPLOADS = "models-bucket", "uploads-bucket"


@pytest.fixture
def world(
    aws_env: None,
    tiny_run: dict[str, Any],
    synthetic_data: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path / "cache"))
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        for bucket in (MODELS, UPLOADS):
            s3.create_bucket(Bucket=bucket)
        versions = put_two_models(s3, MODELS, tiny_run)
        archive = cloud.data_archive(Path(synthetic_data["folder"]), tmp_path)
        s3.upload_file(str(archive), MODELS, "data/cifar10.tar")
        settings = pipeline.Settings(
            {
                "MODELS_BUCKET": MODELS,
                "UPLOADS_BUCKET": UPLOADS,
                "TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/training",
                "TRAINING_SOURCE_URI": f"s3://{MODELS}/sagemaker/source/pipeline/sourcedir.tar.gz",
                "MIN_LABELS": "5",
            }
        )
        yield {
            "s3": s3,
            **versions,
            "settings": settings,
            "cache": tmp_path / "gate-cache",
            "data": str(synthetic_data["folder"]),
            "arrays": synthetic_data["arrays"],
        }


def record_candidate(s3: Any, job: str, version: str) -> None:
    key = f"sagemaker/output/{job}/candidate.json"
    s3.put_object(Bucket=MODELS, Key=key, Body=json.dumps({"model_version": version}))


def label(s3: Any, n: int) -> None:
    for i in range(n):
        s3.put_object(Bucket=UPLOADS, Key=f"labels/dog/{i:04d}.png", Body=b"png")


def test_the_gate_is_make_promotes_on_the_data_sets_test_split(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    point_latest(f"s3://{MODELS}", world["worse"])
    record_candidate(s3, "cifar10-retrain-20261207-010000", world["better"])
    event = {"job": "cifar10-retrain-20261207-010000", "served": world["worse"]}
    result = pipeline.gate(event, world["settings"], world["cache"])
    assert result["accepted"] and result["candidate"] == world["better"]
    verdict = result["verdict"]
    assert verdict["images"] == 100 and verdict["current"] == world["worse"]
    assert f"make promote VERSION={world['better']}" in result["message"]
    key = "sagemaker/output/cifar10-retrain-20261207-010000/verdict.json"
    recorded = json.loads(s3.get_object(Bucket=MODELS, Key=key)["Body"].read())
    assert recorded == {k: result[k] for k in ("candidate", "accepted", "message")}
    # The same figures make promote's gate gives on the data set's folder.
    by_hand = pr.gate(Destination(f"s3://{MODELS}"), world["better"], data=world["data"])
    assert by_hand.candidate_accuracy == verdict["candidate_accuracy"]
    assert by_hand.current_accuracy == verdict["current_accuracy"]
    json.dumps(result)  # the state machine's payload: JSON all through


def test_a_worse_candidate_is_refused_with_its_figures(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    point_latest(f"s3://{MODELS}", world["better"])
    record_candidate(s3, "cifar10-retrain-20261207-020000", world["worse"])
    event = {"job": "cifar10-retrain-20261207-020000", "served": world["better"]}
    result = pipeline.gate(event, world["settings"], world["cache"])
    assert not result["accepted"]
    assert "refused" in result["message"] and "nothing changed" in result["message"]
    assert "< current" in result["message"]


def test_the_test_split_is_read_from_the_archive_only(world: dict[str, Any]) -> None:
    *_, y_test = world["arrays"]
    manifest = json.loads((PUBLISHED).read_text())
    arrays = pipeline.test_split(
        Destination(f"s3://{MODELS}"), manifest["class_names"], 32, world["cache"]
    )
    with np.load(arrays) as z:
        assert z["x"].shape == (len(y_test), 32, 32, 3) and z["x"].dtype == np.uint8
        assert sorted(np.bincount(z["y"], minlength=10)) == sorted(
            np.bincount(y_test, minlength=10)
        )


def test_the_test_split_of_python_batches(synthetic_data: dict[str, Any], tmp_path: Path) -> None:
    archive = cloud.data_archive(Path(synthetic_data["batches"]), tmp_path)
    _, _, x_test, y_test = synthetic_data["arrays"]
    with archive.open("rb") as stream:
        x, y = pipeline.read_test_split(stream, [str(i) for i in range(10)], 32)
    assert np.array_equal(x, x_test) and np.array_equal(y, y_test)


def test_an_archive_without_a_test_split_is_refused_by_name(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar"
    with tarfile.open(archive, "w") as tar:
        (tmp_path / "a.txt").write_text("x")
        tar.add(tmp_path / "a.txt", arcname="train/cat/a.txt")
    with archive.open("rb") as stream, pytest.raises(pr.PromotionRefused, match="no test split"):
        pipeline.read_test_split(stream, ["cat"], 32)


def test_check_counts_labels_the_served_model_never_saw(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    point_latest(f"s3://{MODELS}", world["worse"])
    label(s3, 4)
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    result = pipeline.check({}, world["settings"], now=now)
    assert result["labels"] == {"new": 4, "total": 4, "wanted": 5} and not result["enough"]
    assert "4 new labels" in result["message"] and "request" not in result
    label(s3, 5)  # labels 0-4 again (same keys) and one more
    result = pipeline.check({}, world["settings"], now=now)
    assert result["enough"] and result["job"] == "cifar10-retrain-20261207-030000"
    request = result["request"]
    assert request["TrainingJobName"] == result["job"]
    hyper = {k: json.loads(v) for k, v in request["HyperParameters"].items()}
    assert hyper["candidate-record"] == (
        f"s3://{MODELS}/sagemaker/output/{result['job']}/candidate.json"
    )
    assert hyper["init-from"] == f"s3://{MODELS}/models/{world['worse']}/"
    # A run started by hand may ask for fewer.
    assert pipeline.check({"minLabels": 1}, world["settings"])["enough"]


def test_check_counts_labels_after_the_last_judged_run_started(world: dict[str, Any]) -> None:
    """A judged candidate learnt the labels before its job started (accepted or not); a job
    that failed before a verdict learnt nothing that counts."""
    s3 = world["s3"]
    point_latest(f"s3://{MODELS}", world["worse"])
    label(s3, 6)
    started = datetime.now(UTC) + timedelta(minutes=5)  # after the labels were written
    job = f"cifar10-retrain-{started:%Y%m%d-%H%M%S}"
    record_candidate(s3, job, world["better"])  # trained, never judged
    assert pipeline.check({"minLabels": 1}, world["settings"])["labels"]["new"] == 6
    verdict = {"candidate": world["better"], "accepted": False, "message": "refused"}
    pipeline.record_verdict(Destination(f"s3://{MODELS}"), job, verdict)
    result = pipeline.check({"minLabels": 1}, world["settings"])
    assert result["labels"]["new"] == 0 and not result["enough"]
    earlier = f"cifar10-retrain-{started - timedelta(days=1):%Y%m%d-%H%M%S}"
    pipeline.record_verdict(Destination(f"s3://{MODELS}"), earlier, verdict)
    assert pipeline.check({"minLabels": 1}, world["settings"])["labels"]["new"] == 0


def test_labels_since_compares_each_labels_time(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    label(s3, 3)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert pipeline.labels_since(s3, UPLOADS, later) == (0, 3)
    assert pipeline.labels_since(s3, UPLOADS, later - timedelta(days=1)) == (3, 3)


def test_promote_writes_the_record_then_latest(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    point_latest(f"s3://{MODELS}", world["worse"])
    verdict = {
        "candidate": world["better"],
        "current": world["worse"],
        "candidate_accuracy": 0.5,
        "current_accuracy": 0.1,
        "tolerance": 0.002,
        "images": 100,
        "data_fingerprint": "f",
        "decided": "2026-12-07T00:00:00+00:00",
    }
    event = {"candidate": world["better"], "served": world["worse"], "verdict": verdict}
    result = pipeline.promote(event, world["settings"])
    latest = json.loads(
        s3.get_object(Bucket=MODELS, Key="models/latest/manifest.json")["Body"].read()
    )
    assert latest["model_version"] == result["latest"] == world["better"]
    key = f"models/{world['better']}/promotion.json"
    record = json.loads(s3.get_object(Bucket=MODELS, Key=key)["Body"].read())
    assert record["previous"] == world["worse"] and record["candidate_accuracy"] == 0.5
    assert "promoted and rolled out" in result["message"]
