"""infra/components/upload_classifier.py: the drop folder's notifications, queue, async uploads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import as_list, our_functions, resources, statements

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def notification_filters(raw: dict[str, Any]) -> list[dict[str, str]]:
    """The key filters of the bucket notifications that feed the uploads queue."""
    (notifications,) = resources(raw, "Custom::S3BucketNotifications").values()
    configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in configs)
    return [{r["Name"]: r["Value"] for r in c["Filter"]["Key"]["FilterRules"]} for c in configs]


def reaches_the_queue(key: str, filters: list[dict[str, str]]) -> bool:
    """S3's rule: a literal, case-sensitive prefix and suffix match."""
    return any(
        key.startswith(f.get("prefix", "")) and key.endswith(f.get("suffix", "")) for f in filters
    )


def test_every_name_an_image_can_have_reaches_the_queue(synthesised: dict[str, Any]) -> None:
    from classifier import contract

    filters = notification_filters(synthesised["raw"])
    names = ["IMG_0042", "no extension", "My Dog+1", "2026-11-26 horse", "ünïcødé/猫"]
    keys = [f"{contract.UPLOADS_PREFIX}{name}" for name in names]
    for _, extensions in contract.IMAGE_FORMATS.values():
        for ext in extensions:
            for variant in (ext, ext.upper(), ext.capitalize(), ext[:2] + ext[2:].upper()):
                keys += [f"{contract.UPLOADS_PREFIX}{name}{variant}" for name in names]
    missed = [key for key in keys if not reaches_the_queue(key, filters)]
    assert not missed, f"these uploads would never reach the classifier: {missed[:5]}"
    assert not reaches_the_queue(f"{contract.RESULTS_PREFIX}a.png.json", filters)
    assert filters == [contract.UPLOADS_NOTIFICATION_FILTER]


def test_queue_has_a_dead_letter_queue_and_batched_partial_responses(
    synthesised: dict[str, Any],
) -> None:
    from aws_cdk.assertions import Match

    template = synthesised["template"]
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            # Throttled deliveries count as receives: AWS advises >= 5 for Lambda consumers.
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
            "VisibilityTimeout": 720,  # six times the function's timeout, as AWS advises
            "SqsManagedSseEnabled": True,
        },
    )
    template.has_resource_properties("AWS::SQS::Queue", {"MessageRetentionPeriod": 14 * 24 * 3600})
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 50,
            "MaximumBatchingWindowInSeconds": 2,  # AWS requires >= 1 s above 10 messages
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_async_uploads_are_wired_for_browsers_and_events_reach_the_default_bus(
    synthesised: dict[str, Any],
) -> None:
    from aws_cdk.assertions import Match

    functions = our_functions(synthesised["raw"])
    api = functions["classifier.api.handler"]["Environment"]["Variables"]
    assert "Ref" in api["UPLOADS_BUCKET"]
    uploads = functions["classifier.upload_classifier.handler"]["Environment"]["Variables"]
    assert uploads["EVENT_BUS"] == "default"
    synthesised["template"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "CorsConfiguration": {
                "CorsRules": [
                    Match.object_like({"AllowedMethods": ["POST"], "AllowedOrigins": ["*"]})
                ]
            }
        },
    )
    puts = [
        statement
        for _, statement in statements(synthesised["raw"])
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    assert len(puts) == 1 and "event-bus/default" in json.dumps(puts[0]["Resource"])
