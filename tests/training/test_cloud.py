"""Training in the cloud: the SageMaker entry point under SageMaker's contract, and the launcher.

The contract run uses `.venv-sagemaker` (`make sagemaker-env`): Python 3.12, TensorFlow 2.19 and
the oldest Keras it accepts, plus the job's requirements.txt, as in AWS's TensorFlow 2.19 training
container. The code is what the launcher uploads, unpacked into an /opt/ml-like tree.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from release import cloud
from tests.conftest import ROOT

BUCKET = "cifar10-models-example"
ROLE = "arn:aws:iam::123456789012:role/cifar10-training"


def sagemaker_python() -> str | None:
    python = os.environ.get("SAGEMAKER_PYTHON") or str(ROOT / ".venv-sagemaker" / "bin" / "python")
    return python if Path(python).is_file() else None


def opt_ml(tmp_path: Path, data: Path) -> dict[str, Path]:
    """SageMaker's folders: the code unpacked from the source archive, the channel, model dir."""
    root = tmp_path / "opt" / "ml"
    code = root / "code"
    with tarfile.open(fileobj=io.BytesIO(cloud.source_archive()), mode="r:gz") as tar:
        tar.extractall(code, filter="data")
    channel = root / "input" / "data" / "training"
    channel.mkdir(parents=True)
    cloud.data_archive(data, channel)
    return {
        "code": code,
        "channel": channel,
        "model": root / "model",
        "output": root / "output" / "data",
    }


@pytest.mark.slow
def test_the_entry_point_trains_under_sagemakers_contract_and_writes_a_candidate(
    synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    python = sagemaker_python()
    if python is None:
        pytest.skip("no .venv-sagemaker (make sagemaker-env builds TensorFlow 2.19's environment)")
    paths = opt_ml(tmp_path, Path(synthetic_data["folder"]))
    bucket = tmp_path / "bucket"  # the candidate URI: a folder stands in for s3://bucket
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SM_CHANNEL_TRAINING": str(paths["channel"]),
        "SM_CHANNELS": json.dumps(["training"]),
        "SM_MODEL_DIR": str(paths["model"]),
        "SM_OUTPUT_DATA_DIR": str(paths["output"]),
        "SM_HPS": json.dumps({"epochs": 2, "widths": "8,16,16"}),
        "CIFAR10_CACHE": str(tmp_path / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    # As SageMaker's toolkit runs it: from /opt/ml/code, hyperparameters as --name value.
    command = [python, cloud.ENTRY_POINT, "--candidate-uri", str(bucket)]
    command += ["--epochs", "2", "--widths", "8,16,16", "--batch-size", "16", "--tta", "none"]
    # A 2-epoch net of 11k parameters quantises as the machine's kernels round (36% against 42%
    # in float on an AMD EPYC): this tests the job's contract; the int8 guard has its own test.
    command += ["--set", "max_int8_loss=1"]
    command += ["--model_dir", "s3://ignored/model"]  # what SageMaker's Python SDK would add
    done = subprocess.run(
        command, cwd=paths["code"], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (folder,) = (bucket / "models").iterdir()
    assert folder.name != "latest" and not (bucket / "models" / "latest").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tensorflow_version"] == cloud.TF_VERSION
    assert manifest["keras_version"] == "3.5.0"
    assert manifest["recipe"]["epochs"] == 2 and manifest["recipe"]["widths"] == [8, 16, 16]
    assert {"model.tflite", "manifest.json", "metrics.json"} <= {p.name for p in folder.iterdir()}
    assert {"model.tflite", "manifest.json"} <= {p.name for p in paths["model"].iterdir()}
    assert (paths["output"] / "metrics.json").is_file()
    assert f"int8_test_accuracy={manifest['metrics']['int8_test_accuracy']}" in done.stdout
    assert f"make promote VERSION={folder.name}" in done.stdout


def test_the_entry_point_names_a_channel_without_data(tmp_path: Path) -> None:
    from training import sagemaker_entry

    with pytest.raises(SystemExit, match="make upload-data"):
        sagemaker_entry.find_data(tmp_path, tmp_path / "scratch")


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
