"""The retraining pipeline's steps, TensorFlow-free: what the stack's state machine runs as Lambda
functions (``infra/components/retraining.py``) and ``make retrain-local`` runs on this machine.

1. :func:`check`: the served model (the version ``latest`` names), how many reviewers' labels
   it has not learnt (written after it was created), and, when there are enough, the SageMaker
   request ``make train-cloud --corrections`` would make (``release.cloud.job_request``), set to
   fine-tune the served model on the labels;
2. the state machine runs that request (``createTrainingJob.sync``); the job publishes a
   candidate, ``models/<version>/``, and records which in :func:`candidate_record_key`;
3. :func:`gate`: ``release.promote``'s gate, the same code as ``make promote``, on the data set's
   test split (decoded once from ``data/cifar10.tar``) and the labels the candidate held out;
4. :func:`promote`: after the canary rollout succeeded, the promotion record and ``latest``,
   as ``make promote`` writes them. A rollout CodeDeploy rolled back never gets here, so
   ``latest`` keeps naming the model that serves.

Each step returns a small JSON document the state machine keeps under its own path; the
notification each outcome sends is written here, so it is tested here.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from classifier import contract
from classifier import manifest as mf
from classifier.core import ImageError, image_to_array

from release import cloud
from release import promote as promotion
from release.publish import Destination, point_latest

JOB_PREFIX = contract.RETRAIN_JOB_PREFIX
STAMP = "%Y%m%d-%H%M%S"  # a job's name: JOB_PREFIX + the check's time
# What a fine-tune on corrections trains for: the feedback demo's measured setting
# (docs/feedback.md), the served model's float weights as the start.
EPOCHS = "3"


class Settings:
    """The pipeline's settings, from the functions' environment (set by the stack)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        e = os.environ if environ is None else environ
        self.models_bucket = e["MODELS_BUCKET"]
        self.uploads_bucket = e["UPLOADS_BUCKET"]
        self.role_arn = e.get("TRAINING_ROLE_ARN", "")
        self.source_uri = e.get("TRAINING_SOURCE_URI", "")
        self.instance_type = e.get("TRAINING_INSTANCE_TYPE", "ml.g4dn.xlarge")
        self.spot = e.get("TRAINING_SPOT", "true") == "true"
        self.max_runtime_minutes = int(e.get("TRAINING_MAX_MINUTES", "120"))
        self.min_labels = int(e.get("MIN_LABELS", "1"))
        self.stack = e.get("STACK_ID", "")  # to check that latest names the model that serves
        self.tolerance = promotion.DEFAULT_TOLERANCE  # make promote's
        self.region = e.get("AWS_REGION", "us-east-1")


def labels_since(s3: Any, bucket: str, since: datetime) -> tuple[int, int]:
    """(labels written after ``since``, all labels) under the labels prefix."""
    new = total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=contract.LABELS_PREFIX
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue
            total += 1
            new += item["LastModified"] > since
    return new, total


def last_judged(s3: Any, bucket: str) -> datetime | None:
    """When the last run the gate judged started (its job's name holds the check's time): the
    labels before it were learnt by that candidate, accepted or not. A run that failed before a
    verdict does not count, so its labels train again."""
    times = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{contract.TRAINING_OUTPUT_PREFIX}{JOB_PREFIX}"
    ):
        for item in page.get("Contents", []):
            job = item["Key"][len(contract.TRAINING_OUTPUT_PREFIX) :].split("/")[0]
            if item["Key"] != contract.verdict_record_key(job):
                continue
            try:
                stamp = datetime.strptime(job[len(JOB_PREFIX) :], STAMP)
            except ValueError:  # not a name the check gave: its time is unknown
                continue
            times.append(stamp.replace(tzinfo=UTC))
    return max(times, default=None)


def other_runs(event: dict[str, Any]) -> list[str]:
    """The state machine's other running executions (a run started by hand beside a schedule)."""
    machine, execution = event.get("machine"), event.get("execution")
    if not machine:
        return []
    import boto3

    running = boto3.client("stepfunctions").list_executions(
        stateMachineArn=machine, statusFilter="RUNNING"
    )["executions"]
    return [e["name"] for e in running if e["executionArn"] != execution]


def stack_model_version(stack: str) -> str | None:
    """The ModelVersion the stack's functions serve (None where no stack is given)."""
    if not stack:
        return None
    import boto3

    (described,) = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    values = {p["ParameterKey"]: p.get("ParameterValue") for p in described["Parameters"]}
    return values.get("ModelVersion")


