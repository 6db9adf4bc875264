"""training/sagemaker_entry.py: the SageMaker job trains under SageMaker's contract (its
environment, channels and hyperparameters) and writes a candidate, never latest.
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

from release import cloud
from tests.conftest import ROOT


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
    command += ["--candidate-record", str(tmp_path / "candidate.json")]  # the pipeline's
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
    assert json.loads((tmp_path / "candidate.json").read_text()) == {"model_version": folder.name}


def test_a_pipeline_job_records_its_candidate_in_the_bucket(aws_env: None) -> None:
    import boto3
    from moto import mock_aws

    from training.sagemaker_entry import record_candidate

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        record_candidate("s3://models/sagemaker/output/job/candidate.json", "v1")
        body = s3.get_object(Bucket="models", Key="sagemaker/output/job/candidate.json")["Body"]
        assert json.loads(body.read()) == {"model_version": "v1"}


def test_init_from_an_s3_folder_downloads_the_float_weights_latest_names_with_their_manifest(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's job starts from the served model in the model bucket, its head kept: the
    manifest beside the weights names the labels (transfer_weights keeps the head on it)."""
    import boto3
    from moto import mock_aws

    from training import network

    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path / "cache"))
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="models/v1/model.keras", Body=b"weights")
        for folder, path in (("v1", "model.tflite"), ("latest", "../v1/model.tflite")):
            manifest = json.dumps({"model_path": path, "class_names": ["cat", "dog"]})
            s3.put_object(Bucket="models", Key=f"models/{folder}/manifest.json", Body=manifest)
        for location in ("s3://models/models/v1/", "s3://models/models/latest"):
            path = network.published_float_model(location)
            assert path.read_bytes() == b"weights" and path.parent.name == "v1"
            beside = json.loads((path.parent / "manifest.json").read_text())
            assert beside == {"model_path": "model.tflite", "class_names": ["cat", "dog"]}
        with pytest.raises(SystemExit, match=r"cannot read model\.keras"):
            s3.delete_object(Bucket="models", Key="models/v1/model.keras")
            (tmp_path / "cache").rename(tmp_path / "old-cache")
            network.published_float_model("s3://models/models/v1")


def test_the_entry_point_names_a_channel_without_data(tmp_path: Path) -> None:
    from training import sagemaker_entry

    with pytest.raises(SystemExit, match="make upload-data"):
        sagemaker_entry.find_data(tmp_path, tmp_path / "scratch")
