"""The feedback loop's store: answers captured for review, and the labels reviewers give them.

Everything lives in one bucket under the prefixes of :mod:`classifier.contract`:

* ``review/items/<id>.json``: a pending item: where its image is, what the model answered, when;
* ``review/images/<id>.<ext>``: the bytes the API classified (the drop folder's items point at
  the upload instead, by version);
* ``review/labelled/<id>.json``: the claim a label makes, written only if absent (S3's
  conditional ``If-None-Match: *``), so of two reviewers labelling one item the first wins and
  the second is told so; the claim holds the whole record (who, when, what the model said);
* ``labels/<label>/<id>.<ext>``: the image, copied for training (``make train DATA=`` and
  ``--corrections`` read this layout), with the record's essentials as object metadata.

Item ids sort newest first (a reversed millisecond clock, then random hex), so one S3 listing
pages through pending items in review order. Nothing here reads the environment.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from classifier import contract
from classifier.core import Prediction, sha256_hex

ID_PATTERN = r"^[0-9]{13}[0-9a-f]{8}$"
CLOCK_SPAN_MS = 10**13  # ids sort newest first until the year 2286
PAGE_MAX = 50  # items per GET /review/items page: bounded reads and presigns
IMAGE_URL_SECONDS = 900  # how long a review page's image links work
EXTENSIONS = {media: exts[0] for media, exts in contract.IMAGE_FORMATS.values()}


def new_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{CLOCK_SPAN_MS - 1 - ms:013d}{secrets.token_hex(4)}"


def media_type_of(data: bytes) -> str:
    """The image's media type from its first bytes (PNG or JPEG; anything else: octet-stream)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


def answer_of(prediction: Prediction) -> dict[str, Any]:
    answer = prediction.as_dict()
    answer.pop("model_version")
    return answer


def record(
    item_id: str, *, source: str, image: dict[str, Any], data: bytes, prediction: Prediction
) -> dict[str, Any]:
    """What a reviewer needs of one answer: the image's location, the answer, version and time."""
    return {
        "id": item_id,
        "source": source,
        "image": image,
        "media_type": media_type_of(data),
        "sha256": sha256_hex(data),
        "answer": answer_of(prediction),
        "model_version": prediction.model_version,
        "captured_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def item_key(item_id: str) -> str:
    return f"{contract.REVIEW_ITEMS_PREFIX}{item_id}.json"


def claim_key(item_id: str) -> str:
    return f"{contract.REVIEW_LABELLED_PREFIX}{item_id}.json"


def label_key(label: str, item_id: str, media_type: str) -> str:
    return f"{contract.LABELS_PREFIX}{label}/{item_id}{EXTENSIONS.get(media_type, '')}"


def capture_bytes(
    s3: Any, bucket: str, data: bytes, prediction: Prediction, filename: str | None = None
) -> str:
    """Keep an answer the API gave: its image bytes and its record. Returns the item id."""
    item_id = new_id()
    media = media_type_of(data)
    key = f"{contract.REVIEW_IMAGES_PREFIX}{item_id}{EXTENSIONS.get(media, '')}"
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=media)
    image = {"bucket": bucket, "key": key}
    item = record(item_id, source="api", image=image, data=data, prediction=prediction)
    _put_json(s3, bucket, item_key(item_id), {**item, "filename": filename})
    return item_id


def capture_object(
    s3: Any, bucket: str, image: dict[str, Any], data: bytes, prediction: Prediction
) -> str:
    """Keep an answer the drop folder gave: a record pointing at the upload (by version)."""
    item_id = new_id()
    item = record(item_id, source="uploads", image=image, data=data, prediction=prediction)
    _put_json(s3, bucket, item_key(item_id), {**item, "filename": image["key"].rsplit("/", 1)[-1]})
    return item_id


def _put_json(s3: Any, bucket: str, key: str, value: dict[str, Any], **extra: Any) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **extra)


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except ClientError as exc:
        # AccessDenied: S3's answer for a missing key to a role that may GET it but not list
        # the whole bucket (the API lists review/items/ only: infra/components/feedback.py).
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
            return None
        raise


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None  # the id to pass as ``after`` for the next page


def pending(s3: Any, bucket: str, *, limit: int, after: str | None = None) -> Page:
    """Pending items, newest first, each with a presigned link to its image."""
    limit = max(1, min(limit, PAGE_MAX))
    args: dict[str, Any] = {"Bucket": bucket, "Prefix": contract.REVIEW_ITEMS_PREFIX}
    args["MaxKeys"] = limit
    if after:
        args["StartAfter"] = item_key(after)
    listing = s3.list_objects_v2(**args)
    items = []
    for entry in listing.get("Contents", []):
        item = _get_json(s3, bucket, entry["Key"])
        if item is None:  # labelled since the listing
            continue
        image = item["image"]
        params = {"Bucket": image["bucket"], "Key": image["key"]}
        if image.get("version_id"):
            params["VersionId"] = image["version_id"]
        item["image_url"] = s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=IMAGE_URL_SECONDS
        )
        items.append(item)
    if not listing.get("IsTruncated") or not listing.get("Contents"):
        return Page(items, None)
    last = listing["Contents"][-1]["Key"]
    return Page(items, last.removeprefix(contract.REVIEW_ITEMS_PREFIX).removesuffix(".json"))


class UnknownItem(LookupError):
    pass


class AlreadyLabelled(RuntimeError):
    def __init__(self, claim: dict[str, Any]) -> None:
        super().__init__(f"item {claim['id']} was labelled {claim['label']!r} first")
        self.claim = claim


class ImageGone(LookupError):
    pass


def label(s3: Any, bucket: str, item_id: str, label_: str, reviewer: str) -> dict[str, Any]:
    """Label one pending item: claim it (first wins), copy its image into ``labels/<label>/``,
    then take it off the pending list. Returns the claim's record.

    :class:`UnknownItem` if there is no such item, :class:`AlreadyLabelled` (with the winner's
    claim) if another label got there first, :class:`ImageGone` if its image was deleted.
    """
    item = _get_json(s3, bucket, item_key(item_id))
    if item is None:
        claim = _get_json(s3, bucket, claim_key(item_id))
        if claim is None:
            raise UnknownItem(item_id)
        raise AlreadyLabelled(claim)
    source = {"Bucket": item["image"]["bucket"], "Key": item["image"]["key"]}
    if item["image"].get("version_id"):
        source["VersionId"] = item["image"]["version_id"]
    try:
        s3.head_object(**source)
    except ClientError as exc:
        gone = ("NoSuchKey", "404", "NoSuchVersion", "403", "AccessDenied")  # as in _get_json
        if exc.response.get("Error", {}).get("Code") not in gone:
            raise
        s3.delete_object(Bucket=bucket, Key=item_key(item_id))  # nothing left to label
        raise ImageGone(item_id) from exc
    claim = {
        "id": item_id,
        "label": label_,
        "reviewer": reviewer,
        "labelled_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "label_key": label_key(label_, item_id, item["media_type"]),
        "item": item,
    }
    try:
        _put_json(s3, bucket, claim_key(item_id), claim, IfNoneMatch="*")
    except ClientError as exc:
        # 412: another claim is there; 409 ConditionalRequestConflict: one is being written now
        conflict = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
        if exc.response.get("Error", {}).get("Code") in conflict:
            winner = _get_json(s3, bucket, claim_key(item_id)) or {"id": item_id, "label": "?"}
            if _get_json(s3, bucket, item_key(item_id)) is not None:
                finish(s3, bucket, winner)  # the winner stopped before its copy: complete it
            raise AlreadyLabelled(winner) from exc
        raise
    finish(s3, bucket, claim)
    return claim


def finish(s3: Any, bucket: str, claim: dict[str, Any]) -> None:
    """A claim's writes, each idempotent: the image copied under its label, the item removed."""
    item = claim.get("item")
    if not item:
        return
    source = {"Bucket": item["image"]["bucket"], "Key": item["image"]["key"]}
    if item["image"].get("version_id"):
        source["VersionId"] = item["image"]["version_id"]
    answer = item["answer"]
    s3.copy_object(
        Bucket=bucket,
        Key=claim["label_key"],
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType=item["media_type"],
        Metadata={
            "item-id": claim["id"],
            "reviewer": ascii(claim["reviewer"])[1:-1][:200],  # metadata is ASCII
            "labelled-at": claim["labelled_at"],
            "model-version": item["model_version"],
            "model-said": f"{answer['category']} {answer['confidence']:.3f}",
            "model-flags": ",".join(f for f in ("unsure", "none_of_these") if answer.get(f)) or "-",
            "runner-up": answer.get("runner_up", ""),
            "sha256": item["sha256"],
        },
    )
    s3.delete_object(Bucket=bucket, Key=item_key(claim["id"]))
