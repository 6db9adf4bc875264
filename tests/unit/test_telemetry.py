"""The functions' log lines and metric documents, as CloudWatch reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from classifier import contract
from classifier.logs import Logger
from classifier.telemetry import MOST_VALUES, ClassificationMetrics


class Context:
    function_name = "cifar10-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cifar10-api"
    aws_request_id = "request-1"


def lines(printed: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in printed.splitlines()]


def test_log_lines_carry_the_invocation_its_extras_and_the_first_call_as_the_cold_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc-def;Parent=12;Sampled=1")
    logger = Logger(service="telemetry-test")

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info("classified", extra={"key": event["key"]})
        if event.get("fail"):
            try:
                raise ValueError("broken")
            except ValueError:
                logger.exception("unhandled error")

    handler({"key": "a.png"}, Context())
    handler({"key": "b.png", "fail": True}, Context())
    logger.info("outside")
    first, second, failure, outside = lines(capsys.readouterr().out)
    assert first["message"] == "classified" and first["key"] == "a.png"
    assert first["location"].startswith("handler:")  # the caller's, not the logger's
    assert first["level"] == "INFO" and first["service"] == "telemetry-test"
    assert first["function_request_id"] == "request-1" and first["cold_start"] is True
    assert first["xray_trace_id"] == "1-abc-def"
    assert second["cold_start"] is False and second["key"] == "b.png"
    assert failure["exception_name"] == "ValueError" and "broken" in failure["exception"]
    assert "function_request_id" not in outside  # no invocation's fields outside one


def test_a_provisioned_environments_first_request_is_not_a_cold_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    logger = Logger(service="telemetry-test")
    logger.inject_lambda_context(lambda event, context: logger.info("first"))({}, Context())
    (line,) = lines(capsys.readouterr().out)
    assert line["cold_start"] is False


def test_metrics_are_one_emf_document_per_invocation_and_a_new_one_past_100_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(contract.Env.LAMBDA_FUNCTION_NAME, "cifar10-api")
    metrics = ClassificationMetrics("telemetry-test")

    @metrics.flushed
    def handler(rejected: int) -> None:
        for _ in range(rejected):
            metrics.rejected("v1")

    handler(1)
    (one,) = lines(capsys.readouterr().out)
    (directive,) = one["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == contract.METRICS_NAMESPACE
    assert directive["Dimensions"] == [["service", "ModelVersion"]]
    assert directive["Metrics"] == [{"Name": "ImagesRejected", "Unit": "Count"}]
    assert one["ImagesRejected"] == 1.0 and one["ModelVersion"] == "v1"

    handler(MOST_VALUES + 3)
    full, rest = lines(capsys.readouterr().out)
    assert len(full["ImagesRejected"]) == MOST_VALUES and rest["ImagesRejected"] == [1.0] * 3

    # Feedback counts are per function: a document of their own, without the model version.
    @metrics.flushed
    def captured() -> None:
        metrics.rejected("v1")
        metrics.count(contract.METRIC_CAPTURED)

    captured()
    by_version, per_function = lines(capsys.readouterr().out)
    assert by_version["ModelVersion"] == "v1" and contract.METRIC_CAPTURED not in by_version
    assert per_function["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert per_function[contract.METRIC_CAPTURED] == 1.0 and "ModelVersion" not in per_function

    monkeypatch.setenv(contract.Env.METRICS_DISABLED, "true")
    handler(2)
    assert capsys.readouterr().out == ""
