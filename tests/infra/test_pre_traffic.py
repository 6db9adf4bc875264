"""The rollout's pre-traffic check: its events against the real handlers, and its verdicts.

The hook's AWS calls go through botocore's Stubber (moto cannot run a Lambda function without
Docker): each expected request is checked against the real API model, parameters included.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from classifier import api, upload_classifier

from infra.hooks import pre_traffic
from infra.hooks.check_events import api_check_event, uploads_check_event
from scripts.invoke import LocalContext

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:cifar10-api:7"
HOOK_EVENT = {"DeploymentId": "d-EXAMPLE", "LifecycleEventHookExecutionId": "exec-EXAMPLE"}


def test_the_check_events_get_predictions_from_the_real_handlers(use_model: Path) -> None:
    expected = json.loads(use_model.read_text())["model_version"]
    from_api = api.handler(api_check_event(), LocalContext())
    from_uploads = upload_classifier.handler(
        uploads_check_event(), LocalContext(function_name="uploads")
    )
    assert pre_traffic.answered_version(from_api) == expected
    assert pre_traffic.answered_version(from_uploads) == expected


def test_a_broken_model_fails_the_check_event(
    use_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifier import service

    monkeypatch.setenv("MODEL_URI", str(tmp_path / "missing" / "manifest.json"))
    service.reset()
    response = api.handler(api_check_event(), LocalContext())
    with pytest.raises(ValueError, match="answered 503"):
        pre_traffic.answered_version(response)


def run_hook(
    monkeypatch: pytest.MonkeyPatch, invoke_response: dict[str, Any], expected_status: str
) -> str:
    monkeypatch.setenv("TARGET", TARGET)
    monkeypatch.setenv("EXPECTED_MODEL", "20261125-232704-fast-e3e66ffb")
    monkeypatch.setenv("CHECK_EVENT", json.dumps(uploads_check_event()))
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(lambda_client) as lambdas, Stubber(codedeploy) as deployments:
        lambdas.add_response(
            "invoke",
            invoke_response,
            {"FunctionName": TARGET, "Payload": json.dumps(uploads_check_event()).encode()},
        )
        deployments.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": "exec-EXAMPLE"},
            {
                "deploymentId": "d-EXAMPLE",
                "lifecycleEventHookExecutionId": "exec-EXAMPLE",
                "status": expected_status,
            },
        )
        status = pre_traffic.handler(
            HOOK_EVENT, None, clients={"lambda": lambda_client, "codedeploy": codedeploy}
        )
        lambdas.assert_no_pending_responses()
        deployments.assert_no_pending_responses()
    return status


def payload(document: Any) -> dict[str, Any]:
    body = json.dumps(document).encode()
    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}


def test_the_hook_passes_a_version_that_answers_with_its_pinned_model(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = {"check": {"category": "cat", "model_version": "20261125-232704-fast-e3e66ffb"}}
    assert run_hook(monkeypatch, payload(answer), "Succeeded") == "Succeeded"


@pytest.mark.parametrize(
    "response",
    [
        payload({"check": {"category": "cat", "model_version": "an-older-model"}}),
        {**payload({"errorMessage": "ModelError: cannot read"}), "FunctionError": "Unhandled"},
        payload({"statusCode": 503, "body": '{"detail": "the model is unavailable"}'}),
        payload({"results": []}),
    ],
    ids=["another model", "function error", "503", "not a prediction"],
)
def test_the_hook_fails_the_deployment_otherwise(
    response: dict[str, Any], aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert run_hook(monkeypatch, response, "Failed") == "Failed"
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["reason"]
