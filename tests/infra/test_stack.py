"""The stack as a whole, synthesised for real (local bundling, no Docker): runtimes, settings from
context, buckets, permissions, logs, cfn-lint and cdk-nag."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.infra.conftest import as_list, our_functions, prefixes_of, resources, statements, synth

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def test_both_functions_run_python_313_on_x86_64_by_default(synthesised: dict[str, Any]) -> None:
    functions = our_functions(synthesised["raw"])
    assert set(functions) == {"classifier.api.handler", "classifier.upload_classifier.handler"}
    for props in functions.values():
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["x86_64"]
        assert props["MemorySize"] == 1024


def test_environment_pins_the_model_version_parameter(raw: dict[str, Any]) -> None:
    parameter = raw["Parameters"]["ModelVersion"]
    repository = json.loads((ROOT / "models" / "latest" / "manifest.json").read_text())
    assert parameter["Default"] == repository["model_version"]  # never "latest"
    assert re.fullmatch(parameter["AllowedPattern"], repository["model_version"])
    assert not re.fullmatch(parameter["AllowedPattern"], "../latest")
    for handler, props in our_functions(raw).items():
        variables = props["Environment"]["Variables"]
        uri = variables["MODEL_URI"]["Fn::Join"][1]
        assert uri[0] == "s3://" and {"Ref": "ModelVersion"} in uri, handler
        assert uri[uri.index({"Ref": "ModelVersion"}) + 1] == "/manifest.json"
        assert "latest" not in json.dumps(uri)
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Cifar10Classifier"
        if handler == "classifier.upload_classifier.handler":
            assert variables["UPLOADS_PREFIX"] == "uploads/"
            assert variables["RESULTS_PREFIX"] == "results/"


def test_context_switches_to_python_313_on_arm64_and_pins_a_model(arm: Any) -> None:

    for handler in ("classifier.api.handler", "classifier.upload_classifier.handler"):
        arm.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Handler": handler,
                "Runtime": "python3.13",
                "Architectures": ["arm64"],
                "TracingConfig": {"Mode": "Active"},
            },
        )
    assert arm.to_json()["Parameters"]["ModelVersion"]["Default"] == "20260101-000000-fast-abc"
    arm.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "DefaultRouteSettings": {"ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 10},
        },
    )


def test_a_fresh_account_can_deploy_nothing_is_reserved_by_default(
    synthesised: dict[str, Any],
) -> None:
    # Lambda refuses a reservation that leaves an account fewer than 10 unreserved executions,
    # and new accounts often have 10 in all: the first deploy must not reserve any.
    template = synthesised["template"]
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 5}}
    )
    for function in our_functions(synthesised["raw"]).values():
        assert "ReservedConcurrentExecutions" not in function


def test_concurrency_settings_come_from_context(tmp_path: Path) -> None:
    _, raw = synth(
        tmp_path,
        apiReservedConcurrency="10",
        uploadsMaxConcurrency="20",
        **{"aws:cdk:bundling-stacks": []},
    )
    assert our_functions(raw)["classifier.api.handler"]["ReservedConcurrentExecutions"] == 10
    (mapping,) = resources(raw, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 20}
    with pytest.raises(ValueError, match="uploadsMaxConcurrency=1; SQS event sources take 2"):
        synth(tmp_path / "bad", uploadsMaxConcurrency="1", **{"aws:cdk:bundling-stacks": []})


def test_every_bucket_is_encrypted_private_and_tls_only(raw: dict[str, Any]) -> None:
    buckets = resources(raw, "AWS::S3::Bucket")
    assert len(buckets) == 3  # models, uploads, access logs
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert (
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                "ServerSideEncryptionByDefault"
            ]["SSEAlgorithm"]
            == "AES256"
        ), name
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
    tls_only = set()
    for policy in resources(raw, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                tls_only.add(policy["Properties"]["Bucket"]["Ref"])
    assert tls_only == set(buckets)


def test_model_and_upload_buckets_are_versioned_and_results_expire(
    synthesised: dict[str, Any],
) -> None:
    from aws_cdk.assertions import Match

    synthesised["template"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {"Prefix": "results/", "ExpirationInDays": 90, "Status": "Enabled"}
                        ),
                        # Images sent through POST /uploads do not pile up.
                        Match.object_like(
                            {"Prefix": "uploads/async/", "ExpirationInDays": 3, "Status": "Enabled"}
                        ),
                    ]
                )
            },
        },
    )


def test_no_s3_wildcard_action_and_no_s3_resource_star(synthesised: dict[str, Any]) -> None:
    for name, statement in statements(synthesised["raw"]):
        actions = as_list(statement["Action"])
        assert "s3:*" not in actions and "*" not in actions, name
        if any(a.startswith("s3:") for a in actions):
            assert "*" not in as_list(statement["Resource"]), (name, statement)


def test_the_functions_read_and_write_only_their_prefixes(synthesised: dict[str, Any]) -> None:
    granted: dict[str, set[tuple[str, str]]] = {}
    for name, statement in statements(synthesised["raw"]):
        if not (
            name.startswith("InferenceApiFunction") or name.startswith("UploadClassifierFunction")
        ):
            continue
        for action in as_list(statement["Action"]):
            if action == "s3:ListBucket":  # listing is held to a prefix by its condition
                prefix = statement["Condition"]["StringLike"]["s3:prefix"]
                granted.setdefault(name.split("Function")[0], set()).add((action, str(prefix)))
                continue
            if action.startswith("s3:"):
                prefixes = prefixes_of(statement)
                assert prefixes, statement  # every S3 grant names a prefix
                for prefix in prefixes:
                    granted.setdefault(name.split("Function")[0], set()).add((action, prefix))
    assert granted["InferenceApi"] == {
        ("s3:GetObject", "/models/*"),
        ("s3:PutObject", "/uploads/async/*"),  # signs the presigned POSTs
        ("s3:GetObject", "/uploads/async/*"),
        ("s3:GetObject", "/results/async/*"),
        # the feedback loop: capture, review records and claims, labels (docs/feedback.md)
        ("s3:GetObject", "/review/*"),
        ("s3:PutObject", "/review/*"),
        ("s3:DeleteObject", "/review/*"),
        ("s3:GetObject", "/uploads/*"),  # a label copies its upload
        ("s3:GetObjectVersion", "/uploads/*"),
        ("s3:GetObjectVersion", "/review/*"),
        ("s3:PutObject", "/labels/*"),
        ("s3:ListBucket", "['review/items/*']"),
    }
    assert granted["UploadClassifier"] == {
        ("s3:GetObject", "/models/*"),
        ("s3:GetObject", "/uploads/*"),
        ("s3:GetObjectVersion", "/uploads/*"),
        ("s3:PutObject", "/results/*"),
        ("s3:GetObject", "/results/*"),  # HeadObject, to keep the newest result
        # capture: the seen mark, the hour's count, a private copy and a record per unsure answer
        ("s3:GetObject", "/review/*"),
        ("s3:PutObject", "/review/*"),
        ("s3:DeleteObject", "/review/*"),
    }


def test_every_function_in_the_stack_logs_to_a_group_that_expires(
    synthesised: dict[str, Any],
) -> None:
    groups = resources(synthesised["raw"], "AWS::Logs::LogGroup")
    assert all(g["Properties"].get("RetentionInDays") == 30 for g in groups.values())
    # A function without its own group gets one from Lambda, kept forever: every function of
    # the template, CDK's own bucket-notifications handler included, has a group here.
    named = json.dumps([g["Properties"].get("LogGroupName") for g in groups.values()])
    for logical_id, function in resources(synthesised["raw"], "AWS::Lambda::Function").items():
        logging = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert logging or logical_id in named, f"{logical_id} logs to a group that never expires"


def test_the_template_passes_cfn_lint_without_errors(synthesised: dict[str, Any]) -> None:
    (template,) = synthesised["outdir"].glob("*.template.json")
    done = subprocess.run(
        [sys.executable, "-m", "cfnlint", str(template), "--format", "parseable"],
        capture_output=True,
        text=True,
    )
    errors = [line for line in done.stdout.splitlines() if ":E" in line]
    assert errors == [] and done.returncode & 2 == 0, done.stdout


def test_cdk_nag_passes_for_a_concrete_account_and_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `cdk synth` / `cdk deploy` see with credentials: the account and region are known.
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    synth(tmp_path, **{"aws:cdk:bundling-stacks": []})  # raises if cdk-nag reports an error
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(synthesised: dict[str, Any]) -> None:
    report = json.loads((synthesised["outdir"] / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success" and plugin["violations"] == []
    suppressed = plugin["suppressedViolations"]
    assert suppressed, "the acknowledgements were seen by cdk-nag"
    for finding in suppressed:
        assert len(finding["reason"].split()) >= 5, finding["acknowledgedId"]  # a real reason
