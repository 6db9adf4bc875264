"""The drift alarms as synthesised: their expressions, parsed from the template and evaluated on the
API handler's own metric lines, are quiet on images like the served model's validation split and
fire on grey, dark ones (the feedback demo's shift); the baseline comes from the manifest."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.hooks.drift_baseline import SLOTS, UNUSED_SLOT, baseline
from tests.conftest import PUBLISHED, ROOT
from tests.infra.conftest import resources

SERVED = ROOT / "models" / "latest" / "manifest.json"
DATA = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"


def drift_alarms(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v["Properties"]
        for k, v in resources(raw, "AWS::CloudWatch::Alarm").items()
        if k.startswith("Drift")
    }


def resolve(value: Any, attributes: dict[str, str], version: str) -> str:
    """A template value with the baseline's attributes and the ModelVersion parameter filled in."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        return attributes[value["Fn::GetAtt"][1]]
    if value.get("Ref") == "ModelVersion":
        return version
    separator, parts = value["Fn::Join"]
    return separator.join(resolve(p, attributes, version) for p in parts)


def evaluate(
    alarm: dict[str, Any],
    sums: dict[tuple[str, str], float],
    attributes: dict[str, str],
    version: str,
) -> float:
    """The alarm's returned expression on per-window sums keyed by (metric, service)."""
    values: dict[str, Any] = {}
    expression = ""
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {
                d["Name"]: resolve(d["Value"], attributes, version) for d in metric["Dimensions"]
            }
            assert dims["ModelVersion"] == version
            name = resolve(metric["MetricName"], attributes, version)
            found = sums.get((name, dims["service"]))
            values[query["Id"]] = np.float64(found) if found is not None else None
        elif query.get("ReturnData", True):
            expression = resolve(query["Expression"], attributes, version)
    python = re.sub(r"\bIF\(", "_if(", expression.replace("^", "**"))
    python = python.replace("ABS(", "abs(").replace("SQRT(", "np.sqrt(").replace("FILL(", "_fill(")
    namespace = {
        "_if": lambda c, a, b: a if c else b,
        "_fill": lambda v, d: np.float64(d) if v is None else v,
        "np": np,
        **values,
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(eval(python, {"__builtins__": {"abs": abs}}, namespace))


@pytest.mark.infra
def test_six_alarms_watch_the_served_version_each_within_ten_metrics(raw: dict[str, Any]) -> None:
    alarms = drift_alarms(raw)
    assert len(alarms) == 6
    for name, alarm in alarms.items():
        stats = [q for q in alarm["Metrics"] if "MetricStat" in q]
        assert 2 <= len(stats) <= 10, name
        for query in stats:
            dims = {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}
            assert dims["ModelVersion"] == {"Ref": "ModelVersion"}
        assert "Rollback" not in json.dumps(alarm)  # drift notifies; it never rolls back
        assert alarm["AlarmActions"], name
    (reader,) = [
        r["Properties"]
        for k, r in resources(raw, "AWS::CloudFormation::CustomResource").items()
        if k.startswith("DriftBaseline")
    ]
    assert "ModelVersion" in json.dumps(reader["Key"])  # a promotion reads the baseline again


def test_the_baseline_is_the_manifests_validation_answers() -> None:
    manifest = json.loads(SERVED.read_text())
    manifest["validation_answers"] = {
        "images": 5000,
        "unsure": 0.16,
        "none_of_these": 0.05,
        "categories": {n: 0.1 for n in manifest["class_names"]},
    }
    found = baseline(manifest, "Category_")
    assert found["Source"] == "validation_answers"
    assert float(found["Unsure"]) == 0.16 and float(found["NoneOfThese"]) == 0.05
    assert {found[f"Category{i}"] for i in range(SLOTS)} == {
        f"Category_{n}" for n in manifest["class_names"]
    }
    two = {**manifest, "class_names": ["cat", "dog"]}
    two["validation_answers"] = {
        **manifest["validation_answers"],
        "categories": {"cat": 0.3, "dog": 0.7},
    }
    slots = baseline(two, "Category_")
    assert (slots["Category0"], slots["Share0"]) == ("Category_dog", "0.700000")
    assert slots["Category2"] == UNUSED_SLOT and slots["Share2"] == "1"


def test_a_manifest_from_before_the_baseline_gives_coverage_and_an_even_mix() -> None:
    manifest = json.loads(SERVED.read_text())
    assert "validation_answers" not in manifest  # the served model predates it
    found = baseline(manifest, "Category_")
    coverage = manifest["metrics"]["validation_calibration"]["coverage"]
    assert float(found["Unsure"]) == pytest.approx(1 - coverage, abs=1e-6)
    assert {found[f"Share{i}"] for i in range(SLOTS)} == {"0.100000"}


def metric_sums(images: list[bytes], version: str, monkeypatch: Any, capsys: Any) -> dict:
    """Run the API handler on the images (batches of 32) and add up its EMF metric lines."""
    from classifier import api

    from scripts.invoke import LocalContext
    from scripts.make_events import http_v2

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cifar10-api")
    boundary = "drift-test-boundary"
    sums: dict[tuple[str, str], float] = defaultdict(float)
    capsys.readouterr()
    for start in range(0, len(images), 32):
        body = (
            b"".join(
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="{i}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
                + data
                + b"\r\n"
                for i, data in enumerate(images[start : start + 32])
            )
            + f"--{boundary}--\r\n".encode()
        )
        event = http_v2("POST", "/predict/batch", body, f"multipart/form-data; boundary={boundary}")
        assert api.handler(event, LocalContext())["statusCode"] == 200
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        assert record["ModelVersion"] == version
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                sums[(metric["Name"], record["service"])] += float(np.sum(value))
    return sums


@pytest.mark.slow
@pytest.mark.infra
@pytest.mark.skipif(not DATA.is_dir(), reason=f"needs the CIFAR-10 copy at {DATA}")
def test_the_alarms_are_quiet_on_validation_images_and_unsure_and_mix_fire_on_grey_dark_ones(
    raw: dict[str, Any], use_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from training import data as cifar
    from training.shifts import SHIFTS, as_png

    manifest = json.loads(use_model.read_text())
    version = manifest["model_version"]
    attributes = baseline(manifest, "Category_")
    recipe = manifest["recipe"]
    dataset, _ = cifar.load(str(DATA))
    _, _, x_val, _ = cifar.split_validation(
        dataset.x_train, dataset.y_train, recipe["validation_fraction"], recipe["seed"]
    )
    x = x_val[np.random.default_rng(1).permutation(len(x_val))[:640]]
    api_alarms = {k: a for k, a in drift_alarms(raw).items() if "Api" in k}
    assert len(api_alarms) == 3
    quiet = metric_sums(as_png(x), version, monkeypatch, capsys)
    assert quiet[("ImagesClassified", "cifar10-api")] == len(x)
    loud = metric_sums(as_png(SHIFTS["grey_and_dark"](x)), version, monkeypatch, capsys)
    for name, alarm in api_alarms.items():
        calm = evaluate(alarm, quiet, attributes, version)
        alarming = evaluate(alarm, loud, attributes, version)
        assert calm <= alarm["Threshold"], (name, calm)
        if "Mix" in name or "Unsure" in name:  # the shift moves these two for sure
            assert alarming > alarm["Threshold"], (name, alarming)
    # Fewer answers than the minimum: no verdict either way.
    few = {k: v * 100 / len(x) for k, v in loud.items()}
    assert all(evaluate(a, few, attributes, version) == 0 for a in api_alarms.values())


class Metrics:
    """CloudWatch's GetMetricData as the reader calls it: the sums it answers, the queries kept."""

    def __init__(self, sums: dict[str, float]) -> None:
        self.sums, self.queries = sums, []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.queries = request["MetricDataQueries"]
        return {
            "MetricDataResults": [
                {"Id": q["Id"], "Values": [self.sums[q["Id"]]] if q["Id"] in self.sums else []}
                for q in self.queries
            ]
        }


TRAFFIC = {
    "Bucket": "b",
    "Key": "models/v/manifest.json",
    "CategoryPrefix": "Category_",
    "Mode": "traffic",
    "Days": "7",
    "MinAnswers": "1000",
    "Namespace": "Cifar10Classifier",
    "Dimensions": ["ModelVersion", "service"],
    "Answers": "ImagesClassified",
    "Unsure": "Unsure",
    "NoneOfThese": "NoneOfThese",
}


class Manifests:
    def __init__(self, manifest: dict[str, Any]) -> None:
        self.body = json.dumps(manifest).encode()

    def get_object(self, **_: Any) -> dict[str, Any]:
        import io

        return {"Body": io.BytesIO(self.body)}


def test_a_traffic_baseline_is_the_deployments_own_last_days() -> None:
    from datetime import UTC, datetime

    from infra.hooks.drift_baseline import attributes

    manifest = json.loads(PUBLISHED.read_text())
    names = manifest["class_names"]
    sums = {"n": 5000, "u": 1500, "x": 100, **{f"c{i}": 0 for i in range(10)}}
    sums |= {"c3": 4000, "c5": 1000}  # a cat and dog shop
    metrics = Metrics(sums)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    got = attributes(TRAFFIC, Manifests(manifest), metrics, now)
    assert got["Source"] == "traffic: 5000 answers over the 7 days before 2026-12-07"
    assert float(got["Unsure"]) == 0.3 and float(got["NoneOfThese"]) == 0.02
    assert got["Images"] == "5000"
    assert (got["Category0"], float(got["Share0"])) == (f"Category_{names[3]}", 0.8)
    assert (got["Category1"], float(got["Share1"])) == (f"Category_{names[5]}", 0.2)
    # Summed over both functions and every model version, one period the length of the window.
    expression = next(q["Expression"] for q in metrics.queries if q["Id"] == "u")
    assert expression == (
        "SUM(SEARCH('{Cifar10Classifier,ModelVersion,service} MetricName=\"Unsure\"', "
        "'Sum', 604800))"
    )


def test_too_little_traffic_keeps_the_validation_baseline_and_says_so() -> None:
    from datetime import UTC, datetime

    from infra.hooks.drift_baseline import attributes

    manifest = json.loads(PUBLISHED.read_text())
    got = attributes(TRAFFIC, Manifests(manifest), Metrics({"n": 999}), datetime.now(UTC))
    assert got == {
        **baseline(manifest, "Category_"),
        "Source": baseline(manifest, "Category_")["Source"]
        + " (traffic: fewer than 1000 answers in 7 days)",
    }


def test_the_reader_answers_cloudformation_and_never_leaves_it_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra.hooks import drift_baseline

    answers: list[dict[str, Any]] = []

    class Sent:
        def __init__(self, request: Any, timeout: float) -> None:
            assert request.get_method() == "PUT" and timeout > 0
            answers.append(json.loads(request.data))

        def __enter__(self) -> Sent:
            return self

        def __exit__(self, *_: Any) -> None:
            return None

    monkeypatch.setattr("urllib.request.urlopen", Sent)
    event = {
        "RequestType": "Create",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": "s",
        "RequestId": "r",
        "LogicalResourceId": "Baseline",
        "ResourceProperties": {**TRAFFIC, "Mode": "validation"},
    }
    manifest = json.loads(PUBLISHED.read_text())

    class Boto3:
        @staticmethod
        def client(name: str) -> Any:
            return Manifests(manifest) if name == "s3" else Metrics({})

    monkeypatch.setitem(__import__("sys").modules, "boto3", Boto3)
    drift_baseline.handler(event, None)
    assert answers[-1]["Status"] == "SUCCESS"
    assert answers[-1]["Data"] == baseline(manifest, "Category_")
    assert answers[-1]["PhysicalResourceId"] == "drift-baseline-models/v/manifest.json"
    manifest = {}  # a manifest without class names: reported, not raised
    drift_baseline.handler(event, None)
    assert answers[-1]["Status"] == "FAILED" and answers[-1]["Data"] == {}
    assert "class_names" in answers[-1]["Reason"]


def test_only_a_traffic_baseline_may_read_metrics(
    raw: dict[str, Any], everything_on: dict[str, Any]
) -> None:
    def reader(template: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        (baseline_resource,) = [
            r["Properties"]
            for k, r in template["Resources"].items()
            if k.startswith("DriftBaseline") and r["Type"] == "AWS::CloudFormation::CustomResource"
        ]
        actions = [
            a
            for name, p in resources(template, "AWS::IAM::Policy").items()
            if name.startswith("DriftBaselineReader")
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        ]
        return actions, baseline_resource

    actions, props = reader(raw)
    assert "cloudwatch:GetMetricData" not in actions and props["Mode"] == "validation"
    actions, props = reader(everything_on)
    assert "cloudwatch:GetMetricData" in actions
    assert (props["Mode"], props["Days"]) == ("traffic", "14")
    source = everything_on["Outputs"]["DriftBaselineSource"]["Value"]
    assert source == {"Fn::GetAtt": [source["Fn::GetAtt"][0], "Source"]}
