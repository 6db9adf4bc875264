"""Async uploads and completion events, with moto: POST /uploads hands out an id and a presigned
POST, the drop-folder handler classifies the upload, GET /results/{id} answers 404/202/200, and
each result written sends an EventBridge event."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from classifier import api, service, upload_classifier
from fastapi.testclient import TestClient

from scripts.events import s3_event, s3_record
from scripts.invoke import LocalContext
from tests.conftest import IMGS

BUCKET = "async-uploads"
# The uploads bucket (conftest's s3), with the API told its name and the event bus.
ENV = {"UPLOADS_BUCKET": BUCKET, "EVENT_BUS": "default"}


def classify_upload(s3: Any, key: str) -> None:
    """What the deployed wiring does once the browser's POST lands: the handler runs."""
    version = s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    event = s3_event(s3_record(BUCKET, key, version_id=version, sequencer="0A"))
    upload_classifier.handler(event, LocalContext(function_name="cifar10-uploads"))


def test_an_async_upload_goes_from_404_to_202_to_200(client: TestClient, s3: Any) -> None:
    started = client.post("/uploads", json={"content_type": "image/png"})
    assert started.status_code == 201, started.text
    ticket = started.json()
    upload_id, form = ticket["id"], ticket["upload"]
    assert len(upload_id) == 32 and ticket["result"] == f"results/{upload_id}"
    key = form["fields"]["key"]
    assert key == f"uploads/async/{upload_id}"
    assert client.get(f"/results/{upload_id}").status_code == 404  # nothing uploaded yet
    s3.put_object(Bucket=BUCKET, Key=key, Body=(IMGS / "cat.png").read_bytes())
    pending = client.get(f"/results/{upload_id}")
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    classify_upload(s3, key)
    done = client.get(f"/results/{upload_id}")
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "done" and body["category"] in body["probabilities"]
    assert "bucket" not in body  # nothing about the deployment beyond the result


def test_the_presigned_post_allows_one_image_type_up_to_20_mb_for_five_minutes(
    client: TestClient,
) -> None:
    ticket = client.post("/uploads", json={"content_type": "image/jpeg"}).json()
    policy = json.loads(base64.b64decode(ticket["upload"]["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, 20 * 1024 * 1024] in conditions
    assert {"key": f"uploads/async/{ticket['id']}"} in conditions
    assert ticket["expires_in"] == 300 and ticket["max_bytes"] == 20 * 1024 * 1024


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])
def test_the_presigned_post_is_sigv4_at_the_regions_own_endpoint(
    region: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Buckets made since June 2020 refuse SigV2, and a new bucket outside us-east-1 answers the
    # global endpoint with a redirect a browser's CORS request will not follow.
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    service.reset()
    try:
        form = service.s3_client().generate_presigned_post(Bucket=BUCKET, Key="uploads/async/x")
    finally:
        service.reset()
    assert form["url"] == f"https://{BUCKET}.s3.{region}.amazonaws.com/"
    fields = form["fields"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and "x-amz-signature" in fields
    assert fields["x-amz-credential"].endswith(f"/{region}/s3/aws4_request")
    assert "AWSAccessKeyId" not in fields and "signature" not in fields


def test_ids_are_unguessable_and_unknown_ones_are_404(client: TestClient) -> None:
    ids = {client.post("/uploads").json()["id"] for _ in range(20)}
    assert len(ids) == 20
    for unknown in ("x" * 32, "../../results/x", "a" * 10):
        response = client.get(f"/results/{unknown}")
        assert response.status_code == 404


def test_only_png_and_jpeg_uploads_are_signed(client: TestClient) -> None:
    response = client.post("/uploads", json={"content_type": "image/gif"})
    assert response.status_code == 415


def test_without_an_uploads_bucket_the_async_path_says_so(
    use_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPLOADS_BUCKET", raising=False)
    service.reset()
    with TestClient(api.asgi) as c:
        response = c.post("/uploads")
        assert response.status_code == 501 and "UPLOADS_BUCKET" in response.json()["detail"]
        assert 'const ASYNC = "false" === "true"' in c.get("/").text
    service.reset()


def test_each_result_sends_a_completion_event(s3: Any) -> None:
    import boto3

    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    events.put_rule(Name="classified", EventPattern=json.dumps({"source": ["cifar10.classifier"]}))
    events.put_targets(Rule="classified", Targets=[{"Id": "queue", "Arn": arn}])
    s3.put_object(Bucket=BUCKET, Key="uploads/cat.png", Body=(IMGS / "cat.png").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="uploads/notes.txt", Body=b"not an image")
    classify_upload(s3, "uploads/cat.png")
    classify_upload(s3, "uploads/notes.txt")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    by_type = {}
    for message in received:
        event = json.loads(message["Body"])
        by_type[event["detail-type"]] = event["detail"]
    classified = by_type["Image Classified"]
    assert classified["key"] == "uploads/cat.png" and classified["category"]
    assert classified["confidence"] > 0 and classified["model_version"]
    assert classified["result_key"] == "results/cat.png.json"
    refused = by_type["Image Not Classified"]
    assert refused["key"] == "uploads/notes.txt" and "not a decodable image" in refused["error"]
