"""Training in the cloud: the SageMaker entry point under SageMaker's contract, and the launcher.

The contract run uses `.venv-sagemaker` (`make sagemaker-env`): Python 3.12, TensorFlow 2.19 and
the oldest Keras it accepts, plus the job's requirements.txt, as in AWS's TensorFlow 2.19 training
container. The code is what the launcher uploads, unpacked into an /opt/ml-like tree.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from release import cloud
from tests.conftest import ROOT

BUCKET = "cifar10-models-example"
ROLE = "arn:aws:iam::123456789012:role/cifar10-training"


def test_the_launcher_starts_a_script_mode_job_that_writes_a_candidate(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        request = cloud.launch(
            BUCKET,
            ROLE,
            instance_type="ml.g4dn.xlarge",
            spot=True,
            max_runtime_minutes=90,
            hyperparameters={"recipe": "default", "epochs": "12"},
        )
        job = boto3.client("sagemaker").describe_training_job(
            TrainingJobName=request["TrainingJobName"]
        )
        source = request["HyperParameters"]["sagemaker_submit_directory"]
        key = json.loads(source).removeprefix(f"s3://{BUCKET}/")
        archive = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert job["RoleArn"] == ROLE
    image = job["AlgorithmSpecification"]["TrainingImage"]
    assert image == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:"
        "2.19.0-gpu-py312-cu125-ubuntu22.04-sagemaker"
    )
    hyperparameters = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert hyperparameters["sagemaker_program"] == "training/sagemaker_entry.py"
    assert hyperparameters["candidate-uri"] == f"s3://{BUCKET}"  # models/<v>/ there, not latest
    assert hyperparameters["epochs"] == "12"
    (channel,) = job["InputDataConfig"]
    assert channel["ChannelName"] == "training"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/data/cifar10.tar"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/sagemaker/output/"
    assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 90 * 60
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] >= 90 * 60
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {
        "training/sagemaker_entry.py",
        "training/train.py",
        "functions/classifier/core.py",
        "requirements.txt",
    } <= names


def test_a_cpu_instance_gets_the_cpu_image_and_on_demand_has_no_wait() -> None:
    request = cloud.job_request(
        name="j",
        bucket=BUCKET,
        role_arn=ROLE,
        region="eu-west-1",
        source_uri="s3://b/k",
        instance_type="ml.c5.2xlarge",
        spot=False,
    )
    image = request["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith("tensorflow-training:2.19.0-cpu-py312-ubuntu22.04-sagemaker")
    assert ".eu-west-1." in image
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    assert request["EnableManagedSpotTraining"] is False


def test_upload_data_puts_one_archive_in_the_bucket_once(
    aws_env: None, synthetic_data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        uri = cloud.upload_data(Path(synthetic_data["folder"]), BUCKET)
        body = s3.get_object(Bucket=BUCKET, Key="data/cifar10.tar")["Body"].read()
        cloud.upload_data(Path(synthetic_data["folder"]), BUCKET)
    assert uri == f"s3://{BUCKET}/data/cifar10.tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tops = {name.split("/")[0] for name in tar.getnames()}
    assert tops == {"train", "test"}
    assert "is there already" in capsys.readouterr().out


def test_the_source_archive_carries_the_recipes_teachers(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from training import train

    teacher = json.loads((ROOT / "models" / "latest" / "manifest.json").read_text())
    version = teacher["model_version"]
    default = replace(train.RECIPES["default"], teachers=version)
    monkeypatch.setitem(train.RECIPES, "with-teacher", default)
    monkeypatch.setitem(train.RECIPES, "no-teacher", replace(default, teachers=""))

    def names(recipe: str) -> set[str]:
        with tarfile.open(fileobj=io.BytesIO(cloud.source_archive(recipe)), mode="r:gz") as tar:
            return set(tar.getnames())

    expected = {f"models/{version}/manifest.json", f"models/{version}/model.tflite"}
    assert expected <= names("with-teacher")
    assert not any(n.startswith("models/") for n in names("no-teacher"))
