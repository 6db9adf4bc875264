"""The promotion gate and rollback (`make promote`, `make rollback`) against a bucket in moto.

Two real models: the tiny one trained on the synthetic data set (well above chance there) and the
repository's published CIFAR-10 model (at chance on synthetic images). On the synthetic held-out
split the tiny model is the better one, so each can play the better or the worse candidate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from release import promote as pr
from release.publish import Destination
from tests.release.conftest import put_two_models

BUCKET = "cifar10-models-example"
LATEST = "models/latest/manifest.json"


@pytest.fixture
def models(
    aws_env: None,
    tiny_run: dict[str, Any],
    synthetic_data: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    """A model bucket holding both models; ``latest`` is set by each test."""
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path / "cache"))
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        versions = put_two_models(s3, BUCKET, tiny_run)
        yield {
            "s3": s3,
            **versions,
            "data": str(synthetic_data["folder"]),
        }


def set_latest(s3: Any, version: str) -> None:
    from release.publish import point_latest

    point_latest(f"s3://{BUCKET}", version)
    assert latest(s3) == version


def latest(s3: Any) -> str:
    return str(json.loads(s3.get_object(Bucket=BUCKET, Key=LATEST)["Body"].read())["model_version"])


def test_a_better_candidate_is_promoted_latest_last_with_a_record(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = models["s3"]
    set_latest(s3, models["worse"])
    written: list[str] = []
    write = Destination.write
    monkeypatch.setattr(
        Destination, "write", lambda self, key, body: written.append(key) or write(self, key, body)
    )
    verdict = pr.promote(models["better"], f"s3://{BUCKET}", data=models["data"])
    assert verdict.accepted and verdict.current == models["worse"]
    assert verdict.candidate_accuracy > verdict.current_accuracy + 0.2  # type: ignore[operator]
    assert latest(s3) == models["better"]
    assert written[-1] == LATEST  # latest moves last
    record = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"models/{models['better']}/promotion.json")["Body"].read()
    )
    assert record["previous"] == models["worse"] and record["images"] == 100
    assert len(record["per_class_change"]) == 10 and sum(record["per_class_change"].values()) > 0


def test_a_worse_candidate_is_refused_and_latest_stays(
    models: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = models["s3"]
    set_latest(s3, models["better"])
    before = s3.list_object_versions(Bucket=BUCKET, Prefix=LATEST)["Versions"]
    code = pr.main(
        [models["worse"], "--bucket", f"s3://{BUCKET}", "--data", models["data"], "--no-rollout"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "refused" in err and models["worse"] in err and "latest was not moved" in err
    assert s3.list_object_versions(Bucket=BUCKET, Prefix=LATEST)["Versions"] == before
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/{models['worse']}/promotion")
    assert listed["KeyCount"] == 0


def test_the_tolerance_lets_an_equal_model_through_and_is_a_setting(
    models: dict[str, Any],
) -> None:
    set_latest(models["s3"], models["better"])
    verdict = pr.gate(
        Destination(f"s3://{BUCKET}"), models["worse"], data=models["data"], tolerance=1.0
    )
    assert verdict.accepted  # a loss of up to 100 points allowed: anything passes
    strict = pr.gate(Destination(f"s3://{BUCKET}"), models["worse"], data=models["data"])
    assert not strict.accepted
    assert strict.regressions()  # the worse model loses on several classes, named


def test_a_candidate_that_does_not_load_as_served_is_refused(models: dict[str, Any]) -> None:
    s3 = models["s3"]
    set_latest(s3, models["worse"])
    key = f"models/{models['better']}/model.tflite"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not a model")
    with pytest.raises(pr.PromotionRefused, match=r"sha256|size|not a usable model"):
        pr.promote(models["better"], f"s3://{BUCKET}", data=models["data"])
    assert latest(s3) == models["worse"]


def test_the_current_model_is_not_promoted_again(models: dict[str, Any]) -> None:
    set_latest(models["s3"], models["better"])
    with pytest.raises(pr.PromotionRefused, match="already the current model"):
        pr.promote(models["better"], f"s3://{BUCKET}", data=models["data"])


def test_an_unknown_candidate_is_refused_by_name(models: dict[str, Any]) -> None:
    with pytest.raises(pr.PromotionRefused, match="models/nope/ cannot be read"):
        pr.promote("nope", f"s3://{BUCKET}", data=models["data"])


def test_rollback_returns_to_the_model_the_current_one_replaced(
    models: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = models["s3"]
    set_latest(s3, models["worse"])
    with pytest.raises(pr.PromotionRefused, match="no promotion record"):
        pr.rollback(f"s3://{BUCKET}")
    pr.promote(models["better"], f"s3://{BUCKET}", data=models["data"])
    assert pr.main(["--rollback", "--bucket", f"s3://{BUCKET}", "--no-rollout"]) == 0
    assert latest(s3) == models["worse"]
    out = capsys.readouterr().out
    assert f"ModelVersion={models['worse']}" in out  # the rollout that would run


def test_the_rollout_deploys_the_stack_with_the_model_version_parameter() -> None:
    command = pr.rollout_command("20270101-000000-fast-abcdef12", "MyStack")
    assert command[-6:] == [
        "deploy",
        "MyStack",
        "--parameters",
        "ModelVersion=20270101-000000-fast-abcdef12",
        "--require-approval",
        "never",
    ]
    assert command[command.index("deploy") - 1].startswith("aws-cdk@")


def test_a_failed_rollout_moves_latest_back_to_the_model_still_served(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = models["s3"]
    set_latest(s3, models["worse"])
    monkeypatch.setenv("CDK", "false")  # a deploy that fails (or is rolled back by CodeDeploy)
    code = pr.main([models["better"], "--bucket", f"s3://{BUCKET}", "--data", models["data"]])
    assert code == 1
    assert latest(s3) == models["worse"]
    err = capsys.readouterr().err
    assert "rollout of" in err and f"latest -> {models['worse']} again" in err
