"""Rollout: each function's ``live`` alias, its model pinned per version, moved by CodeDeploy.

A function version is its code *and* its model: the ``ModelVersion`` stack parameter is baked into
the function's ``MODEL_URI`` (an immutable ``models/<version>/manifest.json``) and into the
published version's description, so changing the parameter publishes a new version (a changed
description replaces the ``AWS::Lambda::Version``; old versions are retained for rollback). No
container ever serves a model other than its version's.

Traffic reaches the functions only through ``live`` (API Gateway, the SQS event source, the bulk
state machine). When ``live`` must move to a new version, CodeDeploy first runs a pre-traffic
check (``infra/hooks/pre_traffic.py``: the new version must classify an image with its pinned
model), then shifts traffic (by default 10% for 5 minutes, then all) and rolls back by itself if an
alarm on the *new* version fires: its errors, its p99 duration, its own 5xx answers (the API's
``ServerErrors`` by ``FunctionVersion``: a stranger's 5xx on the old version, or anywhere else in
the API, cannot roll a canary back; the API-wide 5xx alarm pages the owner instead), or the new
model's quality (mean confidence too low, too many images rejected).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from classifier import contract
from constructs import Construct

from infra import nag

HOOKS = Path(__file__).resolve().parents[1] / "hooks"
ALIAS = "live"
DEPLOYMENT_CONFIGS = {
    "canary": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "linear": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    "all-at-once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}
PERIOD = Duration.minutes(1)


# A rollout alarm fires when DATAPOINTS of the last MINUTES one-minute periods breach: one bad
# minute is noise, two in three during a five-minute canary is a pattern.
ALARM_DATAPOINTS, ALARM_MINUTES = 2, 3


def rollout_alarm(
    scope: Construct,
    id_: str,
    metric: cloudwatch.IMetric,
    threshold: float,
    *,
    above: bool,
    service: str,
    what: str,
) -> cloudwatch.Alarm:
    """An alarm CodeDeploy watches during a rollout (its description says which and why)."""
    return cloudwatch.Alarm(
        scope,
        id_,
        metric=metric,
        threshold=threshold,
        evaluation_periods=ALARM_MINUTES,
        datapoints_to_alarm=ALARM_DATAPOINTS,
        comparison_operator=(
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            if above
            else cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
        ),
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=(
            f"{service} rollout: {what} in {ALARM_DATAPOINTS} of {ALARM_MINUTES} minutes "
            "(CodeDeploy rolls back)"
        ),
    )


@dataclass(frozen=True)
class RolloutSettings:
    model_version: str  # the ModelVersion parameter (a token at synth time)
    deployment: str = "canary"  # a key of DEPLOYMENT_CONFIGS
    p99_ms: int = 2000  # the new version's p99 duration above this rolls back
    min_mean_confidence: float = 0.4  # the new model's mean top-class probability below this
    max_rejected_percent: float = 50.0  # more images than this refused as undecodable


def version_description(settings: RolloutSettings) -> str:
    """What each published version says it serves; a new model makes a new version."""
    return f"model {settings.model_version}"


def classification_metric(name: str, service: str, model_version: str, statistic: str) -> Any:
    """One of the functions' own metrics (``classifier.telemetry``) for one model version."""
    return cloudwatch.Metric(
        namespace=contract.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={
            contract.DIMENSION_SERVICE: service,
            contract.DIMENSION_MODEL_VERSION: model_version,
        },
        statistic=statistic,
        period=PERIOD,
    )


