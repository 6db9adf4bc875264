"""1,000 uploads through the drop-folder handler with SQS semantics and injected S3 faults.

At-least-once delivery (5% of messages delivered twice), no order (batches drawn at random),
a tenth of the keys uploaded twice (their two events in either order), 10% of reads and 10% of
result writes failing once (then succeeding, as S3 throttling does), maxReceiveCount 3, then a
dead-letter queue. Expected at the end: every upload has exactly one result, describing its
newest version (a category for images, an error for the non-images); the dead-letter queue holds
exactly the messages of objects deleted before they were read, and nothing else.
"""

from __future__ import annotations

import io
import json
import random
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from classifier import service, upload_classifier
from PIL import Image

from scripts.events import s3_event, s3_record, sqs_event, sqs_message
from scripts.invoke import LocalContext
from tests.conftest import synthetic_images

BUCKET = "burst-bucket"
UPLOADS = 1000
MAX_RECEIVES = 3
BATCH = 10


class FlakyS3:
    """An S3 client whose first GetObject of some keys and first PutObject of some results fail."""

    def __init__(self, client: Any, fail_reads: set[str], fail_writes: set[str]) -> None:
        self._client, self.fail_reads, self.fail_writes = client, set(fail_reads), set(fail_writes)
        self.injected = 0

    def _maybe_fail(self, pending: set[str], key: str, operation: str) -> None:
        if key in pending:
            pending.discard(key)
            self.injected += 1
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "injected"}}, operation)

    def get_object(self, **kwargs: Any) -> Any:
        self._maybe_fail(self.fail_reads, kwargs["Key"], "GetObject")
        return self._client.get_object(**kwargs)

    def put_object(self, **kwargs: Any) -> Any:
        self._maybe_fail(self.fail_writes, kwargs["Key"], "PutObject")
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def png(pixels: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def jpeg(pixels: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def bucket(s3: Any) -> Any:
    return s3


@pytest.mark.slow  # a thousand uploads through moto: 15 s
def test_a_burst_of_1000_uploads_with_faults_leaves_one_current_result_each(
    bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    images, _ = synthetic_images(64, seed=3)
    names = [
        "IMG_{:04d}.JPG",
        "photo {:04d}.jpeg",
        "My Dog+{:04d}.PNG",
        "scan-{:04d}",
        "猫 {:04d}.png",
    ]
    events: list[tuple[str, dict[str, Any]]] = []  # (key, S3 event)
    kinds: dict[str, str] = {}  # key -> "image" | "not an image" | "deleted"
    sequence = 0

    def upload(key: str, body: bytes) -> None:
        nonlocal sequence
        version = bucket.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        sequence += 1  # S3's sequencer grows with each write of a key
        record = s3_record(BUCKET, key, version_id=version, sequencer=f"{sequence:016X}")
        events.append((key, s3_event(record)))

    distinct = UPLOADS - UPLOADS // 10
    for i in range(distinct):
        key = "uploads/" + names[i % len(names)].format(i)
        pixels = images[i % len(images)]
        if i % 50 == 0:
            upload(key, b"%PDF-1.7 a document, not an image")
            kinds[key] = "not an image"
        else:
            upload(key, jpeg(pixels) if i % 2 else png(pixels))
            kinds[key] = "image"
    for i in rng.sample(range(distinct), UPLOADS - distinct):  # second versions, later
        key = "uploads/" + names[i % len(names)].format(i)
        upload(key, png(images[(i + 1) % len(images)]))
        kinds[key] = "image"
    deleted = []
    for i in range(5):  # deleted before the handler could read them: these must dead-letter
        key = f"uploads/gone-{i}.png"
        upload(key, png(images[i]))
        version = bucket.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"][0]
        bucket.delete_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])
        kinds[key] = "deleted"
        deleted.append(key)

    image_keys = [k for k, kind in kinds.items() if kind != "deleted"]
    flaky = FlakyS3(
        bucket,
        fail_reads=set(rng.sample(image_keys, len(image_keys) // 10)),
        fail_writes={
            f"results/{k.removeprefix('uploads/')}.json"
            for k in rng.sample(image_keys, len(image_keys) // 10)
        },
    )
    patched = monkeypatch.context()
    patched.__enter__().setattr(service, "s3_client", lambda: flaky)

    # The queue: one message per event, 5% of them delivered twice.
    queue: list[tuple[dict[str, Any], int]] = []
    for _, event in events:
        queue.append((sqs_message(event), 0))
        if rng.random() < 0.05:
            queue.append((sqs_message(event), 0))
    rng.shuffle(queue)
    delivered, duplicates = len(queue), len(queue) - len(events)
    dead_letters: list[dict[str, Any]] = []
    invocations = retries = 0
    started = time.perf_counter()
    context = LocalContext(function_name="cifar10-uploads")
    while queue:
        take = sorted(rng.sample(range(len(queue)), min(BATCH, len(queue))), reverse=True)
        batch = [queue.pop(i) for i in take]
        invocations += 1
        try:
            response = upload_classifier.handler(sqs_event(*(m for m, _ in batch)), context)
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        except Exception:  # the whole batch failed: every message returns to the queue
            failed = {m["messageId"] for m, _ in batch}
        for message, receives in batch:
            if message["messageId"] not in failed:
                continue
            retries += 1
            if receives + 1 >= MAX_RECEIVES:
                dead_letters.append(message)
            else:
                queue.insert(rng.randrange(len(queue) + 1), (message, receives + 1))
    seconds = time.perf_counter() - started
    patched.__exit__(None, None, None)

    results = {
        o["Key"]
        for page in bucket.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="results/"
        )
        for o in page.get("Contents", [])
    }
    newest = {
        v["Key"]: v["VersionId"]
        for page in bucket.get_paginator("list_object_versions").paginate(
            Bucket=BUCKET, Prefix="uploads/"
        )
        for v in page.get("Versions", [])
        if v["IsLatest"]
    }
    stale = []
    for key, kind in kinds.items():
        result_key = f"results/{key.removeprefix('uploads/')}.json"
        if kind == "deleted":
            assert result_key not in results
            continue
        record = json.loads(bucket.get_object(Bucket=BUCKET, Key=result_key)["Body"].read())
        if record["version_id"] != newest[key]:
            stale.append(key)
        assert ("category" in record) == (kind == "image"), record
        assert ("error" in record) == (kind == "not an image"), record
    assert not stale, f"{len(stale)} results describe an older version, e.g. {stale[:3]}"
    assert len(results) == len(kinds) - len(deleted), "exactly one result per upload"
    dead_keys = sorted(
        json.loads(m["body"])["Records"][0]["s3"]["object"]["key"] for m in dead_letters
    )
    assert dead_keys == sorted(deleted), "only the deleted objects are dead letters"
    assert flaky.injected >= len(image_keys) // 5 - 2  # the faults did happen
    print(
        f"\nburst: {len(events)} uploads ({len(kinds)} keys, {len(events) - len(kinds)} second "
        f"versions), {delivered} messages ({duplicates} duplicates), {invocations} invocations, "
        f"{flaky.injected} injected S3 faults, {retries} message retries, "
        f"{len(dead_letters)} dead letters (all {len(deleted)} deleted objects), 0 stale, "
        f"{seconds:.1f} s ({len(events) / seconds:.0f} uploads/s)"
    )
