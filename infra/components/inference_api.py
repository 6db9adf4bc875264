"""Inference API: the FastAPI Lambda (through Mangum) behind an API Gateway HTTP API."""

from __future__ import annotations

import jsii
from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra import nag
from infra.components.rollout import Rollout
from infra.components.serving_function import FunctionSettings, serving_function
from infra.config import Config
from infra.hooks.check_events import api_check_event

AUTH_MODES = contract.AUTH_MODES


@jsii.implements(apigw.IAccessLogSettings)
class AccessLogs:
    """Stage access logs to a log group, in API Gateway's default (CLF-like JSON) format."""

    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> None:
        return None


class InferenceApi(Construct):
    """``POST /predict`` and friends; the function reads the model at ``model_uri``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: FunctionSettings,
        config: Config,
    ) -> None:
        super().__init__(scope, id_)
        auth, log_retention = config.auth, function.log_retention
        self.function, self.log_group = serving_function(
            self,
            "Function",
            settings=function,
            handler="classifier.api.handler",
            description="CIFAR-10 classifier API (FastAPI through Mangum, int8 TFLite)",
            service=contract.API_SERVICE,
            environment={env.API_AUTH: auth},
        )
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention)
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="CIFAR-10 image classifier",
            create_default_stage=False,
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=config.cors_origins,
                allow_methods=[apigw.CorsHttpMethod.GET, apigw.CorsHttpMethod.POST],
                allow_headers=["content-type", "authorization"],
                max_age=Duration.hours(1),
            ),
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_rate_limit, burst_limit=config.api_burst_limit
            ),
            access_log_settings=AccessLogs(apigw.LogGroupLogDestination(self.access_logs)),
        )
        # API Gateway calls the alias: its version pins the model, SnapStart restores it,
        # provisioned concurrency keeps it warm, and CodeDeploy moves it (canary, rollback).
        self.rollout = Rollout(
            self,
            "Rollout",
            function=self.function,
            service=contract.API_SERVICE,
            settings=function.rollout,
            check_event=api_check_event(),
            log_retention=log_retention,
            provisioned_concurrency=config.provisioned_concurrency,
            counts_server_errors=True,
        )
        self.alias = self.rollout.alias
        integration = integrations.HttpLambdaIntegration("Lambda", self.alias)
        authorizer = self._authorizer(auth, config.jwt_issuer, config.jwt_audience)
        nag.acknowledge(
            self,
            "AwsSolutions-APIG4",
            "A public classifier API, throttled at the stage (context auth=iam or auth=jwt "
            "closes it)."
            if auth == "none"
            else f"auth={auth} protects every route that classifies or returns data; the page, "
            "/health and the OpenAPI docs stay public by design (they hold no data).",
        )
        claim, _, wanted = config.reviewer_claim.partition("=")
        for method, path in contract.ROUTES:
            protected = path not in contract.PUBLIC_PATHS
            # A JWT's scope is checked by API Gateway too on the routes that write labels.
            review = path.startswith(contract.REVIEW_PATH_PREFIX)
            scopes = [wanted] if review and auth == "jwt" and claim == "scope" else None
            self.http_api.add_routes(
                path=path,
                methods=[apigw.HttpMethod(method)],
                integration=integration,
                authorizer=authorizer if protected else apigw.HttpNoneAuthorizer(),
                authorization_scopes=scopes,
            )
        self.url = self.stage.url

    def _authorizer(
        self, auth: str, issuer: str | None, audience: list[str] | None
    ) -> apigw.IHttpRouteAuthorizer:
        if auth == "iam":
            return authorizers.HttpIamAuthorizer()
        if auth == "jwt":
            assert issuer and audience  # Config checks it with a clear message
            return authorizers.HttpJwtAuthorizer("Jwt", issuer, jwt_audience=audience)
        return apigw.HttpNoneAuthorizer()
