"""The drift alarms' baseline: what the served model's answers should look like.

Run at deploy time by a custom resource (standard library and boto3 only), each time the
``ModelVersion`` parameter or the baseline settings change, so the alarms follow the model that
serves (a promotion on the previous template included).

``Mode=validation`` (the default): the manifest's ``validation_answers`` (share unsure, share none
of these, each category's share on the validation split, as served); manifests written before it
existed give the validation coverage's complement, the test split's share flagged none of these,
and an even category mix.

``Mode=traffic``: the deployment's own answers over the last ``Days`` days (both functions, every
model version: CloudWatch's SEARCH in GetMetricData, which alarms cannot use but a reader can), as a
monitoring baseline job would take them; with fewer than ``MinAnswers`` answers there, the
validation figures, and ``Source`` says so.

The answers are strings (CloudFormation attributes): ``Unsure``, ``NoneOfThese``, ``Images`` (how
many validation answers the shares come from), ``Source``, and
for each of ``SLOTS`` category slots ``Category<i>`` (a metric name) and ``Share<i>``; slots past
the model's categories watch a metric no answer emits, with share 1 (they add nothing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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


def traffic(
    manifest: dict[str, Any], props: dict[str, Any], cloudwatch: Any, now: datetime
) -> dict[str, Any] | None:
    """``manifest`` with ``validation_answers`` replaced by the last ``Days`` days of answers,
    or None when they were fewer than ``MinAnswers``."""
    days, namespace = int(props["Days"]), props["Namespace"]
    schema = "{" + ",".join([namespace, *props["Dimensions"]]) + "}"
    names = {"n": props["Answers"], "u": props["Unsure"], "x": props["NoneOfThese"]}
    names |= {f"c{i}": props["CategoryPrefix"] + c for i, c in enumerate(manifest["class_names"])}
    queries = [
        {
            "Id": key,
            "Expression": f"SUM(SEARCH('{schema} MetricName=\"{name}\"', 'Sum', {days * 86400}))",
            "ReturnData": True,
        }
        for key, name in names.items()
    ]
    found = cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=now - timedelta(days=days), EndTime=now
    )["MetricDataResults"]
    sums = {r["Id"]: sum(r.get("Values", [])) for r in found}
    n = sums.get("n", 0)
    if n < int(props["MinAnswers"]):
        return None
    categories = {c: sums.get(f"c{i}", 0) / n for i, c in enumerate(manifest["class_names"])}
    mix = {"unsure": sums.get("u", 0) / n, "none_of_these": sums.get("x", 0) / n, "images": n}
    return {**manifest, "validation_answers": {**mix, "categories": categories}}


def attributes(props: dict[str, Any], s3: Any, cloudwatch: Any, now: datetime) -> dict[str, str]:
    body = s3.get_object(Bucket=props["Bucket"], Key=props["Key"])
    manifest = json.loads(body["Body"].read())
    if props.get("Mode") == "traffic":
        days = props["Days"]
        taken = traffic(manifest, props, cloudwatch, now)
        if taken is not None:
            answers = int(taken["validation_answers"]["images"])
            return {
                **baseline(taken, props["CategoryPrefix"]),
                "Source": f"traffic: {answers} answers over the {days} days before {now:%Y-%m-%d}",
            }
        out = baseline(manifest, props["CategoryPrefix"])
        out["Source"] += f" (traffic: fewer than {props['MinAnswers']} answers in {days} days)"
        return out
    return baseline(manifest, props["CategoryPrefix"])


def respond(event: dict[str, Any], status: str, data: dict[str, str], reason: str = "") -> None:
    """CloudFormation's custom-resource answer: a PUT of JSON to the pre-signed ResponseURL."""
    from urllib.request import Request, urlopen

    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or "see the function's log",
            "PhysicalResourceId": f"drift-baseline-{event['ResourceProperties'].get('Key', '')}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = Request(event["ResponseURL"], data=body, method="PUT")  # noqa: S310 - CloudFormation's https URL
    request.add_header("Content-Type", "")
    with urlopen(request, timeout=30):  # noqa: S310
        pass


def handler(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom resource: answer the baseline. A deploy must never hang on it:
    every failure is reported to CloudFormation."""
    try:
        data: dict[str, str] = {}
        if event["RequestType"] != "Delete":
            import boto3

            props = event["ResourceProperties"]
            data = attributes(
                props, boto3.client("s3"), boto3.client("cloudwatch"), datetime.now(UTC)
            )
        respond(event, "SUCCESS", data)
    except Exception as exc:  # noqa: BLE001 - reported, never left hanging
        respond(event, "FAILED", {}, str(exc)[:500])
