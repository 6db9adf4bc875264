"""Completion events: one EventBridge event per result written."""

from __future__ import annotations

import json
from typing import Any

from classifier import contract, service


def publish_completion(result: dict[str, Any]) -> None:
    """One EventBridge event per result written (at least once: a retry may send it again).

    A failure raises, so the message is retried; the result itself is already written.
    """
    bus = service.settings().event_bus
    if not bus:
        return
    detail = {
        k: result.get(k)
        for k in (
            "bucket",
            "key",
            "version_id",
            "result_key",
            "category",
            "confidence",
            "unsure",
            "runner_up",
            "none_of_these",
        )
    }
    detail["model_version"] = result.get("model_version")
    if "error" in result:
        detail["error"] = result["error"]
    name = contract.EVENT_NOT_CLASSIFIED if "error" in result else contract.EVENT_CLASSIFIED
    response = service.events_client().put_events(
        Entries=[
            {
                "Source": contract.EVENT_SOURCE,
                "DetailType": name,
                "Detail": json.dumps(detail),
                "EventBusName": bus,
                "Resources": [f"arn:aws:s3:::{result['bucket']}/{result['key']}"],
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused the completion event: {response['Entries']}")
