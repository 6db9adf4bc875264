"""The serving Lambda: one factory for both functions (the API and the drop folder), each
running a handler from the bundled serving code with its own log group."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from classifier import contract
from classifier.contract import Env as env
from constructs import Construct

from infra.components.bundling import Target, lambda_code
from infra.components.rollout import RolloutSettings, version_description


@dataclass(frozen=True)
class FunctionSettings:
    """What the stack decides for a serving function, handed to its component as one group."""

    target: Target
    model_uri: str  # the manifest the function loads
    rollout: RolloutSettings
    memory_mb: int
    timeout_s: int
    snap_start: bool
    log_retention: logs.RetentionDays
    tracing: bool
    reserved_concurrency: int | None = None


def serving_function(
    scope: Construct,
    id_: str,
    *,
    settings: FunctionSettings,
    handler: str,
    description: str,
    service: str,
    environment: dict[str, str],
) -> tuple[lambda_.Function, logs.LogGroup]:
    """A Lambda running ``handler`` from the bundled serving code, with its own log group; its
    version's description names the model, so a new model publishes a new version."""
    target = settings.target
    log_group = logs.LogGroup(scope, f"{id_}Logs", retention=settings.log_retention)
    function = lambda_.Function(
        scope,
        id_,
        description=description,
        runtime=target.runtime,
        architecture=target.architecture,
        handler=handler,
        code=lambda_code(target),
        memory_size=settings.memory_mb,
        timeout=cdk.Duration.seconds(settings.timeout_s),
        environment={
            **environment,
            env.MODEL_URI: settings.model_uri,
            env.SERVICE_NAME: service,
            env.METRICS_NAMESPACE: contract.METRICS_NAMESPACE,
        },
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
        reserved_concurrent_executions=settings.reserved_concurrency,
        snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
        # A changed description (a new model) replaces the published version; old versions stay
        # for CodeDeploy to roll back to.
        current_version_options=lambda_.VersionOptions(
            description=version_description(settings.rollout),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        ),
    )
    return function, log_group
