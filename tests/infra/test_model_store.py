"""infra/components/model_store.py: one writer of models/latest."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.infra.conftest import resources

pytestmark = [pytest.mark.slow, pytest.mark.infra]


# --- one writer of models/latest -------------------------------------------------------------
def seed_calls(raw: dict[str, Any], bucket_name: str) -> list[dict[str, Any]]:
    """The SDK calls the deploy makes to seed latest (Create and Update), for ``bucket_name``."""
    (seed,) = resources(raw, "Custom::AWS").values()
    calls = []
    for phase in ("Create", "Update"):
        parts = seed["Properties"][phase]["Fn::Join"][1]
        calls.append(json.loads("".join(bucket_name if isinstance(p, dict) else p for p in parts)))
    return calls


def run_like_the_custom_resource(s3: Any, call: dict[str, Any]) -> str:
    """What CDK's AwsCustomResource handler does with a call: run it, ignore matching errors."""

    from botocore.exceptions import ClientError

    assert (call["service"], call["action"]) == ("S3", "putObject")
    try:
        s3.put_object(**call["parameters"])
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert re.search(call["ignoreErrorCodesMatching"], code), code
        return f"ignored {code}"
    return "written"


def test_a_deploy_copies_versioned_models_but_never_latest(synthesised: dict[str, Any]) -> None:
    (deployment,) = [
        d
        for k, d in resources(synthesised["raw"], "Custom::CDKBucketDeployment").items()
        if k.startswith("ModelStore")
    ]
    assert deployment["Properties"]["Exclude"] == ["latest/*"]
    assert deployment["Properties"]["Prune"] is False
    (zip_key,) = deployment["Properties"]["SourceObjectKeys"]
    staged = synthesised["outdir"] / f"asset.{zip_key.removesuffix('.zip')}"
    assert staged.is_dir()
    assert not (staged / "latest").exists(), "the asset must not carry latest/"
    assert any(staged.glob("*/model.tflite"))


BUCKET, LATEST = "models-bucket", "models/latest/manifest.json"


@pytest.fixture
def models_bucket(aws_env: None) -> Iterator[Any]:
    """An empty mocked models bucket (moto), for the seeding custom resource's calls."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_a_deploy_cannot_overwrite_a_published_model(
    synthesised: dict[str, Any], models_bucket: Any
) -> None:
    published = b'{"model_version": "published-by-training"}'
    models_bucket.put_object(Bucket=BUCKET, Key=LATEST, Body=published)
    for call in seed_calls(synthesised["raw"], BUCKET):
        assert call["parameters"]["Key"] == LATEST
        assert run_like_the_custom_resource(models_bucket, call) == "ignored PreconditionFailed"
    assert models_bucket.get_object(Bucket=BUCKET, Key=LATEST)["Body"].read() == published


def test_a_first_deploy_seeds_latest_with_the_repositorys_model(
    synthesised: dict[str, Any], models_bucket: Any
) -> None:
    create, _ = seed_calls(synthesised["raw"], BUCKET)
    assert run_like_the_custom_resource(models_bucket, create) == "written"
    seeded = json.loads(models_bucket.get_object(Bucket=BUCKET, Key=LATEST)["Body"].read())
    repository = json.loads((ROOT / "models" / "latest" / "manifest.json").read_text())
    assert seeded == repository
