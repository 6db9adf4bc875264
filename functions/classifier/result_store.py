"""Results under ``results/``, never stale: each records the S3 ``sequencer`` of the upload it
describes and is written by S3 conditional writes, only if no result of a later upload of that
key is there. A standard queue delivers out of order and more than once; the result always
describes the newest version of its object."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

SEQUENCER_METADATA = "sequencer"  # x-amz-meta-sequencer on each result object
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
WRITE_ATTEMPTS = 5
WRITTEN, DUPLICATE, SUPERSEDED = "written", "duplicate", "superseded"


class ResultConflict(RuntimeError):
    """The result kept changing under us; the message is retried."""


def later(sequencer: str, than: str) -> bool:
    """Whether S3 sequencer ``sequencer`` comes after ``than`` (same key only).

    AWS: pad the shorter hexadecimal string with zeros on the right, then compare them as strings.
    """
    width = max(len(sequencer), len(than))
    return sequencer.upper().ljust(width, "0") > than.upper().ljust(width, "0")


def result_key(key: str, uploads_prefix: str, results_prefix: str) -> str:
    """``uploads/a/photo.png`` -> ``results/a/photo.png.json``."""
    relative = key[len(uploads_prefix) :] if key.startswith(uploads_prefix) else key
    return f"{results_prefix}{relative}.json"


def _conflict(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(error.get("Code")) in CONFLICTS or status in ("409", "412")


def write_result(
    s3: Any, bucket: str, key: str, result: dict[str, Any], sequencer: str | None
) -> str:
    """Write ``result`` unless a result of this upload or a later one (by sequencer) is there.

    Returns WRITTEN, DUPLICATE (this upload's result is there already) or SUPERSEDED (a later
    upload's is). Create-if-absent, else replace-if-unchanged (S3 conditional writes), so two
    writers of one key cannot interleave a stale result after a fresh one.
    """
    body = {"Body": json.dumps(result, indent=2).encode(), "ContentType": "application/json"}
    if sequencer is None:
        s3.put_object(Bucket=bucket, Key=key, **body)
        return WRITTEN
    condition: dict[str, str] = {"IfNoneMatch": "*"}
    for _ in range(WRITE_ATTEMPTS):
        try:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Metadata={SEQUENCER_METADATA: sequencer},
                **condition,
                **body,
            )
            return WRITTEN
        except ClientError as exc:
            if not _conflict(exc):
                raise
        head = s3.head_object(Bucket=bucket, Key=key)
        existing = head.get("Metadata", {}).get(SEQUENCER_METADATA)
        if existing and not later(sequencer, existing):
            return SUPERSEDED if later(existing, sequencer) else DUPLICATE
        condition = {"IfMatch": head["ETag"]}
    raise ResultConflict(f"the result {key} kept changing during {WRITE_ATTEMPTS} attempts")