class Rollout(Construct):
    """Alias ``live`` on ``function``'s current version, moved by a CodeDeploy deployment group."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.Function,
        service: str,
        settings: RolloutSettings,
        check_event: dict[str, Any],
        log_retention: logs.RetentionDays,
        provisioned_concurrency: int = 0,
        counts_server_errors: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        model_version, p99_ms = settings.model_version, settings.p99_ms
        min_mean_confidence = settings.min_mean_confidence
        max_rejected_percent = settings.max_rejected_percent
        self.version = function.current_version
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS,
            version=self.version,
            provisioned_concurrent_executions=provisioned_concurrency or None,
        )
        name = function.function_name
        # Lambda reports invocations through an alias per executed version: the new one alone.
        new_version = {
            "FunctionName": name,
            "Resource": f"{name}:{ALIAS}",
            "ExecutedVersion": self.version.version,
        }

        def lambda_metric(metric_name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name=metric_name,
                dimensions_map=new_version,
                statistic=statistic,
                period=PERIOD,
            )

        def alarm(
            id_: str, metric: cloudwatch.IMetric, threshold: float, above: bool, what: str
        ) -> cloudwatch.Alarm:
            return rollout_alarm(
                self, id_, metric, threshold, above=above, service=service, what=what
            )

        classified = classification_metric(
            contract.METRIC_CLASSIFIED, service, model_version, "Sum"
        )
        rejected = classification_metric(contract.METRIC_REJECTED, service, model_version, "Sum")
        self.alarms: list[cloudwatch.IAlarm] = [
            alarm(
                "NewVersionErrors",
                lambda_metric("Errors", "Sum"),
                1,
                True,
                "the new version raised errors",
            ),
            alarm(
                "NewVersionP99",
                lambda_metric("Duration", "p99"),
                p99_ms,
                True,
                f"the new version's p99 duration over {p99_ms} ms",
            ),
            alarm(
                "NewModelConfidence",
                classification_metric(
                    contract.METRIC_CONFIDENCE, service, model_version, "Average"
                ),
                min_mean_confidence,
                False,
                f"the new model's mean confidence under {min_mean_confidence:g}",
            ),
            alarm(
                "NewModelRejections",
                cloudwatch.MathExpression(
                    # A minute with nothing classified has no "classified" data point: without
                    # FILL the expression has none either, and an all-rejected minute never alarms.
                    expression=(
                        "100 * FILL(rejected, 0) / (FILL(rejected, 0) + FILL(classified, 0))"
                    ),
                    using_metrics={"rejected": rejected, "classified": classified},
                    period=PERIOD,
                    label="rejected %",
                ),
                max_rejected_percent,
                True,
                f"over {max_rejected_percent:g}% of images rejected",
            ),
        ]
        if counts_server_errors:  # the API's own 5xx answers, by the version that gave them
            own_errors = cloudwatch.Metric(
                namespace=contract.METRICS_NAMESPACE,
                metric_name=contract.METRIC_SERVER_ERRORS,
                dimensions_map={
                    contract.DIMENSION_SERVICE: service,
                    contract.DIMENSION_FUNCTION_VERSION: self.version.version,
                },
                statistic="Sum",
                period=PERIOD,
            )
            self.alarms.append(
                alarm("NewVersion5xx", own_errors, 1, True, "the new version answered 5xx")
            )
        # Before any traffic moves, the new version must classify an image with its own model.
        self.pre_traffic = lambda_.Function(
            self,
            "PreTrafficCheck",
            description=f"{service}: the new version classifies an image with its pinned model",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="pre_traffic.handler",
            code=lambda_.Code.from_asset(
                str(HOOKS), exclude=["__pycache__", "*.pyc", "__init__.py"]
            ),
            timeout=Duration.seconds(60),
            environment={
                "TARGET": self.version.function_arn,
                "EXPECTED_MODEL": model_version,
                "CHECK_EVENT": json.dumps(check_event, separators=(",", ":")),
            },
            log_group=logs.LogGroup(self, "PreTrafficCheckLogs", retention=log_retention),
        )
        self.version.grant_invoke(self.pre_traffic)
        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Deployment",
            alias=self.alias,
            pre_hook=self.pre_traffic,
            deployment_config=DEPLOYMENT_CONFIGS[settings.deployment],
            alarms=self.alarms,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        nag.acknowledge(
            self.group,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "service-role/AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's role for Lambda rollouts (CDK's LambdaDeploymentGroup): the limited "
            "policy lets it read the alarms, update the live aliases and invoke hooks, nothing "
            "else.",
        )
        nag.accept_iam5(
            self.group,
            f"Resource::<{nag.logical_id(self.pre_traffic)}.Arn>:*",
            "CodeDeploy may invoke its own pre-traffic check function (any version of that one "
            "function): CDK's grant for a deployment group's hook.",
        )
