"""Check an AWS account before the first deploy or cloud training run: ``make preflight``.

    python -m infra.preflight [--training] [--instance-type ml.g4dn.xlarge] [--no-spot]
                              [-c key=value ...]   (the same context as cdk deploy)

Each check prints ok or the problem with what to do about it (the quota to request, the command
to run); the exit status is 1 if any would make the deploy or the job fail. It only reads:
credentials and region (STS), the CDK bootstrap stack's version (SSM), the account's Lambda
concurrency (Lambda), and for cloud training the SageMaker quota for the instance type
(Service Quotas).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

# Lambda refuses a reservation that leaves fewer than this many unreserved executions.
MIN_UNRESERVED = 10
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/{qualifier}/version"
DEFAULT_QUALIFIER = "hnb659fds"
MIN_BOOTSTRAP_VERSION = 6  # what CDK v2 asset publishing needs


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str
    blocking: bool = True  # False: a warning (works, but may throttle)

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.blocking else "warn")
        return f"[{mark}] {self.check}: {self.message}"


def check_identity(clients: dict[str, Any], region: str | None) -> Finding:
    from botocore.exceptions import BotoCoreError, ClientError

    if not region:
        return Finding(
            "region", False, "no region set: export AWS_REGION=<region> (or aws configure)"
        )
    try:
        who = clients["sts"].get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        return Finding(
            "credentials",
            False,
            f"no usable AWS credentials ({exc}): run `aws configure` or `aws sso login`, or set "
            "AWS_PROFILE",
        )
    return Finding("credentials", True, f"account {who['Account']} as {who['Arn']} in {region}")


def check_bootstrap(clients: dict[str, Any], region: str, qualifier: str) -> Finding:
    from botocore.exceptions import ClientError

    name = BOOTSTRAP_PARAMETER.format(qualifier=qualifier)
    try:
        value = clients["ssm"].get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        return Finding(
            "cdk bootstrap",
            False,
            f"{region} is not bootstrapped for the CDK ({name} is missing): run `make bootstrap` "
            "once per account and region",
        )
    if int(value) < MIN_BOOTSTRAP_VERSION:
        return Finding(
            "cdk bootstrap",
            False,
            f"bootstrap version {value} is older than {MIN_BOOTSTRAP_VERSION}: run `make bootstrap`"
            " again to upgrade it",
        )
    return Finding("cdk bootstrap", True, f"version {value}")


def check_lambda_concurrency(clients: dict[str, Any], config: Any) -> list[Finding]:
    """The reservation the settings ask for against the account's limit, and whether the
    drop folder and bulk runs fit beside the API without throttling."""
    settings = clients["lambda"].get_account_settings()
    limit = int(settings["AccountLimit"]["ConcurrentExecutions"])
    unreserved = int(settings["AccountLimit"]["UnreservedConcurrentExecutions"])
    reserved = config.api_reserved_concurrency or 0
    # Provisioned concurrency outside a reservation comes from the unreserved pool too.
    asked = reserved or config.provisioned_concurrency
    request = (
        "request more in Service Quotas (Lambda, 'Concurrent executions', "
        f"{LAMBDA_CONCURRENCY_QUOTA}): "
        f"aws service-quotas request-service-quota-increase --service-code lambda --quota-code "
        f"{LAMBDA_CONCURRENCY_QUOTA} --desired-value 1000"
    )
    findings = []
    if asked and unreserved - asked < MIN_UNRESERVED:
        findings.append(
            Finding(
                "lambda concurrency",
                False,
                f"the settings reserve {asked} of the account's {unreserved} unreserved executions "
                f"(limit {limit}); Lambda keeps at least {MIN_UNRESERVED} unreserved and would "
                "refuse the deploy. Deploy without -c apiReservedConcurrency / "
                f"provisionedConcurrency, or {request}",
            )
        )
    else:
        findings.append(
            Finding(
                "lambda concurrency",
                True,
                f"limit {limit}, {unreserved} unreserved; the settings reserve {asked}",
            )
        )
    peak = config.uploads_max_concurrency + config.bulk_max_concurrency + 1
    if limit < peak:
        findings.append(
            Finding(
                "lambda throughput",
                False,
                f"the account runs at most {limit} functions at once; the drop folder "
                f"({config.uploads_max_concurrency}), a bulk run ({config.bulk_max_concurrency}) "
                f"and the API need {peak}: they will be throttled (and retried) under load; "
                f"{request}",
                blocking=False,
            )
        )
    return findings


def sagemaker_quota_name(instance_type: str, spot: bool) -> str:
    return f"{instance_type} for {'spot ' if spot else ''}training job usage"


def check_sagemaker_quota(clients: dict[str, Any], instance_type: str, spot: bool) -> Finding:
    name = sagemaker_quota_name(instance_type, spot)
    pages = clients["service-quotas"].get_paginator("list_service_quotas")
    for page in pages.paginate(ServiceCode="sagemaker"):
        for quota in page["Quotas"]:
            if quota["QuotaName"] != name:
                continue
            if quota["Value"] >= 1:
                return Finding("sagemaker quota", True, f"{name}: {quota['Value']:g}")
            return Finding(
                "sagemaker quota",
                False,
                f"{name} is {quota['Value']:g}: the job would fail with ResourceLimitExceeded. "
                "Request 1 in Service Quotas (Amazon SageMaker): aws service-quotas "
                f"request-service-quota-increase --service-code sagemaker --quota-code "
                f"{quota['QuotaCode']} --desired-value 1 (or train another instance type: "
                "ARGS='--instance-type ...', or on-demand: ARGS='--no-spot')",
            )
    return Finding(
        "sagemaker quota",
        False,
        f"no SageMaker quota named {name!r} in this region: choose another instance type",
    )


def run_checks(
    clients: dict[str, Any],
    *,
    region: str | None,
    config: Any,
    training: bool = False,
    instance_type: str = "ml.g4dn.xlarge",
    spot: bool = True,
    qualifier: str = DEFAULT_QUALIFIER,
) -> list[Finding]:
    identity = check_identity(clients, region)
    if not identity.ok:
        return [identity]
    assert region is not None
    findings = [identity, check_bootstrap(clients, region, qualifier)]
    findings += check_lambda_concurrency(clients, config)
    if training:
        findings.append(check_sagemaker_quota(clients, instance_type, spot))
    return findings


def stack_config(context: dict[str, str]) -> Any:
    """The stack's settings as `cdk deploy -c ...` with cdk.json would make them."""
    import aws_cdk as cdk

    from infra.app import cdk_json_context
    from infra.config import Config

    app = cdk.App(context={**cdk_json_context(), **context})
    return Config.from_context(app)


def parse_context(items: list[str]) -> dict[str, str]:
    context = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: -c {item}: expected key=value")
        context[key] = value
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.preflight", description=__doc__)
    parser.add_argument("-c", "--context", action="append", default=[], help="key=value")
    parser.add_argument("--training", action="store_true", help="also check cloud training")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge")
    parser.add_argument("--no-spot", action="store_true")
    args, _ = parser.parse_known_args(argv)
    import boto3

    session = boto3.session.Session()
    clients = {
        name: session.client(name)
        for name in ("sts", "ssm", "lambda", "service-quotas")
        if session.region_name or name == "sts"
    }
    context = parse_context(args.context)
    findings = run_checks(
        clients,
        region=session.region_name,
        config=stack_config(context),
        training=args.training,
        instance_type=args.instance_type,
        spot=not args.no_spot,
        qualifier=context.get("@aws-cdk/core:bootstrapQualifier", DEFAULT_QUALIFIER),
    )
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if not f.ok and f.blocking]
    print("preflight: " + (f"{len(failed)} problem(s) to fix first" if failed else "ready"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
