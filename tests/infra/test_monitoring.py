"""infra/components/monitoring.py: alarms and the dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import as_list, resources

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def test_cloudwatch_alarms_may_publish_to_the_alarm_topic(synthesised: dict[str, Any]) -> None:
    # A topic policy replaces SNS's default one: without an Allow for CloudWatch (from this
    # account), alarm e-mails would never be sent.
    (policy,) = resources(synthesised["raw"], "AWS::SNS::TopicPolicy").values()
    allowed = [
        st
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow" and "sns:Publish" in as_list(st["Action"])
    ]
    (statement,) = allowed
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_the_rejection_alarm_fires_when_every_image_is_rejected(
    synthesised: dict[str, Any],
) -> None:
    # A minute with nothing classified has no "classified" point; without FILL the share would
    # have no point either and the alarm would read it as not breaching.
    alarms = resources(synthesised["raw"], "AWS::CloudWatch::Alarm").values()
    expressions = [
        m["Expression"]
        for a in alarms
        for m in a["Properties"].get("Metrics", [])
        if "Expression" in m and "rejected" in m["Expression"]
    ]
    assert len(expressions) == 2  # the API's and the drop folder's rollouts
    for expression in expressions:
        assert "FILL(rejected, 0)" in expression and "FILL(classified, 0)" in expression


def test_alarms_watch_errors_throttles_5xx_and_dead_letters(synthesised: dict[str, Any]) -> None:
    alarms = resources(synthesised["raw"], "AWS::CloudWatch::Alarm")
    # The rollout's and the drift alarms have tests of their own (test_rollout.py, test_drift.py).
    service = {k: a for k, a in alarms.items() if "Rollout" not in k and "Drift" not in k}
    metrics = sorted(
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in service.values()
    )
    assert metrics == sorted(
        [
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Throttles"),
            ("AWS/Lambda", "Throttles"),
            ("AWS/ApiGateway", "5xx"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ]
    )
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"], "every alarm notifies the topic"


def test_the_dashboard_shows_traffic_latency_errors_queue_categories_and_models(
    synthesised: dict[str, Any],
) -> None:
    (dashboard,) = resources(synthesised["raw"], "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(p if isinstance(p, str) else "X" for p in parts))
    widgets = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    assert set(widgets) == {
        "API requests",
        "API latency (ms)",
        "Errors",
        "Function duration p50 / p99 (ms)",
        "Throttles",
        "Dead-letter queue depth",
        "Classifications per category",
        "Mean confidence per model version",
        "Images classified, rejected, none of these and unsure per model version",
        "Classify latency per model version (ms, p99)",
        "Feedback: answers captured for review, capture failures, labels",
        "Drift (cifar10-api): shares unsure and none of these, live and expected",
        "Drift (cifar10-uploads): shares unsure and none of these, live and expected",
    }

    def stats(title: str) -> set[str]:
        return {m[-1].get("stat") for m in widgets[title]["metrics"] if isinstance(m[-1], dict)}

    assert stats("API latency (ms)") == {"p50", "p99"}
    errors = json.dumps(widgets["Errors"]["metrics"])
    assert '"5xx"' in errors and '"4xx"' in errors and errors.count('"Errors"') == 2
    assert json.dumps(widgets["Throttles"]["metrics"]).count('"Throttles"') == 2
    assert "ApproximateNumberOfMessagesVisible" in json.dumps(widgets["Dead-letter queue depth"])
    schema = "{Cifar10Classifier,ModelVersion,service}"
    (categories,) = widgets["Classifications per category"]["metrics"]
    assert f"SEARCH('{schema} Category_', 'Sum'" in categories[0]["expression"]
    (confidence,) = widgets["Mean confidence per model version"]["metrics"]
    assert f"SEARCH('{schema} MetricName=\"Confidence\"', 'Average'" in confidence[0]["expression"]
    assert "Dashboard" in synthesised["raw"]["Outputs"]
