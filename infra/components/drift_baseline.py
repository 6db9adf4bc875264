"""The drift alarms' baseline: what the served model's answers should look like, from its manifest.

Run at deploy time by a custom resource (this file is its Lambda's whole code: standard library
and boto3 only), each time the ``ModelVersion`` parameter changes, so the alarms follow the model
that serves (a promotion on the previous template included). The manifest's ``validation_answers``
(share unsure, share none of these, each category's share on the validation split, as served) is
the baseline; manifests written before it existed give the validation coverage's complement, the
test split's share flagged none of these, and an even category mix.

The answers are strings (CloudFormation attributes): ``Unsure``, ``NoneOfThese``, ``Images`` (how
many validation answers the shares come from), ``Source``, and
for each of ``SLOTS`` category slots ``Category<i>`` (a metric name) and ``Share<i>``; slots past
the model's categories watch a metric no answer emits, with share 1 (they add nothing).
"""

from __future__ import annotations

import json
from typing import Any

SLOTS = 10  # CloudWatch metric math takes at most 10 metrics per alarm
UNUSED_SLOT = "Category_-"  # no category is named "-": nothing is ever emitted under it
FLOOR = 0.0005  # a share below this is taken as this (a category validation never answered)


def baseline(manifest: dict[str, Any], category_prefix: str) -> dict[str, str]:
    """The attributes for one manifest."""
    names = list(manifest["class_names"])
    mix = manifest.get("validation_answers")
    if mix:
        source = "validation_answers"
        unsure, none, images = mix["unsure"], mix["none_of_these"], mix["images"]
        shares = [mix["categories"].get(n, 0.0) for n in names]
    else:  # a manifest from before the baseline was recorded
        source = "validation coverage, test none-of-these, even mix"
        metrics = manifest.get("metrics", {})
        coverage = metrics.get("validation_calibration", {}).get("coverage", metrics["coverage"])
        unsure, none = 1 - coverage, metrics.get("test_flagged_none_of_these", 0.05)
        images = manifest.get("data", {}).get("validation_images") or 1000
        shares = [1 / len(names)] * len(names)
    # The slots watch the most common categories when a model has more than SLOTS of them.
    ranked = sorted(zip(shares, names), reverse=True)[:SLOTS]
    total = sum(s for s, _ in ranked) or 1.0
    out = {
        "Source": source,
        "Images": str(int(images)),  # the baseline's own sample: its error widens the test
        "Unsure": f"{min(max(unsure, FLOOR), 1 - FLOOR):.6f}",
        "NoneOfThese": f"{min(max(none, FLOOR), 1 - FLOOR):.6f}",
    }
    for i in range(SLOTS):
        share, name = ranked[i] if i < len(ranked) else (None, None)
        out[f"Category{i}"] = f"{category_prefix}{name}" if name else UNUSED_SLOT
        out[f"Share{i}"] = f"{max(share / total, FLOOR):.6f}" if share is not None else "1"
    return out


def handler(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: read models/<version>/manifest.json, answer the baseline.
    A deploy must never hang on it: every failure is reported to CloudFormation."""
    import boto3
    import cfnresponse  # CloudFormation provides it to inline code

    props = event["ResourceProperties"]
    physical = f"drift-baseline-{props.get('Key', '')}"
    try:
        data: dict[str, str] = {}
        if event["RequestType"] != "Delete":
            body = boto3.client("s3").get_object(Bucket=props["Bucket"], Key=props["Key"])
            data = baseline(json.loads(body["Body"].read()), props["CategoryPrefix"])
        cfnresponse.send(event, context, cfnresponse.SUCCESS, data, physical)
    except Exception as exc:  # noqa: BLE001 - reported, never left hanging
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, physical, reason=str(exc)[:500])
