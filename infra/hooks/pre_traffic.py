"""CodeDeploy's pre-traffic hook: the new version must classify an image with its pinned model.

CodeDeploy calls this before it shifts any traffic to a new version of a function. It invokes that
version (TARGET, a version ARN) with CHECK_EVENT (a JSON event the function answers with a
prediction: an API Gateway request to POST /predict, or the drop folder's check event), and
reports Succeeded only if the answer is a prediction by EXPECTED_MODEL. Otherwise the deployment
stops before a single user request reaches the new version, and CodeDeploy rolls back.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import boto3


def answered_version(response: dict[str, Any]) -> str:
    """The model version in a function's answer to the check event; ValueError if none."""
    if "statusCode" in response:  # the API, through Mangum
        if response["statusCode"] != 200:
            raise ValueError(f"POST /predict answered {response['statusCode']}: {response}")
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        answer = json.loads(body)
    else:  # the drop folder's check event
        answer = response.get("check") or {}
    if "category" not in answer or "model_version" not in answer:
        raise ValueError(f"not a prediction: {str(answer)[:300]}")
    return str(answer["model_version"])


def check(lambda_client: Any, target: str, event: dict[str, Any], expected: str) -> str:
    """Invoke ``target`` with ``event``; the reason it failed, or "" when it passed."""
    response = lambda_client.invoke(FunctionName=target, Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        return f"{target} raised: {str(payload)[:500]}"
    try:
        version = answered_version(payload)
    except ValueError as exc:
        return f"{target}: {exc}"
    if version != expected:
        return f"{target} serves model {version}, not {expected}"
    return ""


def handler(event: dict[str, Any], context: Any, clients: dict[str, Any] | None = None) -> str:
    clients = clients or {
        "lambda": boto3.client("lambda"),
        "codedeploy": boto3.client("codedeploy"),
    }
    try:
        reason = check(
            clients["lambda"],
            os.environ["TARGET"],
            json.loads(os.environ["CHECK_EVENT"]),
            os.environ["EXPECTED_MODEL"],
        )
    except Exception as exc:  # noqa: BLE001 - any failure must fail the deployment, not hang it
        reason = f"the check could not run: {exc!r}"
    status = "Failed" if reason else "Succeeded"
    print(json.dumps({"status": status, "reason": reason, "target": os.environ.get("TARGET")}))
    clients["codedeploy"].put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return status
