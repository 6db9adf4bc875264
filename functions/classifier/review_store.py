"""The feedback loop's store: answers captured for review, and the labels reviewers give them.

Everything lives in one bucket under the prefixes of :mod:`classifier.contract`:

* ``review/items/<id>.json``: a pending item: where its image is, what the model answered, when;
* ``review/images/<id>.<ext>``: a private copy of the image (:func:`classifier.core.private_copy`:
  upright, at most ``KEPT_IMAGE_SIDE`` a side, no metadata), for both paths; the drop folder's
  record also names the upload it came from, which stays as its owner sent it;
* ``review/seen/<sha256>.json``: one per image content, written only if absent (S3's conditional
  ``If-None-Match: *``): a second sighting of the same bytes counts, it adds no item;
* ``review/quota/<hour>.json``: how many items this hour kept, raised by compare-and-swap
  (``If-Match`` on its ETag), so any number of containers together keep at most the limit;
* ``review/labelled/<id>.json``: the claim a label makes, written only if absent, so of two
  reviewers labelling one item the first wins and the second is told so; the claim holds the
  whole record (who, when, what the model said);
* ``labels/<label>/<id>.<ext>``: the image, copied for training (``make train DATA=`` and
  ``--corrections`` read this layout), with the record's essentials as object metadata.

Item ids sort oldest first (a millisecond clock, then random hex), so one S3 listing pages
through pending items in arrival order and a burst waits behind what came before it. Nothing
here reads the environment.
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
from classifier.core import Prediction, private_copy, sha256_hex

ID_PATTERN = r"^[0-9]{13}[0-9a-f]{8}$"
PAGE_MAX = 50  # items per GET /review/items page: bounded reads and presigns
IMAGE_URL_SECONDS = 900  # how long a review page's image links work
EXTENSIONS = {media: exts[0] for media, exts in contract.IMAGE_FORMATS.values()}


QUOTA_TRIES = 4  # compare-and-swap attempts on the hour's count before giving up (not keeping)
CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
MISSING = ("NoSuchKey", "404", "AccessDenied", "403")


def new_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:013d}{secrets.token_hex(4)}"


def answer_of(prediction: Prediction) -> dict[str, Any]:
    answer = prediction.as_dict()
    answer.pop("model_version")
    return answer


def item_key(item_id: str) -> str:
    return f"{contract.REVIEW_ITEMS_PREFIX}{item_id}.json"


def claim_key(item_id: str) -> str:
    return f"{contract.REVIEW_LABELLED_PREFIX}{item_id}.json"


def label_key(label: str, item_id: str, media_type: str) -> str:
    return f"{contract.LABELS_PREFIX}{label}/{item_id}{EXTENSIONS.get(media_type, '')}"


class NotKept(Exception):
    """The answer was not kept; ``reason`` names why (a metric name of :mod:`contract`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def capture(
    s3: Any,
    bucket: str,
    data: bytes,
    prediction: Prediction,
    *,
    source: str,
    filename: str | None,
    per_hour: int,
    upload: dict[str, Any] | None = None,
) -> str:
    """Keep an answer for review: a private copy of its image and its record. Returns the item
    id; raises :class:`NotKept` for an image already kept or when the hour's bound is reached."""
    digest = sha256_hex(data)
    item_id = new_id()
    seen = f"{contract.REVIEW_SEEN_PREFIX}{digest}.json"
    if not _put_if_absent(s3, bucket, seen, {"id": item_id}):
        raise NotKept(contract.METRIC_CAPTURE_REPEATS)
    if not _take_quota(s3, bucket, per_hour):
        s3.delete_object(Bucket=bucket, Key=seen)  # not kept: a later sighting may be
        raise NotKept(contract.METRIC_CAPTURE_LIMITED)
    copy, media = private_copy(data)
    key = f"{contract.REVIEW_IMAGES_PREFIX}{item_id}{EXTENSIONS[media]}"
    s3.put_object(Bucket=bucket, Key=key, Body=copy, ContentType=media)
    item = {
        "id": item_id,
        "source": source,
        "image": {"bucket": bucket, "key": key},
        "media_type": media,
        "sha256": digest,
        "answer": answer_of(prediction),
        "model_version": prediction.model_version,
        "captured_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "filename": filename,
    }
    if upload is not None:
        item["upload"] = upload
    _put_json(s3, bucket, item_key(item_id), item)
    return item_id


def quota_key(now: float | None = None) -> str:
    hour = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{contract.REVIEW_QUOTA_PREFIX}{hour:%Y-%m-%dT%H}.json"


def _take_quota(s3: Any, bucket: str, per_hour: int) -> bool:
    """One of this hour's ``per_hour`` places, or False: a count raised by compare-and-swap, so
    two containers can never both take the last place (the loser reads again and retries)."""
    key = quota_key()
    for _ in range(QUOTA_TRIES):
        try:
            response = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            # AccessDenied: a missing key, to a role that may not list review/quota/
            if exc.response.get("Error", {}).get("Code") not in MISSING:
                raise
            taken, condition = 0, {"IfNoneMatch": "*"}
        else:
            taken = int(json.loads(response["Body"].read()).get("taken", 0))
            condition = {"IfMatch": response["ETag"]}
        if taken >= per_hour:
            return False
        try:
            _put_json(s3, bucket, key, {"taken": taken + 1}, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in CONFLICT:
                raise
            continue  # another container took a place meanwhile: read again
        return True
    return False  # contended past every try: not keeping is the safe side


def _put_if_absent(s3: Any, bucket: str, key: str, value: dict[str, Any]) -> bool:
    try:
        _put_json(s3, bucket, key, value, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in CONFLICT:
            return False
        raise
    return True


def _put_json(s3: Any, bucket: str, key: str, value: dict[str, Any], **extra: Any) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **extra)


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except ClientError as exc:
        # AccessDenied: S3's answer for a missing key to a role that may GET it but not list
        # the whole bucket (the API lists review/items/ only: infra/components/feedback.py).
        if exc.response.get("Error", {}).get("Code") in MISSING:
            return None
        raise


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None  # the id to pass as ``after`` for the next page


def pending(s3: Any, bucket: str, *, limit: int, after: str | None = None) -> Page:
    """Pending items, oldest first, each with a presigned link to its image."""
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
        if exc.response.get("Error", {}).get("Code") in CONFLICT:
            winner = _get_json(s3, bucket, claim_key(item_id)) or {"id": item_id, "label": "?"}
            if _get_json(s3, bucket, item_key(item_id)) is not None:
                finish(s3, bucket, winner)  # the winner stopped before its copy: complete it
            raise AlreadyLabelled(winner) from exc
        raise
    finish(s3, bucket, claim)
    return claim


def finish(s3: Any, bucket: str, claim: dict[str, Any]) -> None:
    """A claim's writes, each idempotent: the image copied under its label, the item removed.

    Items captured by this store point at their private copy, copied as it is; an older item
    pointing at someone's upload is re-encoded on the way (:func:`private_copy`), so no labelled
    image keeps its metadata.
    """
    item = claim.get("item")
    if not item:
        return
    source = {"Bucket": item["image"]["bucket"], "Key": item["image"]["key"]}
    if item["image"].get("version_id"):
        source["VersionId"] = item["image"]["version_id"]
    answer = item["answer"]
    metadata = {
        "item-id": claim["id"],
        "reviewer": ascii(claim["reviewer"])[1:-1][:200],  # metadata is ASCII
        "labelled-at": claim["labelled_at"],
        "model-version": item["model_version"],
        "model-said": f"{answer['category']} {answer['confidence']:.3f}",
        "model-flags": ",".join(f for f in ("unsure", "none_of_these") if answer.get(f)) or "-",
        "runner-up": answer.get("runner_up", ""),
        "sha256": item["sha256"],
    }
    ours = source["Bucket"] == bucket and source["Key"].startswith(contract.REVIEW_IMAGES_PREFIX)
    if ours:
        s3.copy_object(
            Bucket=bucket,
            Key=claim["label_key"],
            CopySource=source,
            MetadataDirective="REPLACE",
            ContentType=item["media_type"],
            Metadata=metadata,
        )
    else:
        copy, media = private_copy(s3.get_object(**source)["Body"].read())
        s3.put_object(
            Bucket=bucket, Key=claim["label_key"], Body=copy, ContentType=media, Metadata=metadata
        )
    s3.delete_object(Bucket=bucket, Key=item_key(claim["id"]))