def served(models: Destination) -> tuple[str, datetime]:
    """The served model's version and creation time (``latest``'s manifest)."""
    version = promotion.current_version(models)
    if version is None:
        raise promotion.PromotionRefused("nothing is published (no models/latest)")
    manifest = json.loads(models.read(contract.model_key(version, contract.MANIFEST_NAME)))
    return version, datetime.fromisoformat(manifest["created"])


def check(event: dict[str, Any], settings: Settings, *, now: datetime | None = None) -> dict:
    """Whether there is anything to learn, and the training request that would learn it.
    ``event`` is the run's input (``minLabels``), or the state machine's ``{"input": ...,
    "machine": ..., "execution": ...}``. ``notify`` is set when the owner must act."""
    import boto3

    given = event.get("input", event)
    now = now or datetime.now(UTC)
    wanted = int(given.get("minLabels", settings.min_labels))
    others = other_runs(event)
    if others:
        message = f"another retraining run is in progress ({', '.join(others)}): this one ends"
        return {"enough": False, "notify": False, "message": message}
    models = Destination(f"s3://{settings.models_bucket}")
    version, created = served(models)
    serving = stack_model_version(settings.stack)
    if serving is not None and serving != version:
        return {
            "enough": False,
            "notify": True,
            "served": version,
            "message": (
                f"retraining: models/latest names {version} but the stack serves {serving}; "
                "no retraining until they agree (make promote VERSION=<the one you want>, or "
                "make rollback)"
            ),
        }
    s3 = boto3.client("s3")
    since = max(created, last_judged(s3, settings.models_bucket) or created)
    new, total = labels_since(s3, settings.uploads_bucket, since)
    enough = new >= max(1, wanted)
    result: dict[str, Any] = {
        "served": version,
        "labels": {"new": new, "total": total, "wanted": wanted},
        "enough": enough,
        "notify": False,
    }
    if not enough:
        result["message"] = (
            f"nothing to learn: {new} new labels since {since:%Y-%m-%d %H:%M} UTC (the served "
            f"model {version} or the last judged candidate), {wanted} wanted"
        )
        return result
    name = f"{JOB_PREFIX}{now.strftime(STAMP)}"
    result["job"] = name
    result["request"] = training_request(name, version, settings)
    return result


def training_request(name: str, version: str, settings: Settings) -> dict[str, Any]:
    """``make train-cloud --corrections``'s request, fine-tuning ``version`` on all labels."""
    bucket = settings.models_bucket
    return cloud.job_request(
        name=name,
        bucket=bucket,
        role_arn=settings.role_arn,
        region=settings.region,
        source_uri=settings.source_uri,
        instance_type=settings.instance_type,
        spot=settings.spot,
        max_runtime_minutes=settings.max_runtime_minutes,
        hyperparameters={
            "recipe": "default",
            "epochs": EPOCHS,
            "init-from": f"s3://{bucket}/{contract.MODELS_PREFIX}{version}/",
            "corrections": f"s3://{settings.uploads_bucket}/{contract.LABELS_PREFIX}",
            "candidate-record": f"s3://{bucket}/{contract.candidate_record_key(name)}",
        },
    )


def test_split(models: Destination, class_names: list[str], size: int, cache: Path) -> Path:
    """The data set's test split as an .npz (x uint8, y), decoded once from ``data/cifar10.tar``
    and kept in ``cache`` (a warm function gates again without reading it)."""
    s3 = models.s3
    got = s3.get_object(Bucket=models.bucket, Key=contract.DATA_KEY)
    # Keyed by the object's ETag: a data set uploaded again (upload-data --force) is read again.
    tag = "".join(c for c in got["ETag"] if c.isalnum())[:16]
    arrays = cache / f"test-split-{tag}.npz"
    if arrays.is_file():
        got["Body"].close()
        return arrays
    cache.mkdir(parents=True, exist_ok=True)
    body = got["Body"]
    x, y = read_test_split(body, class_names, size)
    np.savez(arrays, x=x, y=y)
    return arrays


