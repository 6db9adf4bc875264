"""Bulk classification: the drop-folder function fed Distributed Map batches (S3 listing items),
and the launcher's request to Step Functions, with moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from classifier import upload_classifier
from moto import mock_aws

from scripts import classify_bucket
from scripts.invoke import LocalContext
from tests.conftest import IMGS

BUCKET = "bulk-bucket"
VERSIONED = False


def batch_event(s3: Any, prefix: str) -> dict[str, Any]:
    """What a Distributed Map hands the function: listing items plus the batch input."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    items = [{"Key": o["Key"], "Size": o["Size"], "Etag": o["ETag"]} for o in listed]
    return {"Items": items, "BatchInput": {"bucket": BUCKET}}


def test_a_batch_of_listed_objects_gets_a_result_each(s3: Any) -> None:
    images = sorted(IMGS.glob("*.png"))
    for path in images:
        s3.put_object(Bucket=BUCKET, Key=f"archive/2026/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="archive/2026/readme.txt", Body=b"notes")
    s3.put_object(Bucket=BUCKET, Key="archive/2026/folder/", Body=b"")
    summary = upload_classifier.handler(batch_event(s3, "archive/"), LocalContext())
    assert summary == {"objects": 11, "classified": 10, "rejected": 1, "skipped": 0}
    for path in images:
        result = json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"results/archive/2026/{path.name}.json")[
                "Body"
            ].read()
        )
        assert result["key"] == f"archive/2026/{path.name}"
        assert result["category"] in result["probabilities"]
    note = s3.get_object(Bucket=BUCKET, Key="results/archive/2026/readme.txt.json")
    assert "error" in json.loads(note["Body"].read())


def test_a_batch_with_an_unreadable_object_fails_so_the_map_retries_it(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="archive/cat.png", Body=(IMGS / "cat.png").read_bytes())
    event = batch_event(s3, "archive/")
    event["Items"].append({"Key": "archive/deleted-meanwhile.png", "Size": 10})
    with pytest.raises(upload_classifier.BatchFailed, match="1 of 2 objects failed"):
        upload_classifier.handler(event, LocalContext())


def test_the_launcher_starts_one_execution_for_the_prefix(aws_env: None) -> None:
    import boto3

    with mock_aws():
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="bulk",
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/bulk",
        )["stateMachineArn"]
        run = classify_bucket.start(
            f"s3://{BUCKET}/archive/2026/", state_machine=machine, uploads_bucket=BUCKET
        )
        described = sfn.describe_execution(executionArn=run["executionArn"])
        assert json.loads(described["input"]) == {"prefix": "archive/2026/"}
        with pytest.raises(SystemExit, match="reads its stack's uploads bucket"):
            classify_bucket.start("s3://another/x", state_machine=machine, uploads_bucket=BUCKET)
