"""The serving Lambda: one factory for both functions (the API and the drop folder), each
running a handler from the bundled serving code with its own log group."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from classifier import settings as env
from constructs import Construct

from infra.components.bundling import Target, lambda_code


def serving_function(
    scope: Construct,
    id_: str,
    *,
    target: Target,
    handler: str,
    description: str,
    service: str,
    memory_mb: int,
    timeout_s: int,
    environment: dict[str, str],
    log_retention: logs.RetentionDays,
    tracing: bool,
    reserved_concurrency: int | None = None,
    snap_start: bool = False,
    version_description: str | None = None,
) -> tuple[lambda_.Function, logs.LogGroup]:
    """A Lambda running ``handler`` from the bundled serving code, with its own log group."""
    log_group = logs.LogGroup(scope, f"{id_}Logs", retention=log_retention)
    function = lambda_.Function(
        scope,
        id_,
        description=description,
        runtime=target.runtime,
        architecture=target.architecture,
        handler=handler,
        code=lambda_code(target),
        memory_size=memory_mb,
        timeout=cdk.Duration.seconds(timeout_s),
        environment={
            **environment,
            env.SERVICE_NAME: service,
            env.METRICS_NAMESPACE: env.DEFAULT_NAMESPACE,
        },
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
        reserved_concurrent_executions=reserved_concurrency,
        snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
        # A changed description (a new model) replaces the published version; old versions stay
        # for CodeDeploy to roll back to.
        current_version_options=lambda_.VersionOptions(
            description=version_description, removal_policy=cdk.RemovalPolicy.RETAIN
        ),
    )
    return function, log_group
