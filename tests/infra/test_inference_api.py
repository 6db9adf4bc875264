"""infra/components/inference_api.py: the HTTP API's routes, stage, CORS and auth modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import our_functions, resources, synth

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def openapi_paths(app: Any) -> list[tuple[str, str]]:
    return [
        (path, method.upper()) for path, ops in app.openapi()["paths"].items() for method in ops
    ]


def test_http_api_routes_reach_the_api_function(synthesised: dict[str, Any]) -> None:
    routes = {
        r["Properties"]["RouteKey"]
        for r in resources(synthesised["raw"], "AWS::ApiGatewayV2::Route").values()
    }
    from classifier.api import app

    # Exactly the app's routes (walked here independently of the helper infra uses).
    served = {f"{m} {p}" for p, m in openapi_paths(app)} | {"GET /docs", "GET /openapi.json"}
    assert routes == served
    synthesised["template"].has_resource_properties(
        "AWS::ApiGatewayV2::Integration",
        {
            "IntegrationType": "AWS_PROXY",
            "PayloadFormatVersion": "2.0",
        },
    )


def test_stage_is_throttled_logged_and_the_api_has_cors(synthesised: dict[str, Any]) -> None:
    from aws_cdk.assertions import Match

    template = synthesised["template"]
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {"ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40},
            "AccessLogSettings": Match.object_like({"DestinationArn": Match.any_value()}),
        },
    )
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "HTTP",
            "CorsConfiguration": Match.object_like(
                {"AllowOrigins": ["*"], "AllowMethods": ["GET", "POST"]}
            ),
        },
    )
    template.has_output(
        "*", {"Value": Match.any_value(), "Description": Match.string_like_regexp("predict")}
    )


# --- auth options ----------------------------------------------------------------------------
PROTECTED = {
    "POST /predict",
    "POST /predict/batch",
    "POST /uploads",
    "GET /results/{upload_id}",
    "GET /model",
    "GET /review/items",  # a reviewer's credential in every mode (tests/infra/test_feedback.py)
    "POST /review/items/{item_id}",
}


def route_auth(raw: dict[str, Any]) -> dict[str, str]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"].get("AuthorizationType", "NONE")
        for r in resources(raw, "AWS::ApiGatewayV2::Route").values()
    }


def test_by_default_the_api_is_public_and_says_so(synthesised: dict[str, Any]) -> None:
    assert set(route_auth(synthesised["raw"]).values()) == {"NONE"}
    api = our_functions(synthesised["raw"])["classifier.api.handler"]
    assert api["Environment"]["Variables"]["API_AUTH"] == "none"


def test_auth_iam_signs_every_data_route_and_leaves_page_health_docs_public(
    tmp_path: Path,
) -> None:
    _, raw = synth(tmp_path, auth="iam", **{"aws:cdk:bundling-stacks": []})
    modes = route_auth(raw)
    assert {k for k, v in modes.items() if v == "AWS_IAM"} == PROTECTED
    assert {k for k, v in modes.items() if v == "NONE"} == set(modes) - PROTECTED
    api = our_functions(raw)["classifier.api.handler"]
    assert api["Environment"]["Variables"]["API_AUTH"] == "iam"


def test_auth_jwt_checks_issuer_and_audience(tmp_path: Path) -> None:
    issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
    _, raw = synth(
        tmp_path,
        auth="jwt",
        jwtIssuer=issuer,
        jwtAudience='["app-client-id"]',
        **{"aws:cdk:bundling-stacks": []},
    )
    modes = route_auth(raw)
    assert {k for k, v in modes.items() if v == "JWT"} == PROTECTED
    (authorizer,) = resources(raw, "AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {"Issuer": issuer, "Audience": ["app-client-id"]}
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    (preflight,) = [a for a in resources(raw, "AWS::ApiGatewayV2::Api").values()]
    assert "authorization" in preflight["Properties"]["CorsConfiguration"]["AllowHeaders"]


@pytest.mark.parametrize("auth", ["iam", "jwt"])
def test_cdk_nag_passes_under_each_auth_mode(auth: str, tmp_path: Path) -> None:
    context = {"auth": auth, "aws:cdk:bundling-stacks": []}
    if auth == "jwt":
        context |= {"jwtIssuer": "https://issuer.example.com", "jwtAudience": '["client"]'}
    synth(tmp_path, **context)  # raises if cdk-nag reports an unacknowledged finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []
