"""The feedback component: capture settings, the review store's expiry and grants, and the
reviewer's credential in each auth mode; clean under cfn-lint and cdk-nag, capture on and off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import our_functions, resources, synth

pytest.importorskip("aws_cdk", reason="the CDK is the infra audience's (make test installs it)")
pytestmark = [pytest.mark.infra, pytest.mark.slow]
JWT = {"jwtIssuer": "https://issuer.example.com", "jwtAudience": '["client"]'}


def synthesised(tmp_path: Path, auth: str, **context: Any) -> dict[str, Any]:
    extra = JWT if auth == "jwt" else {}
    _, raw = synth(tmp_path, auth=auth, **extra, **context, **{"aws:cdk:bundling-stacks": []})
    return raw


def cfn_lint_errors(outdir: Path) -> list[str]:
    (template,) = outdir.glob("*.template.json")
    done = subprocess.run(
        [sys.executable, "-m", "cfnlint", str(template), "--format", "parseable"],
        capture_output=True,
        text=True,
    )
    return [line for line in done.stdout.splitlines() if ":E" in line]


@pytest.mark.parametrize("capture", ["none", "unsure", "all"])
@pytest.mark.parametrize("auth", ["none", "iam", "jwt"])
def test_every_auth_mode_and_capture_setting_synthesises_clean(
    auth: str, capture: str, tmp_path: Path
) -> None:
    raw = synthesised(tmp_path, auth, capture=capture)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []
    assert cfn_lint_errors(tmp_path) == []
    functions = our_functions(raw)
    api = functions["classifier.api.handler"]["Environment"]["Variables"]
    uploads = functions["classifier.upload_classifier.handler"]["Environment"]["Variables"]
    assert (api["CAPTURE"], uploads["CAPTURE"]) == (capture, "unsure")
    assert "REVIEW_BUCKET" in api and "REVIEW_BUCKET" in uploads


def test_captured_answers_expire_after_capture_days_and_labels_after_label_days(
    tmp_path: Path,
) -> None:
    raw = synthesised(tmp_path, "none", captureDays="12", labelDays="400", capturePerHour="7")
    rules = [
        rule
        for bucket in resources(raw, "AWS::S3::Bucket").values()
        for rule in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    ]
    (review,) = [r for r in rules if r.get("Prefix") == "review/"]
    assert review["ExpirationInDays"] == 12 and review["Status"] == "Enabled"
    (labels,) = [r for r in rules if r.get("Prefix") == "labels/"]
    assert labels["ExpirationInDays"] == 400 and labels["Status"] == "Enabled"
    for function in our_functions(raw).values():
        if "CAPTURE" in function["Environment"]["Variables"]:
            assert function["Environment"]["Variables"]["CAPTURE_PER_HOUR"] == "7"


def test_auth_none_generates_a_reviewer_token_the_api_alone_may_read(tmp_path: Path) -> None:
    raw = synthesised(tmp_path, "none")
    (secret_id,) = resources(raw, "AWS::SecretsManager::Secret")
    api = our_functions(raw)["classifier.api.handler"]["Environment"]["Variables"]
    assert api["REVIEWER_TOKEN_SECRET"] == {"Ref": secret_id}
    assert "ReviewerTokenSecret" in raw["Outputs"]
    readers = [
        policy
        for policy in resources(raw, "AWS::IAM::Policy").values()
        if secret_id in json.dumps(policy["Properties"]["PolicyDocument"])
    ]
    assert len(readers) == 1  # the API's role


def test_auth_iam_outputs_a_reviewer_policy_for_the_review_routes_only(tmp_path: Path) -> None:
    raw = synthesised(tmp_path, "iam")
    assert not resources(raw, "AWS::SecretsManager::Secret")
    (policy,) = resources(raw, "AWS::IAM::ManagedPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    paths = json.dumps(statement["Resource"])
    assert "/GET/review/items" in paths and "/POST/review/items/*" in paths
    assert "/predict" not in paths
    assert "ReviewerPolicyArn" in raw["Outputs"]
    routes = resources(raw, "AWS::ApiGatewayV2::Route").values()
    review = [r for r in routes if "/review/items" in r["Properties"]["RouteKey"]]
    assert review and all(r["Properties"]["AuthorizationType"] == "AWS_IAM" for r in review)


def test_auth_jwt_has_api_gateway_check_the_reviewer_scope(tmp_path: Path) -> None:
    raw = synthesised(tmp_path, "jwt", reviewerClaim="scope=labeller")
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources(raw, "AWS::ApiGatewayV2::Route").values()
    }
    assert routes["POST /review/items/{item_id}"]["AuthorizationScopes"] == ["labeller"]
    assert routes["GET /review/items"]["AuthorizationScopes"] == ["labeller"]
    assert "AuthorizationScopes" not in routes["POST /predict"]
    api = our_functions(raw)["classifier.api.handler"]["Environment"]["Variables"]
    assert api["REVIEWER_CLAIM"] == "scope=labeller"
