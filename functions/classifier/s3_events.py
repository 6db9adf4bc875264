"""The shapes S3 can announce an upload in, as objects: S3 event notifications (also inside SQS
messages) and EventBridge "Object Created" events, parsed with Powertools' event classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.s3_event import (
    S3EventBridgeNotificationEvent,
)


class UnknownEvent(ValueError):
    """The event is none of the shapes this handler accepts."""


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None  # orders the events of one key; None: write unconditionally


def objects_in_notification(notification: dict[str, Any]) -> list[S3Object]:
    """The created objects of an S3 event notification (keys arrive URL-encoded: decoded here)."""
    if notification.get("Event") == "s3:TestEvent":
        return []  # sent once when the notification is configured; nothing to classify
    found = []
    for record in S3Event(notification).records:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        obj = record.s3.get_object
        found.append(
            S3Object(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj.key),
                version_id=obj.version_id,
                etag=obj.etag or None,
                size=obj.get("size"),
                sequencer=obj.get("sequencer"),
            )
        )
    return found


def object_in_eventbridge(event: dict[str, Any]) -> S3Object:
    detail = S3EventBridgeNotificationEvent(event).detail
    obj = detail.object
    return S3Object(
        bucket=detail.bucket.name,
        key=obj.key,  # Powertools decodes it
        version_id=obj.get("version-id"),
        etag=obj.etag or None,
        size=obj.size,
        sequencer=obj.get("sequencer"),
    )
