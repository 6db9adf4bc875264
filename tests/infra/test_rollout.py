"""infra/components/rollout.py: models bound to function versions, canaries that roll back, checks
before traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import function_id, resources, synth

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def test_every_caller_reaches_the_functions_through_their_live_alias(
    raw: dict[str, Any],
) -> None:
    aliases = resources(raw, "AWS::Lambda::Alias")
    by_function = {a["Properties"]["FunctionName"]["Ref"]: k for k, a in aliases.items()}
    api_alias = by_function[function_id(raw, "classifier.api.handler")]
    uploads_alias = by_function[function_id(raw, "classifier.upload_classifier.handler")]
    assert all(a["Properties"]["Name"] == "live" for a in aliases.values())
    (integration,) = resources(raw, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationUri"] == {"Ref": api_alias}
    (mapping,) = resources(raw, "AWS::Lambda::EventSourceMapping").values()
    consumer = json.dumps(mapping["Properties"]["FunctionName"])
    assert f'{{"Ref": "{uploads_alias}"}}' in consumer and consumer.endswith('":live"]]}')
    (machine,) = [
        m
        for k, m in resources(raw, "AWS::StepFunctions::StateMachine").items()
        if k.startswith("BulkClassifier")
    ]
    assert {"Ref": uploads_alias} in machine["Properties"]["DefinitionString"]["Fn::Join"][1]


def test_a_new_model_publishes_new_versions_and_old_ones_are_kept(
    raw: dict[str, Any],
) -> None:
    versions = resources(raw, "AWS::Lambda::Version")
    assert len(versions) == 2
    for version in versions.values():
        # A changed description replaces an AWS::Lambda::Version: a new ModelVersion publishes.
        assert version["Properties"]["Description"] == {
            "Fn::Join": ["", ["model ", {"Ref": "ModelVersion"}]]
        }
        assert version["DeletionPolicy"] == version["UpdateReplacePolicy"] == "Retain"
        assert "ModelStorePublishedModelCustomResource815313FC" in version["DependsOn"]
    for alias in resources(raw, "AWS::Lambda::Alias").values():
        assert alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0] in versions


def test_codedeploy_shifts_each_alias_as_a_canary_and_rolls_back_on_alarms(
    raw: dict[str, Any],
) -> None:
    groups = resources(raw, "AWS::CodeDeploy::DeploymentGroup")
    alarms = resources(raw, "AWS::CloudWatch::Alarm")
    aliases = resources(raw, "AWS::Lambda::Alias")
    assert len(groups) == 2
    for alias in aliases.values():
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["DeploymentGroupName"]["Ref"] in groups
    for group_id, group in groups.items():
        props = group["Properties"]
        assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        rollback = props["AutoRollbackConfiguration"]
        assert rollback["Enabled"] is True
        assert set(rollback["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_ALARM",
            "DEPLOYMENT_STOP_ON_REQUEST",
        }
        watched = [
            alarms[a["Name"]["Ref"]]["Properties"] for a in props["AlarmConfiguration"]["Alarms"]
        ]
        signals = {(a.get("Namespace"), a.get("MetricName")) for a in watched}
        expected = {
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Duration"),
            ("Cifar10Classifier", "Confidence"),
            (None, None),  # the rejected-image share (metric math)
        }
        if group_id.startswith("InferenceApi"):  # its own 5xx, never the API-wide count
            expected.add(("Cifar10Classifier", "ServerErrors"))
        assert signals == expected, group_id
        for alarm in watched:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if alarm.get("Namespace") == "AWS/Lambda":  # the new version alone, via the alias
                assert "Fn::GetAtt" in dimensions["ExecutedVersion"]
                assert dimensions["Resource"]["Fn::Join"][1][-1] == ":live"
            if alarm.get("MetricName") == "ServerErrors":  # the new function version alone
                assert "Fn::GetAtt" in dimensions["FunctionVersion"]
                continue
            if alarm.get("Namespace") == "Cifar10Classifier":  # the new model alone
                assert dimensions["ModelVersion"] == {"Ref": "ModelVersion"}
                assert alarm["ComparisonOperator"] == "LessThanThreshold"
            if "Metrics" in alarm:
                queried = json.dumps(alarm["Metrics"])
                assert "ImagesRejected" in queried and '{"Ref": "ModelVersion"}' in queried


@pytest.mark.parametrize(
    ("deployment", "config"),
    [
        ("linear", "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"),
        ("all-at-once", "CodeDeployDefault.LambdaAllAtOnce"),
    ],
)
def test_the_deployment_style_comes_from_context(
    deployment: str, config: str, tmp_path: Path
) -> None:
    _, raw = synth(tmp_path, deployment=deployment, **{"aws:cdk:bundling-stacks": []})
    for group in resources(raw, "AWS::CodeDeploy::DeploymentGroup").values():
        assert group["Properties"]["DeploymentConfigName"] == config


def test_each_rollout_checks_the_new_version_before_any_traffic(
    raw: dict[str, Any],
) -> None:
    functions = resources(raw, "AWS::Lambda::Function")
    versions = resources(raw, "AWS::Lambda::Version")
    for alias in resources(raw, "AWS::Lambda::Alias").values():
        hook_id = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"][
            "Ref"
        ]
        hook = functions[hook_id]["Properties"]
        variables = hook["Environment"]["Variables"]
        # The version the alias moves to is the one checked, against the pinned model.
        new_version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert variables["TARGET"] == {"Ref": new_version} and new_version in versions
        assert variables["EXPECTED_MODEL"] == {"Ref": "ModelVersion"}
        event = json.loads(variables["CHECK_EVENT"])
        assert event.get("rawPath") == "/predict" or "rollout_check" in event
        assert hook["Handler"] == "pre_traffic.handler" and hook["Runtime"] == "python3.13"
    hooks = [
        p
        for p in resources(raw, "AWS::IAM::Policy").values()
        if "PreTrafficCheck" in json.dumps(p["Properties"]["Roles"])
    ]
    granted = json.dumps([p["Properties"]["PolicyDocument"] for p in hooks])
    assert "lambda:InvokeFunction" in granted
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in granted
