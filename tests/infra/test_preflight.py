"""make preflight against stubbed accounts (botocore's Stubber): what a new account must ask for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra import preflight

IDENTITY = {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me", "UserId": "x"}

CDK = "the CDK is the infra audience's (make synth or make test installs it)"
pytest.importorskip("aws_cdk", reason=CDK)


def stubbed_clients(
    *,
    limit: int,
    unreserved: int,
    bootstrap: str | None = "21",
    spot_quota: float | None = None,
) -> tuple[dict[str, Any], list[Stubber]]:
    clients = {
        name: boto3.client(
            name, region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        for name in ("sts", "ssm", "lambda", "service-quotas")
    }
    stubs = {name: Stubber(client) for name, client in clients.items()}
    stubs["sts"].add_response("get_caller_identity", IDENTITY)
    if bootstrap is None:
        stubs["ssm"].add_client_error("get_parameter", "ParameterNotFound", http_status_code=400)
    else:
        stubs["ssm"].add_response(
            "get_parameter",
            {"Parameter": {"Name": "/cdk-bootstrap/hnb659fds/version", "Value": bootstrap}},
            {"Name": "/cdk-bootstrap/hnb659fds/version"},
        )
    stubs["lambda"].add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
    )
    if spot_quota is not None:
        stubs["service-quotas"].add_response(
            "list_service_quotas",
            {
                "Quotas": [
                    {
                        "QuotaName": "ml.g4dn.xlarge for training job usage",
                        "Value": 0.0,
                        "QuotaCode": "L-ONDEMAND",
                    },
                    {
                        "QuotaName": "ml.g4dn.xlarge for spot training job usage",
                        "Value": spot_quota,
                        "QuotaCode": "L-SPOT1234",
                    },
                ]
            },
            {"ServiceCode": "sagemaker"},
        )
    for stub in stubs.values():
        stub.activate()
    return clients, list(stubs.values())


@pytest.fixture(scope="module")
def default_config() -> Any:
    from infra.config import Config

    return Config()


def by_check(findings: list[preflight.Finding]) -> dict[str, preflight.Finding]:
    return {f.check: f for f in findings}


def test_a_fresh_account_can_deploy_the_defaults_but_must_request_sagemaker_quota(
    default_config: Any,
) -> None:
    clients, stubs = stubbed_clients(limit=10, unreserved=10, spot_quota=0.0)
    found = by_check(
        preflight.run_checks(clients, region="eu-west-1", config=default_config, training=True)
    )
    assert found["credentials"].ok and found["cdk bootstrap"].ok
    assert found["lambda concurrency"].ok  # nothing reserved by default
    # It works, but the drop folder and a bulk run will be throttled on a limit of 10.
    assert not found["lambda throughput"].ok and not found["lambda throughput"].blocking
    assert "L-B99A9384" in found["lambda throughput"].message
    quota = found["sagemaker quota"]
    assert not quota.ok and quota.blocking
    assert "ml.g4dn.xlarge for spot training job usage is 0" in quota.message
    assert "--quota-code L-SPOT1234 --desired-value 1" in quota.message
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_a_reservation_a_fresh_account_cannot_give_fails_with_the_quota_to_request(
    default_config: Any,
) -> None:
    clients, _ = stubbed_clients(limit=10, unreserved=10)
    config = replace(default_config, api_reserved_concurrency=10)
    found = by_check(preflight.run_checks(clients, region="eu-west-1", config=config))
    problem = found["lambda concurrency"]
    assert not problem.ok and problem.blocking
    assert "reserve 10 of the account's 10 unreserved" in problem.message
    assert "request-service-quota-increase --service-code lambda --quota-code L-B99A9384" in (
        problem.message
    )


def test_a_grown_account_passes_every_check(default_config: Any) -> None:
    clients, _ = stubbed_clients(limit=1000, unreserved=1000, spot_quota=1.0)
    config = replace(default_config, api_reserved_concurrency=10)
    findings = preflight.run_checks(clients, region="eu-west-1", config=config, training=True)
    assert all(f.ok for f in findings), [f.line() for f in findings if not f.ok]


def test_a_missing_bootstrap_says_to_run_make_bootstrap(default_config: Any) -> None:
    clients, _ = stubbed_clients(limit=1000, unreserved=1000, bootstrap=None)
    found = by_check(preflight.run_checks(clients, region="eu-west-1", config=default_config))
    assert not found["cdk bootstrap"].ok and "make bootstrap" in found["cdk bootstrap"].message


def test_no_credentials_or_region_stop_at_the_first_check(default_config: Any) -> None:
    assert preflight.run_checks({}, region=None, config=default_config)[0].check == "region"
    sts = boto3.client(
        "sts", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", "InvalidClientTokenId", http_status_code=403)
    stub.activate()
    (finding,) = preflight.run_checks({"sts": sts}, region="eu-west-1", config=default_config)
    assert finding.check == "credentials" and "aws configure" in finding.message
