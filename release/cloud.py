"""Train in the cloud: a SageMaker training job running this repository's training code.

    python -m release.cloud upload-data --data ../shared/datasets/cifar10-jpeg   (once)
    python -m release.cloud train [--instance-type ml.g4dn.xlarge] [--no-spot] [--wait] ...

``upload-data`` puts the data set in the model bucket as one archive, ``data/cifar10.tar`` (the
JPEG folders, or ``cifar-10-batches-py``). ``train`` packs ``training/``, ``release/`` and the
serving code (``functions/classifier``, which evaluates the int8 model as the Lambdas run it)
into a source archive, uploads it, and starts a training job in AWS's TensorFlow 2.19 training
container (script mode: ``training/sagemaker_entry.py``) with the stack's training role. The
job writes a candidate to ``models/<version>/``, never ``latest``; ``make promote
VERSION=<version>`` gates it.

The bucket and role come from the deployed stack's outputs (``ModelBucket``, ``TrainingRoleArn``);
``--bucket`` and ``--role-arn`` override them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier import contract

from release import ROOT

TF_VERSION = "2.19.0"  # AWS's newest TensorFlow training container; the oldest we test against
PY_TAG = "py312"
ENTRY_POINT = "training/sagemaker_entry.py"
CHANNEL = "training"


def image_uri(region: str, instance_type: str) -> str:
    """AWS's TensorFlow training image for the instance's processor."""
    gpu = instance_type.split(".")[1][:1] in ("g", "p")
    processor = f"gpu-{PY_TAG}-cu125-ubuntu22.04" if gpu else f"cpu-{PY_TAG}-ubuntu22.04"
    return (
        f"{contract.TRAINING_IMAGE_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/tensorflow-training:"
        f"{TF_VERSION}-{processor}-sagemaker"
    )


def source_archive(recipe: str | None = "default") -> bytes:
    """training/, release/, functions/classifier/ (layout kept) + requirements.txt, the recipe's
    teachers (their manifest and int8 model: distillation runs them), as a .tar.gz. Without a
    recipe, no teachers: the retraining pipeline's fine-tunes learn from the served model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in (ROOT / "training", ROOT / "release", ROOT / "functions" / "classifier"):
            for path in sorted(folder.rglob("*.py")):
                tar.add(path, arcname=path.relative_to(ROOT).as_posix())
        tar.add(ROOT / "training" / "requirements-sagemaker.txt", arcname="requirements.txt")
        for path in teacher_files(recipe) if recipe else ():
            tar.add(path, arcname=f"{contract.MODELS_PREFIX}{path.parent.name}/{path.name}")
    return buffer.getvalue()


def teacher_files(recipe: str) -> list[Path]:
    """The recipe's teachers' manifests and int8 models."""
    from training.job_types import RECIPES
    from training.teachers import folder_of, names_of

    folders = [folder_of(name) for name in names_of(RECIPES[recipe].teachers)]
    return [f / name for f in folders for name in (contract.MANIFEST_NAME, contract.MODEL_NAME)]


def data_archive(source: Path, into: Path) -> Path:
    """The data set as one uncompressed tar (JPEGs do not compress): train/ and test/ folders,
    or cifar-10-batches-py's files."""
    if (source / "train").is_dir() and (source / "test").is_dir():
        members = [source / "train", source / "test"]
    elif (source / "data_batch_1").is_file():
        members = sorted(p for p in source.iterdir() if p.is_file())
    else:
        raise SystemExit(
            f"error: {source} holds neither train/ and test/ folders nor cifar-10-batches-py"
        )
    archive = into / "cifar10.tar"
    with tarfile.open(archive, "w") as tar:
        for member in members:
            tar.add(member, arcname=member.name)
    return archive


def upload_data(source: Path, bucket: str, *, force: bool = False) -> str:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    if not force:
        try:
            s3.head_object(Bucket=bucket, Key=contract.DATA_KEY)
            print(f"s3://{bucket}/{contract.DATA_KEY} is there already (--force replaces it)")
            return f"s3://{bucket}/{contract.DATA_KEY}"
        except ClientError:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        archive = data_archive(source, Path(tmp))
        s3.upload_file(str(archive), bucket, contract.DATA_KEY)
        size = archive.stat().st_size
    print(f"uploaded {source} ({size / 2**20:.0f} MB) to s3://{bucket}/{contract.DATA_KEY}")
    return f"s3://{bucket}/{contract.DATA_KEY}"


