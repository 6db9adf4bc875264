"""SageMaker's entry point: this repository's training job, unchanged, in AWS's TF container.

SageMaker (script mode, TensorFlow 2.19 training container) unpacks the source archive that
``release.cloud`` uploads into /opt/ml/code, installs its requirements.txt, and runs

    python training/sagemaker_entry.py --candidate-uri s3://<ModelBucket> --recipe default [...]

with the job's hyperparameters as ``--name value`` arguments and its contract in the environment:

- ``SM_CHANNEL_TRAINING``: the ``training`` channel, the data set as ``make upload-data`` put it
  (a ``cifar10*.tar`` of the JPEG folders or of ``cifar-10-batches-py``, or those unpacked);
- ``SM_MODEL_DIR``: what SageMaker packs into ``model.tar.gz`` (the published files);
- ``SM_OUTPUT_DATA_DIR``: ``output.tar.gz`` (metrics.json and the run's history).

It runs ``training.train`` as ``make train`` does, then publishes the run as a **candidate**,
``models/<version>/`` at ``--candidate-uri`` (verified as served, read back), never ``latest``:
``make promote VERSION=<version>`` decides about that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (
    HERE.parent / "functions",
    HERE.parent,
):  # the repository's layout, kept in the archive
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault(
    "PYTHONPATH", os.pathsep.join([str(HERE.parent / "functions"), str(HERE.parent)])
)

# Hyperparameters passed through to training.train (SageMaker sends each as --name value).
PASSED = (
    "recipe",
    "set",  # one recipe field, "name=value"
    "epochs",
    "batch-size",
    "widths",
    "seed",
    "time-budget",
    "limit",
    "tta",
    "image-size",
    "init-from",
    "corrections",  # s3://<UploadsBucket>/labels/: the job's role may read labels/ there
)


def find_data(channel: Path, scratch: Path) -> Path:
    """The data set in the channel: unpack a tar there if that is what was uploaded."""
    archives = sorted(channel.glob("*.tar")) + sorted(channel.glob("*.tar.gz"))
    if archives:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(scratch, filter="data")
        root = scratch
    else:
        root = channel
    for candidate in (root, *sorted(p for p in root.rglob("*") if p.is_dir())):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
        if (candidate / "data_batch_1").is_file() and (candidate / "test_batch").is_file():
            return candidate
    raise SystemExit(
        f"error: no CIFAR-10 in the training channel {channel} (expected a tar, train/ and test/ "
        "folders, or cifar-10-batches-py): run `make upload-data`"
    )


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="training/sagemaker_entry.py", description=__doc__)
    parser.add_argument("--candidate-uri", required=True, help="s3://bucket (models/<v>/ there)")
    parser.add_argument(
        "--candidate-record",
        help="s3://bucket/key: where the retraining pipeline reads which version was published",
    )
    for name in PASSED:
        parser.add_argument(f"--{name}")
    return parser.parse_known_args(argv)


from classifier.contract import TRAINING_METRICS  # noqa: E402
from classifier.manifest import published_files  # noqa: E402

from training import serving_process  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, object]:
    args, ignored = parse_args(argv)
    if ignored:  # e.g. a --model_dir SageMaker's Python SDK adds: not ours, not fatal
        print(f"ignoring arguments not meant for this job: {ignored}")
    channel = Path(os.environ.get("SM_CHANNEL_TRAINING", "/opt/ml/input/data/training"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    scratch = Path(tempfile.mkdtemp(prefix="cifar10-"))
    data = find_data(channel, scratch / "data")

    from training import train

    runs = scratch / "runs"
    train_args = ["--data", str(data), "--out", str(runs)]
    for name in PASSED:
        value = getattr(args, name.replace("-", "_"))
        if value not in (None, ""):
            train_args += [f"--{name}", str(value)]
    manifest = train.main(train_args)
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    model_dir.mkdir(parents=True, exist_ok=True)
    for path in published_files(run_dir):
        shutil.copy2(path, model_dir / path.name)
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / "metrics.json", output_dir / "metrics.json")
    shutil.copy2(run_dir / "history.json", output_dir / "history.json")
    # The release road, in its own TensorFlow-free process: verified, then models/<version>/.
    said = serving_process.publish(run_dir, args.candidate_uri, candidate=True)
    version = manifest["model_version"]
    metrics = manifest["metrics"]
    print(f"{said} (at {args.candidate_uri})")
    # One line per figure, for the job's metric definitions (regex `name=(\S+)`).
    for name in TRAINING_METRICS:  # the lines SageMaker's metric definitions read
        print(f"{name}={metrics[name]}")
    if args.candidate_record:
        record_candidate(args.candidate_record, version)
    return {"model_version": version}


def record_candidate(uri: str, version: str) -> None:
    """Tell the retraining pipeline (release.pipeline.candidate_of) what this job published, at
    an s3:// key (or a file, as a folder stands in for the bucket in tests)."""
    body = json.dumps({"model_version": version}).encode()
    if not uri.startswith("s3://"):
        Path(uri).write_bytes(body)
        return
    import boto3

    bucket, _, key = uri[len("s3://") :].partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


if __name__ == "__main__":
    result = main()
    sys.stdout.write(json.dumps(result) + "\n")