def read_test_split(
    stream: Any, class_names: list[str], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The test images of a data set archive read as a stream (``.../test/<label>/<file>``, or
    cifar-10-batches-py's ``test_batch``), without unpacking the training half to disk."""
    index = {name: i for i, name in enumerate(class_names)}
    xs: list[np.ndarray] = []
    ys: list[int] = []
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = Path(member.name).parts
            handle = tar.extractfile(member)
            if handle is None:
                continue
            if parts[-1] == "test_batch":  # the owner's own upload (make upload-data)
                batch = pickle.load(io.BytesIO(handle.read()), encoding="bytes")  # noqa: S301
                images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
                xs.extend(images.transpose(0, 2, 3, 1))
                ys.extend(int(v) for v in batch[b"labels"])
                continue
            if len(parts) < 3 or parts[-3] != "test" or parts[-2] not in index:
                continue
            try:
                xs.append(image_to_array(handle.read(), size=size))
            except ImageError:
                continue  # as training's loader does: an unreadable file is skipped
            ys.append(index[parts[-2]])
    if not ys:
        raise promotion.PromotionRefused(
            f"{contract.DATA_KEY} has no test split (test/<label>/ folders or test_batch)"
        )
    return np.stack(xs), np.asarray(ys, np.int64)


def candidate_of(models: Destination, job: str) -> str:
    """The version the pipeline's training job published."""
    return str(json.loads(models.read(contract.candidate_record_key(job)))["model_version"])


def gate(event: dict[str, Any], settings: Settings, cache: Path) -> dict[str, Any]:
    """``make promote``'s gate on the job's candidate against the served model."""
    models = Destination(f"s3://{settings.models_bucket}")
    candidate = candidate_of(models, event["job"])
    served_version = event["served"]
    manifest = mf.Manifest.from_bytes(
        models.read(contract.model_key(served_version, contract.MANIFEST_NAME))
    )
    arrays = test_split(models, list(manifest.class_names), manifest.input_shape[0], cache)
    try:
        verdict = promotion.gate(
            models,
            candidate,
            data=None,
            arrays=arrays,
            tolerance=settings.tolerance,
            current=served_version,
        )
    except promotion.PromotionRefused as exc:
        result: dict[str, Any] = {
            "candidate": candidate,
            "accepted": False,
            "message": f"retraining: {candidate} refused: {exc}",
        }
    else:
        result = verdict_result(verdict)
    record_verdict(models, event["job"], result)
    return result


def record_verdict(models: Destination, job: str, result: dict[str, Any]) -> None:
    """The gate judged ``job``'s candidate: its labels count as learnt from now on."""
    record = {k: result[k] for k in ("candidate", "accepted", "message")}
    models.write(contract.verdict_record_key(job), json.dumps(record).encode())


def verdict_result(verdict: promotion.Verdict) -> dict[str, Any]:
    """The gate's figures, its decision and the message the owner gets."""
    accepted = verdict.accepted
    text = verdict.explain()
    if accepted:
        message = (
            f"retraining: candidate {verdict.candidate} passed the gate: {text}. "
            f"To serve it: make promote VERSION={verdict.candidate}"
        )
    else:
        message = f"retraining: {verdict.candidate} refused: {text}; nothing changed"
    notes = verdict.regressions()
    if notes:
        message += f" (worse on some classes: {notes})"
    return {
        "candidate": verdict.candidate,
        "accepted": accepted,
        "verdict": asdict(verdict),
        "message": message,
    }


def promote(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """After the rollout: the promotion record beside the candidate, then ``latest`` (last)."""
    destination = f"s3://{settings.models_bucket}"
    models = Destination(destination)
    candidate = event["candidate"]
    record = {**event["verdict"], "previous": event["served"], "by": "retraining pipeline"}
    models.write(
        contract.model_key(candidate, promotion.PROMOTION_RECORD),
        (json.dumps(record, indent=2) + "\n").encode(),
    )
    point_latest(destination, candidate)
    return {
        "latest": candidate,
        "message": (
            f"retraining: {candidate} promoted and rolled out (replaces {event['served']}): "
            f"{promotion.Verdict(**event['verdict']).explain()}"
        ),
    }


# Lambda's only writable folder; kept between a warm function's runs.
CACHE = Path(os.environ.get("CIFAR10_CACHE", "/tmp/cifar10-cache"))  # noqa: S108


def check_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return check(event, Settings())


def gate_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return gate(event, Settings(), CACHE)


def promote_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return promote(event, Settings())


def main(argv: list[str] | None = None) -> int:
    """``make retrain``: start the deployed pipeline now (it checks for new labels first)."""
    import argparse

    import boto3

    parser = argparse.ArgumentParser(prog="python -m release.pipeline", description=__doc__)
    parser.add_argument("command", choices=["start"])
    parser.add_argument("--stack", default=os.environ.get("STACK", contract.STACK_NAME))
    parser.add_argument("--min-labels", type=int, default=1, help="new labels a run needs")
    args = parser.parse_args(argv)
    machine = cloud.stack_output(args.stack, "RetrainStateMachine")
    started = boto3.client("stepfunctions").start_execution(
        stateMachineArn=machine, input=json.dumps({"minLabels": args.min_labels})
    )
    print(f"started {started['executionArn']}; its outcome reaches the alarm topic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