def job_request(
    *,
    name: str,
    bucket: str,
    role_arn: str,
    region: str,
    source_uri: str,
    instance_type: str = "ml.g4dn.xlarge",
    spot: bool = True,
    max_runtime_minutes: int = 120,
    hyperparameters: dict[str, str] | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob request (script mode, without SageMaker's Python SDK)."""
    # Script mode reads each hyperparameter as JSON; ours go to the entry point as --name value.
    values = {"candidate-uri": f"s3://{bucket}", **(hyperparameters or {})}
    values |= {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": region,
        "sagemaker_container_log_level": "20",
    }
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime_minutes * 60}
    if spot:
        stopping["MaxWaitTimeInSeconds"] = 2 * max_runtime_minutes * 60
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image or image_uri(region, instance_type),
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": m, "Regex": f"{m}=([0-9.]+)"} for m in contract.TRAINING_METRICS
            ],
        },
        "RoleArn": role_arn,
        "HyperParameters": {k: json.dumps(v) for k, v in values.items()},
        "InputDataConfig": [
            {
                "ChannelName": CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/{contract.DATA_KEY}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{contract.TRAINING_OUTPUT_PREFIX}"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
        "Tags": [{"Key": "project", "Value": "cifar10-serverless"}],
    }


def launch(bucket: str, role_arn: str, *, dry_run: bool = False, **options: Any) -> dict[str, Any]:
    """Upload the source archive and start the job; returns the request."""
    import boto3

    region = boto3.session.Session().region_name or "us-east-1"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    recipe = options.get("hyperparameters", {}).get("recipe", "default")
    name = f"cifar10-{recipe}-{stamp}"
    source_key = f"{contract.TRAINING_SOURCE_PREFIX}{name}/sourcedir.tar.gz"
    request = job_request(
        name=name,
        bucket=bucket,
        role_arn=role_arn,
        region=region,
        source_uri=f"s3://{bucket}/{source_key}",
        **options,
    )
    if dry_run:
        return request
    boto3.client("s3").put_object(Bucket=bucket, Key=source_key, Body=source_archive(recipe))
    boto3.client("sagemaker").create_training_job(**request)
    return request


def wait(name: str, poll_s: float = 30) -> dict[str, Any]:
    import boto3

    client = boto3.client("sagemaker")
    while True:
        job = client.describe_training_job(TrainingJobName=name)
        status = job["TrainingJobStatus"]
        print(f"{name}: {status} / {job.get('SecondaryStatus')}", flush=True)
        if status in ("Completed", "Failed", "Stopped"):
            return dict(job)
        time.sleep(poll_s)


def stack_outputs(stack: str) -> dict[str, str]:
    """The deployed stack's outputs (ModelBucket, TrainingRoleArn, ...), read with boto3."""
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def stack_output(stack: str, key: str) -> str:
    """One output of the deployed stack; a clear exit if it has none of that name."""
    outputs = stack_outputs(stack)
    if key not in outputs:
        raise SystemExit(f"stack {stack} has no output {key}; is it deployed?")
    return outputs[key]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.cloud", description=__doc__)
    parser.add_argument("--stack", default=os.environ.get("STACK", contract.STACK_NAME))
    parser.add_argument("--bucket", help="the model bucket (default: the stack's ModelBucket)")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser(
        "pack", help="write the retraining pipeline's source archive (no teachers); the deploy"
    )
    pack.add_argument("out", type=Path, help="the .tar.gz to write")
    up = commands.add_parser("upload-data", help="put the data set in the bucket, once")
    up.add_argument("--data", type=Path, required=True, help="CIFAR-10 JPEG folders or batches")
    up.add_argument("--force", action="store_true", help="replace an uploaded data set")
    start = commands.add_parser("train", help="start a training job that writes a candidate")
    start.add_argument("--role-arn", help="default: the stack's TrainingRoleArn")
    start.add_argument("--instance-type", default="ml.g4dn.xlarge")
    start.add_argument("--no-spot", action="store_true", help="on-demand instead of spot capacity")
    start.add_argument("--max-runtime-minutes", type=int, default=120)
    start.add_argument("--image", help="another training image (a region outside AWS's DLC list)")
    start.add_argument("--recipe", default="default")
    start.add_argument("--epochs", help="override the recipe's epochs")
    start.add_argument("--seed", help="override the recipe's seed")
    start.add_argument(
        "--corrections", help="reviewers' labels to fine-tune on: s3://<UploadsBucket>/labels/"
    )
    start.add_argument("--dry-run", action="store_true", help="print the request, start nothing")
    start.add_argument("--wait", action="store_true", help="follow the job until it ends")
    args = parser.parse_args(argv)

    if args.command == "pack":  # run by the stack at synth (infra/components/retraining.py)
        args.out.write_bytes(source_archive(None))
        return 0
    outputs: dict[str, str] = {}
    if not args.bucket or (args.command == "train" and not args.role_arn):
        outputs = stack_outputs(args.stack)
    bucket = args.bucket or outputs["ModelBucket"]
    if args.command == "upload-data":
        upload_data(args.data, bucket, force=args.force)
        return 0
    hyperparameters = {"recipe": args.recipe}
    passed = (("epochs", args.epochs), ("seed", args.seed), ("corrections", args.corrections))
    hyperparameters |= {k: v for k, v in passed if v}
    request = launch(
        bucket,
        args.role_arn or outputs["TrainingRoleArn"],
        dry_run=args.dry_run,
        instance_type=args.instance_type,
        spot=not args.no_spot,
        max_runtime_minutes=args.max_runtime_minutes,
        hyperparameters=hyperparameters,
        image=args.image,
    )
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    name = request["TrainingJobName"]
    print(f"started {name}; it writes a candidate under s3://{bucket}/models/ (never latest)")
    if args.wait:
        job = wait(name)
        if job["TrainingJobStatus"] != "Completed":
            print(f"error: {name} {job['TrainingJobStatus']}: {job.get('FailureReason')}")
            return 1
        print("then: make promote VERSION=<the version in the job's log>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
