"""The CDK app, synthesised for real (local bundling, no Docker), checked by its properties."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, load_event
from training.data import CIFAR10_CLASSES

pytestmark = [pytest.mark.slow, pytest.mark.infra]

S3_ACTIONS = ("s3:", "*")


def synth(outdir: Path, **context: Any) -> tuple[Any, dict[str, Any]]:
    from aws_cdk.assertions import Template

    from infra.app import build_app

    app = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    (stack,) = [s for s in assembly.stacks]
    template = json.loads(Path(stack.template_full_path).read_text())
    return Template.from_json(template), template


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    template, raw = synth(outdir)
    yield {"template": template, "raw": raw, "outdir": outdir}


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # No bundling for this variant: only its template is inspected.
    template, _ = synth(
        tmp_path_factory.mktemp("cdk.out-arm"),
        runtime="python3.13-arm64",
        apiRateLimit="5",
        apiBurstLimit="10",
        modelVersion="20260101-000000-fast-abc",
        tracing="true",
        **{"aws:cdk:bundling-stacks": []},
    )
    return template


def resources(raw: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == kind}


def our_functions(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two serving functions, by their handler."""
    found = {}
    for resource in resources(raw, "AWS::Lambda::Function").values():
        handler = resource["Properties"].get("Handler", "")
        if handler.startswith("classifier."):
            found[handler] = resource["Properties"]
    return found


def test_both_functions_run_python_313_on_x86_64_by_default(synthesised: dict[str, Any]) -> None:
    functions = our_functions(synthesised["raw"])
    assert set(functions) == {"classifier.api.handler", "classifier.uploads.handler"}
    for props in functions.values():
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["x86_64"]
        assert props["MemorySize"] == 1024


def test_environment_pins_the_model_version_parameter(synthesised: dict[str, Any]) -> None:
    raw = synthesised["raw"]
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
        if handler == "classifier.uploads.handler":
            assert variables["UPLOADS_PREFIX"] == "uploads/"
            assert variables["RESULTS_PREFIX"] == "results/"


def test_context_switches_to_python_313_on_arm64_and_pins_a_model(arm: Any) -> None:

    for handler in ("classifier.api.handler", "classifier.uploads.handler"):
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


def notification_filters(raw: dict[str, Any]) -> list[dict[str, str]]:
    """The key filters of the bucket notifications that feed the uploads queue."""
    (notifications,) = resources(raw, "Custom::S3BucketNotifications").values()
    configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in configs)
    return [{r["Name"]: r["Value"] for r in c["Filter"]["Key"]["FilterRules"]} for c in configs]


def reaches_the_queue(key: str, filters: list[dict[str, str]]) -> bool:
    """S3's rule: a literal, case-sensitive prefix and suffix match."""
    return any(
        key.startswith(f.get("prefix", "")) and key.endswith(f.get("suffix", "")) for f in filters
    )


def test_every_name_an_image_can_have_reaches_the_queue(synthesised: dict[str, Any]) -> None:
    from classifier import contract

    filters = notification_filters(synthesised["raw"])
    names = ["IMG_0042", "no extension", "My Dog+1", "2026-11-26 horse", "ünïcødé/猫"]
    keys = [f"{contract.UPLOADS_PREFIX}{name}" for name in names]
    for _, extensions in contract.IMAGE_FORMATS.values():
        for ext in extensions:
            for variant in (ext, ext.upper(), ext.capitalize(), ext[:2] + ext[2:].upper()):
                keys += [f"{contract.UPLOADS_PREFIX}{name}{variant}" for name in names]
    missed = [key for key in keys if not reaches_the_queue(key, filters)]
    assert not missed, f"these uploads would never reach the classifier: {missed[:5]}"
    assert not reaches_the_queue(f"{contract.RESULTS_PREFIX}a.png.json", filters)
    assert filters == [contract.UPLOADS_NOTIFICATION_FILTER]


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


def test_queue_has_a_dead_letter_queue_and_batched_partial_responses(
    synthesised: dict[str, Any],
) -> None:
    from aws_cdk.assertions import Match

    template = synthesised["template"]
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            # Throttled deliveries count as receives: AWS advises >= 5 for Lambda consumers.
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5},
            "VisibilityTimeout": 720,  # six times the function's timeout, as AWS advises
            "SqsManagedSseEnabled": True,
        },
    )
    template.has_resource_properties("AWS::SQS::Queue", {"MessageRetentionPeriod": 14 * 24 * 3600})
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 50,
            "MaximumBatchingWindowInSeconds": 2,  # AWS requires >= 1 s above 10 messages
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_every_bucket_is_encrypted_private_and_tls_only(synthesised: dict[str, Any]) -> None:
    raw = synthesised["raw"]
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


def test_cloudwatch_alarms_may_publish_to_the_alarm_topic(synthesised: dict[str, Any]) -> None:
    # A topic policy replaces SNS's default one: without an Allow for CloudWatch (from this
    # account), alarm e-mails would never be sent.
    (policy,) = resources(synthesised["raw"], "AWS::SNS::TopicPolicy").values()
    allowed = [
        st
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow" and "sns:Publish" in as_list(st["Action"])
    ]
    (statement,) = allowed
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


def test_the_rejection_alarm_fires_when_every_image_is_rejected(
    synthesised: dict[str, Any],
) -> None:
    # A minute with nothing classified has no "classified" point; without FILL the share would
    # have no point either and the alarm would read it as not breaching.
    alarms = resources(synthesised["raw"], "AWS::CloudWatch::Alarm").values()
    expressions = [
        m["Expression"]
        for a in alarms
        for m in a["Properties"].get("Metrics", [])
        if "Expression" in m and "rejected" in m["Expression"]
    ]
    assert len(expressions) == 2  # the API's and the drop folder's rollouts
    for expression in expressions:
        assert "FILL(rejected, 0)" in expression and "FILL(classified, 0)" in expression


def statements(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, statement)
        for name, policy in resources(raw, "AWS::IAM::Policy").items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_s3_wildcard_action_and_no_s3_resource_star(synthesised: dict[str, Any]) -> None:
    for name, statement in statements(synthesised["raw"]):
        actions = as_list(statement["Action"])
        assert "s3:*" not in actions and "*" not in actions, name
        if any(a.startswith("s3:") for a in actions):
            assert "*" not in as_list(statement["Resource"]), (name, statement)


def prefixes_of(statement: dict[str, Any]) -> set[str]:
    found = set()
    for resource in as_list(statement["Resource"]):  # one prefix per resource
        text = json.dumps(resource)
        for prefix in (
            "/models/*",
            "/uploads/async/*",
            "/results/async/*",
            "/uploads/*",
            "/results/*",
            "/review/items/*",
            "/review/*",
            "/labels/*",
        ):
            if prefix in text:
                found.add(prefix)
                break
    return found


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
        ("s3:PutObject", "/review/items/*"),  # capture: a review record per unsure answer
    }


def test_alarms_watch_errors_throttles_5xx_and_dead_letters(synthesised: dict[str, Any]) -> None:
    alarms = resources(synthesised["raw"], "AWS::CloudWatch::Alarm")
    service = {k: a for k, a in alarms.items() if "Rollout" not in k}
    metrics = sorted(
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in service.values()
    )
    assert metrics == sorted(
        [
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Throttles"),
            ("AWS/Lambda", "Throttles"),
            ("AWS/ApiGateway", "5xx"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ]
    )
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"], "every alarm notifies the topic"


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


# --- the bundled asset ---------------------------------------------------------------------------
def api_asset(synthesised: dict[str, Any]) -> Path:
    (function,) = [
        r
        for r in resources(synthesised["raw"], "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "classifier.api.handler"
    ]
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    (manifest,) = Path(synthesised["outdir"]).glob("*.assets.json")
    source = json.loads(manifest.read_text())["files"][asset_hash]["source"]["path"]
    return Path(synthesised["outdir"]) / source


@pytest.fixture(scope="module")
def py311(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The python3.11 + tflite-runtime target, bundled for real."""
    outdir = tmp_path_factory.mktemp("cdk.out-py311")
    template, raw = synth(outdir, runtime="python3.11-x86_64")
    return {"template": template, "raw": raw, "outdir": outdir}


# What each target's bundle must hold: its TFLite runtime, its NumPy, its Python, and a size limit
# near what it measures (MB unzipped, bytecode included: python3.13 73.2, python3.11 85.8).
EXPECTED = {
    "python3.13-x86_64": ("ai_edge_litert", "numpy-2.", "3.13", 84),
    "python3.11-x86_64": ("tflite_runtime", "numpy-1.26.4", "3.11", 97),
}


def bundle_of(target: str, synthesised: dict[str, Any], py311: dict[str, Any]) -> Path:
    return api_asset(synthesised if target == "python3.13-x86_64" else py311)


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_each_bundle_is_complete_lean_and_free_of_tensorflow(
    target: str, synthesised: dict[str, Any], py311: dict[str, Any]
) -> None:
    runtime, numpy_wheel, _, limit_mb = EXPECTED[target]
    bundle = bundle_of(target, synthesised, py311)
    names = {p.name for p in bundle.iterdir()}
    assert {
        "classifier",
        runtime,
        "numpy",
        "PIL",
        "fastapi",
        "mangum",
        "aws_lambda_powertools",
        "multipart",
        "boto3",
        "botocore",
    } <= names
    assert not names & {"tensorflow", "keras", "tests", "training", "moto"}
    # botocore keeps only the API models of the services the functions call.
    assert {p.name for p in (bundle / "botocore" / "data").iterdir() if p.is_dir()} == {
        "s3",
        "events",
    }
    # The strip rule ran: nothing the functions never load is left (see bundling.STRIP).
    leftovers = [
        p.relative_to(bundle).as_posix()
        for pattern in (
            "**/*.pyi",
            "numpy/*/tests",
            "numpy/_core/include",
            "ai_edge_litert/*Accelerator*.so",
            "ai_edge_litert/libLiteRt.so",
            "aws_lambda_powertools/event_handler",
            "pydantic/v1",
        )
        for p in bundle.glob(pattern)
    ]
    assert not leftovers, leftovers[:5]
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"{target} API bundle: {size / 2**20:.1f} MB unzipped")
    assert size < limit_mb * 2**20, f"{size / 2**20:.1f} MB > {limit_mb} MB"
    (wheel,) = [p.name for p in bundle.glob("numpy-*.dist-info")]
    assert wheel.startswith(numpy_wheel)


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_every_package_in_each_bundle_is_at_its_locked_version(
    target: str, synthesised: dict[str, Any], py311: dict[str, Any]
) -> None:
    from infra import lockfile
    from infra.components.bundling import TARGETS, lambda_requirements

    bundle = bundle_of(target, synthesised, py311)
    installed = {}
    for info in bundle.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[lockfile.normalise(name)] = version
    assert installed == lockfile.pinned(lambda_requirements(TARGETS[target]))
    locked = lockfile.locked_versions()
    assert all(version in locked[name] for name, version in installed.items())


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_each_bundle_ships_unchecked_bytecode_for_its_python(
    target: str, synthesised: dict[str, Any], py311: dict[str, Any]
) -> None:
    from infra.components.bundling import find_python

    _, _, version, _ = EXPECTED[target]
    if find_python(version) is None:
        pytest.skip(f"no python{version} on this machine to compile the {target} bundle with")
    bundle = bundle_of(target, synthesised, py311)
    tag = f"cpython-{version.replace('.', '')}"
    sources = [p for p in bundle.rglob("*.py") if p.is_file()]
    missing = [
        p.relative_to(bundle).as_posix()
        for p in sources
        if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()
    ]
    assert len(sources) > 500 and not missing, missing[:5]
    header = (bundle / "classifier" / "__pycache__" / f"api.{tag}.pyc").read_bytes()[:16]
    # PEP 552 flags: bit 0 hash-based, bit 1 check the source. Lambda's read-only folder keeps
    # zip timestamps that would invalidate timestamp-based bytecode on every cold start.
    assert int.from_bytes(header[4:8], "little") == 0b01
    assert (
        b"/var/task/classifier/api.py"
        in (bundle / "classifier" / "__pycache__" / f"api.{tag}.pyc").read_bytes()
    )


RUN_IN_BUNDLE = """
import json, sys
task_root, runtime_root, events_file = sys.argv[1:4]
sys.path[:0] = [task_root]
sys.path.append(runtime_root)  # Lambda's own boto3 comes after the code, as in /var/runtime
from classifier import api, uploads, service
import classifier, boto3, botocore
assert classifier.__file__.startswith(task_root), classifier
# The bundle's pinned boto3 wins over the runtime's (which may lack conditional writes).
assert boto3.__file__.startswith(task_root) and botocore.__file__.startswith(task_root), boto3
runtime = service.classifier().runtime
module = sys.modules["ai_edge_litert" if runtime.startswith("ai-edge") else "tflite_runtime"]
assert module.__file__.startswith(task_root), module
assert "tensorflow" not in sys.modules
class Context:
    function_name = "bundle"; memory_limit_in_mb = 1024; aws_request_id = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bundle"
events = json.load(open(events_file))
print(json.dumps({
    "runtime": runtime,
    "python": sys.version.split()[0],
    "api": api.handler(events["api"], Context()),
    "drop_folder": uploads.handler(events["drop_folder"], Context()),
    "check": uploads.handler(events["check"], Context()),
}))
"""


@pytest.fixture(scope="module")
def lambda_runtime_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Lambda's Python runtime provides beside the code: boto3 and its dependencies."""
    import boto3
    import botocore
    import dateutil
    import jmespath
    import s3transfer
    import six
    import urllib3

    folder = tmp_path_factory.mktemp("var-runtime")
    for package in (boto3, botocore, s3transfer, jmespath, dateutil, urllib3):  # pure Python
        shutil.copytree(Path(str(package.__file__)).parent, folder / package.__name__)
    shutil.copy(str(six.__file__), folder)
    return folder


@pytest.fixture(scope="module")
def local_s3() -> Iterator[str]:
    """A moto server in this process: the bundle's boto3 reaches it by AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_each_bundle_runs_both_handlers_from_a_clean_folder_as_the_dev_environment_does(
    target: str,
    synthesised: dict[str, Any],
    py311: dict[str, Any],
    tmp_path: Path,
    lambda_runtime_packages: Path,
    local_s3: str,
) -> None:
    import base64

    import boto3
    from classifier import service

    from infra.components.bundling import find_python
    from scripts.events import s3_event, s3_record, sqs_event, sqs_message
    from tests.conftest import IMGS, PUBLISHED

    runtime, _, version, _ = EXPECTED[target]
    python = find_python(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine to import the {target} bundle with")
    env = {
        "MODEL_URI": str(PUBLISHED),
        "AWS_ENDPOINT_URL": local_s3,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        # As in Lambda: the model loads at import (init) and metrics are written as EMF.
        "AWS_LAMBDA_FUNCTION_NAME": "bundle",
    }
    bucket = f"drop-{target.replace('.', '')}"
    s3 = boto3.client(
        "s3",
        endpoint_url=local_s3,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    cat = (IMGS / "cat.png").read_bytes()
    s3.put_object(Bucket=bucket, Key="uploads/cat.png", Body=cat)
    s3.put_object(Bucket=bucket, Key="uploads/notes.png", Body=b"not an image")
    events = {
        "api": load_event("apigw-v2-multipart.json"),
        "drop_folder": sqs_event(
            *(
                sqs_message(s3_event(s3_record(bucket, f"uploads/{name}", sequencer=f"0{i}")))
                for i, name in enumerate(("cat.png", "notes.png"), start=1)
            )
        ),
        "check": {"rollout_check": base64.b64encode(cat).decode()},
    }
    (tmp_path / "events.json").write_text(json.dumps(events))
    clean = tmp_path / "lambda-task-root"  # a copy: nothing the run writes reaches the asset
    shutil.copytree(bundle_of(target, synthesised, py311), clean)
    arguments = [str(clean), str(lambda_runtime_packages), str(tmp_path / "events.json")]
    done = subprocess.run(
        [python, "-B", "-S", "-E", "-c", RUN_IN_BUNDLE, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1])
    metrics = [json.loads(line) for line in lines[:-1] if '"_aws"' in line]
    assert {m["service"] for m in metrics} == {"cifar10-api", "cifar10-uploads"}, lines[:-1]
    assert answer["python"].startswith(version + ".")
    assert answer["runtime"].startswith(runtime.replace("_", "-"))
    assert answer["api"]["statusCode"] == 200, answer["api"]
    assert json.loads(answer["api"]["body"])["category"] in CIFAR10_CLASSES
    assert answer["drop_folder"] == {"batchItemFailures": []}
    result = json.loads(s3.get_object(Bucket=bucket, Key="results/cat.png.json")["Body"].read())
    rejected = json.loads(s3.get_object(Bucket=bucket, Key="results/notes.png.json")["Body"].read())
    assert "category" not in rejected and "PNG or JPEG" in rejected["error"], rejected
    # The stripped bundle answers as the development environment does, to int8 rounding.
    expected = service.load_model(str(PUBLISHED)).predict(cat).as_dict()
    for got in (answer["check"]["check"], result):
        assert got["category"] == expected["category"]
        assert got["model_version"] == expected["model_version"]
        for name, probability in expected["probabilities"].items():
            assert got["probabilities"][name] == pytest.approx(probability, abs=0.01)


def test_the_arm64_bundle_installs_aarch64_wheels(tmp_path: Path) -> None:
    from infra.components.bundling import PY313_ARM, install

    install(PY313_ARM, tmp_path)
    (litert,) = tmp_path.glob("ai_edge_litert/_pywrap_litert_interpreter_wrapper*.so")
    header = litert.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # AArch64
    assert (tmp_path / "classifier" / "api.py").is_file()
    assert not list(tmp_path.glob("ai_edge_litert/*Accelerator*.so"))


# --- one writer of models/latest -------------------------------------------------------------
def seed_calls(raw: dict[str, Any], bucket_name: str) -> list[dict[str, Any]]:
    """The SDK calls the deploy makes to seed latest (Create and Update), for ``bucket_name``."""
    (seed,) = resources(raw, "Custom::AWS").values()
    calls = []
    for phase in ("Create", "Update"):
        parts = seed["Properties"][phase]["Fn::Join"][1]
        calls.append(json.loads("".join(bucket_name if isinstance(p, dict) else p for p in parts)))
    return calls


def run_like_the_custom_resource(s3: Any, call: dict[str, Any]) -> str:
    """What CDK's AwsCustomResource handler does with a call: run it, ignore matching errors."""
    import re

    from botocore.exceptions import ClientError

    assert (call["service"], call["action"]) == ("S3", "putObject")
    try:
        s3.put_object(**call["parameters"])
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert re.search(call["ignoreErrorCodesMatching"], code), code
        return f"ignored {code}"
    return "written"


def test_a_deploy_copies_versioned_models_but_never_latest(synthesised: dict[str, Any]) -> None:
    (deployment,) = resources(synthesised["raw"], "Custom::CDKBucketDeployment").values()
    assert deployment["Properties"]["Exclude"] == ["latest/*"]
    assert deployment["Properties"]["Prune"] is False
    (zip_key,) = deployment["Properties"]["SourceObjectKeys"]
    staged = synthesised["outdir"] / f"asset.{zip_key.removesuffix('.zip')}"
    assert staged.is_dir()
    assert not (staged / "latest").exists(), "the asset must not carry latest/"
    assert any(staged.glob("*/model.tflite"))


def test_a_deploy_cannot_overwrite_a_published_model(
    synthesised: dict[str, Any], aws_env: None
) -> None:
    import boto3
    from moto import mock_aws

    key = "models/latest/manifest.json"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models-bucket")
        published = b'{"model_version": "published-by-training"}'
        s3.put_object(Bucket="models-bucket", Key=key, Body=published)
        for call in seed_calls(synthesised["raw"], "models-bucket"):
            assert call["parameters"]["Key"] == key
            assert run_like_the_custom_resource(s3, call) == "ignored PreconditionFailed"
        assert s3.get_object(Bucket="models-bucket", Key=key)["Body"].read() == published


def test_a_first_deploy_seeds_latest_with_the_repositorys_model(
    synthesised: dict[str, Any], aws_env: None
) -> None:
    import boto3
    from moto import mock_aws

    key = "models/latest/manifest.json"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models-bucket")
        create, _ = seed_calls(synthesised["raw"], "models-bucket")
        assert run_like_the_custom_resource(s3, create) == "written"
        seeded = json.loads(s3.get_object(Bucket="models-bucket", Key=key)["Body"].read())
    repository = json.loads((ROOT / "models" / "latest" / "manifest.json").read_text())
    assert seeded == repository


# --- cold-start options ----------------------------------------------------------------------
def test_snap_start_publishes_versions_behind_a_live_alias(tmp_path: Path) -> None:
    _, raw = synth(tmp_path, snapStart="true", **{"aws:cdk:bundling-stacks": []})
    for props in our_functions(raw).values():
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert len(resources(raw, "AWS::Lambda::Alias")) == 2


def test_provisioned_concurrency_is_set_on_the_apis_alias(tmp_path: Path) -> None:
    _, raw = synth(tmp_path, provisionedConcurrency="2", **{"aws:cdk:bundling-stacks": []})
    configs = [
        a["Properties"].get("ProvisionedConcurrencyConfig")
        for a in resources(raw, "AWS::Lambda::Alias").values()
    ]
    assert sorted(configs, key=str) == sorted(
        [{"ProvisionedConcurrentExecutions": 2}, None], key=str
    )
    assert all("SnapStart" not in p for p in our_functions(raw).values())


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"snapStart": "true", "runtime": "python3.11-x86_64"}, "needs a python3.12"),
        ({"snapStart": "true", "provisionedConcurrency": "1"}, "cannot be combined"),
        (
            {"provisionedConcurrency": "11", "apiReservedConcurrency": "10"},
            "exceeds apiReservedConcurrency=10",
        ),
    ],
)
def test_impossible_cold_start_settings_are_refused_by_name(
    context: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        synth(tmp_path, **context, **{"aws:cdk:bundling-stacks": []})


# --- model bound to function version, canary with rollback ----------------------------------
def function_id(raw: dict[str, Any], handler: str) -> str:
    return next(
        k
        for k, v in resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == handler
    )


def test_every_caller_reaches_the_functions_through_their_live_alias(
    synthesised: dict[str, Any],
) -> None:
    raw = synthesised["raw"]
    aliases = resources(raw, "AWS::Lambda::Alias")
    by_function = {a["Properties"]["FunctionName"]["Ref"]: k for k, a in aliases.items()}
    api_alias = by_function[function_id(raw, "classifier.api.handler")]
    uploads_alias = by_function[function_id(raw, "classifier.uploads.handler")]
    assert all(a["Properties"]["Name"] == "live" for a in aliases.values())
    (integration,) = resources(raw, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationUri"] == {"Ref": api_alias}
    (mapping,) = resources(raw, "AWS::Lambda::EventSourceMapping").values()
    consumer = json.dumps(mapping["Properties"]["FunctionName"])
    assert f'{{"Ref": "{uploads_alias}"}}' in consumer and consumer.endswith('":live"]]}')
    (machine,) = resources(raw, "AWS::StepFunctions::StateMachine").values()
    assert {"Ref": uploads_alias} in machine["Properties"]["DefinitionString"]["Fn::Join"][1]


def test_a_new_model_publishes_new_versions_and_old_ones_are_kept(
    synthesised: dict[str, Any],
) -> None:
    raw = synthesised["raw"]
    versions = resources(raw, "AWS::Lambda::Version")
    assert len(versions) == 2
    for version in versions.values():
        # A changed description replaces an AWS::Lambda::Version: a new ModelVersion publishes.
        assert version["Properties"]["Description"] == {
            "Fn::Join": ["", ["model ", {"Ref": "ModelVersion"}]]
        }
        assert version["DeletionPolicy"] == version["UpdateReplacePolicy"] == "Retain"
        assert "ModelStorePublishedModelCustomResource815313FC" in version["DependsOn"]
    for alias in resources(raw, "AWS::Lambda::Alias").values():
        assert alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0] in versions


def test_codedeploy_shifts_each_alias_as_a_canary_and_rolls_back_on_alarms(
    synthesised: dict[str, Any],
) -> None:
    raw = synthesised["raw"]
    groups = resources(raw, "AWS::CodeDeploy::DeploymentGroup")
    alarms = resources(raw, "AWS::CloudWatch::Alarm")
    aliases = resources(raw, "AWS::Lambda::Alias")
    assert len(groups) == 2
    for alias in aliases.values():
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["DeploymentGroupName"]["Ref"] in groups
    for group_id, group in groups.items():
        props = group["Properties"]
        assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        rollback = props["AutoRollbackConfiguration"]
        assert rollback["Enabled"] is True
        assert set(rollback["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_ALARM",
            "DEPLOYMENT_STOP_ON_REQUEST",
        }
        watched = [
            alarms[a["Name"]["Ref"]]["Properties"] for a in props["AlarmConfiguration"]["Alarms"]
        ]
        signals = {(a.get("Namespace"), a.get("MetricName")) for a in watched}
        expected = {
            ("AWS/Lambda", "Errors"),
            ("AWS/Lambda", "Duration"),
            ("Cifar10Classifier", "Confidence"),
            (None, None),  # the rejected-image share (metric math)
        }
        if group_id.startswith("InferenceApi"):
            expected.add(("AWS/ApiGateway", "5xx"))
        assert signals == expected, group_id
        for alarm in watched:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if alarm.get("Namespace") == "AWS/Lambda":  # the new version alone, via the alias
                assert "Fn::GetAtt" in dimensions["ExecutedVersion"]
                assert dimensions["Resource"]["Fn::Join"][1][-1] == ":live"
            if alarm.get("Namespace") == "Cifar10Classifier":  # the new model alone
                assert dimensions["ModelVersion"] == {"Ref": "ModelVersion"}
                assert alarm["ComparisonOperator"] == "LessThanThreshold"
            if "Metrics" in alarm:
                queried = json.dumps(alarm["Metrics"])
                assert "ImagesRejected" in queried and '{"Ref": "ModelVersion"}' in queried


@pytest.mark.parametrize(
    ("deployment", "config"),
    [
        ("linear", "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"),
        ("all-at-once", "CodeDeployDefault.LambdaAllAtOnce"),
    ],
)
def test_the_deployment_style_comes_from_context(
    deployment: str, config: str, tmp_path: Path
) -> None:
    _, raw = synth(tmp_path, deployment=deployment, **{"aws:cdk:bundling-stacks": []})
    for group in resources(raw, "AWS::CodeDeploy::DeploymentGroup").values():
        assert group["Properties"]["DeploymentConfigName"] == config


def test_an_unknown_deployment_style_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="deployment='blue-green'"):
        synth(tmp_path, deployment="blue-green", **{"aws:cdk:bundling-stacks": []})


def test_the_dashboard_shows_traffic_latency_errors_queue_categories_and_models(
    synthesised: dict[str, Any],
) -> None:
    (dashboard,) = resources(synthesised["raw"], "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(p if isinstance(p, str) else "X" for p in parts))
    widgets = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    assert set(widgets) == {
        "API requests",
        "API latency (ms)",
        "Errors",
        "Function duration p50 / p99 (ms)",
        "Throttles",
        "Dead-letter queue depth",
        "Classifications per category",
        "Mean confidence per model version",
        "Images classified and rejected per model version",
        "Classify latency per model version (ms, p99)",
        "Feedback: answers captured for review, capture failures, labels",
    }

    def stats(title: str) -> set[str]:
        return {m[-1].get("stat") for m in widgets[title]["metrics"] if isinstance(m[-1], dict)}

    assert stats("API latency (ms)") == {"p50", "p99"}
    errors = json.dumps(widgets["Errors"]["metrics"])
    assert '"5xx"' in errors and '"4xx"' in errors and errors.count('"Errors"') == 2
    assert json.dumps(widgets["Throttles"]["metrics"]).count('"Throttles"') == 2
    assert "ApproximateNumberOfMessagesVisible" in json.dumps(widgets["Dead-letter queue depth"])
    schema = "{Cifar10Classifier,ModelVersion,service}"
    (categories,) = widgets["Classifications per category"]["metrics"]
    assert f"SEARCH('{schema} Category_', 'Sum'" in categories[0]["expression"]
    (confidence,) = widgets["Mean confidence per model version"]["metrics"]
    assert f"SEARCH('{schema} MetricName=\"Confidence\"', 'Average'" in confidence[0]["expression"]
    assert "Dashboard" in synthesised["raw"]["Outputs"]


def test_async_uploads_are_wired_for_browsers_and_events_reach_the_default_bus(
    synthesised: dict[str, Any],
) -> None:
    from aws_cdk.assertions import Match

    functions = our_functions(synthesised["raw"])
    api = functions["classifier.api.handler"]["Environment"]["Variables"]
    assert "Ref" in api["UPLOADS_BUCKET"]
    uploads = functions["classifier.uploads.handler"]["Environment"]["Variables"]
    assert uploads["EVENT_BUS"] == "default"
    synthesised["template"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "CorsConfiguration": {
                "CorsRules": [
                    Match.object_like({"AllowedMethods": ["POST"], "AllowedOrigins": ["*"]})
                ]
            }
        },
    )
    puts = [
        statement
        for _, statement in statements(synthesised["raw"])
        if "events:PutEvents" in as_list(statement["Action"])
    ]
    assert len(puts) == 1 and "event-bus/default" in json.dumps(puts[0]["Resource"])


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


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"auth": "password"}, "auth='password'; expected one of"),
        ({"auth": "jwt"}, "needs jwtIssuer"),
    ],
)
def test_bad_auth_settings_are_refused_by_name(
    context: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        synth(tmp_path, **context, **{"aws:cdk:bundling-stacks": []})


@pytest.mark.parametrize("auth", ["iam", "jwt"])
def test_cdk_nag_passes_under_each_auth_mode(auth: str, tmp_path: Path) -> None:
    context = {"auth": auth, "aws:cdk:bundling-stacks": []}
    if auth == "jwt":
        context |= {"jwtIssuer": "https://issuer.example.com", "jwtAudience": '["client"]'}
    synth(tmp_path, **context)  # raises if cdk-nag reports an unacknowledged finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []


# --- bulk classification ---------------------------------------------------------------------
def test_bulk_classification_is_a_distributed_map_over_the_uploads_bucket(
    synthesised: dict[str, Any],
) -> None:
    (machine,) = resources(synthesised["raw"], "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<" + json.dumps(p) + ">" for p in parts)
    definition = json.loads(re.sub(r"<\{[^>]*\}>", "X", text))
    (state,) = definition["States"].values()
    assert state["Type"] == "Map"
    assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert state["ItemReader"]["Parameters"]["Prefix.$"] == "$.prefix"
    assert state["ItemBatcher"]["MaxItemsPerBatch"] == 50
    assert state["MaxConcurrency"] == 20 and state["ToleratedFailurePercentage"] == 1
    assert state["ResultWriter"]["Parameters"]["Prefix"] == "bulk-reports/"
    (task,) = state["ItemProcessor"]["States"].values()
    assert "UploadClassifierRolloutLive" in json.dumps(parts)  # the drop folder's live alias
    assert any(r["ErrorEquals"] == ["States.TaskFailed"] for r in task["Retry"])
    # Throttling on a small account is waited out with backoff, not counted as failure.
    (throttled,) = [
        r for r in task["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"]
    ]
    assert throttled["BackoffRate"] >= 2 and throttled["MaxAttempts"] >= 6
    assert throttled["JitterStrategy"] == "FULL"
    assert task["Retry"].index(throttled) == 0  # before the general retrier, which would match
    outputs = synthesised["raw"]["Outputs"]
    assert "BulkStateMachine" in outputs


# --- the cloud training job's role ----------------------------------------------------------
def test_the_training_role_writes_candidates_but_never_latest(synthesised: dict[str, Any]) -> None:
    raw = synthesised["raw"]
    roles = {
        k: r
        for k, r in resources(raw, "AWS::IAM::Role").items()
        if "sagemaker.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    }
    ((role_id, role),) = roles.items()
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    policies = [
        p
        for p in resources(raw, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = {
        s["Sid"]: s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
    }
    text = json.dumps

    deny = statements["NeverLatest"]
    assert deny["Effect"] == "Deny" and "s3:PutObject" in deny["Action"]
    assert text(deny["Resource"]).endswith('/models/latest/*"]]}')
    writes = statements["WriteCandidatesAndOutput"]
    assert writes["Action"] == "s3:PutObject"
    assert sorted(r["Fn::Join"][1][-1] for r in writes["Resource"]) == [
        "/models/*",
        "/sagemaker/output/*",
    ]
    assert "/data/cifar10.tar" in text(statements["ReadDataAndSource"]["Resource"])
    assert statements["ListTheDataChannel"]["Condition"]["StringLike"]["s3:prefix"]
    # --corrections: reviewers' labels in the uploads bucket, read and listed, nothing else there
    assert text(statements["ReadReviewersLabels"]["Resource"]).endswith('/labels/*"]]}')
    assert statements["ListReviewersLabels"]["Condition"]["StringLike"]["s3:prefix"] == ["labels/*"]
    image = text(statements["PullTheTensorFlowImage"]["Resource"])
    assert ":763104351884:repository/tensorflow-training" in image
    for statement in statements.values():  # no wildcard actions anywhere
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in a for a in actions), statement["Sid"]
    assert "TrainingRoleArn" in raw["Outputs"]


def test_each_rollout_checks_the_new_version_before_any_traffic(
    synthesised: dict[str, Any],
) -> None:
    raw = synthesised["raw"]
    functions = resources(raw, "AWS::Lambda::Function")
    versions = resources(raw, "AWS::Lambda::Version")
    for alias in resources(raw, "AWS::Lambda::Alias").values():
        hook_id = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"][
            "Ref"
        ]
        hook = functions[hook_id]["Properties"]
        variables = hook["Environment"]["Variables"]
        # The version the alias moves to is the one checked, against the pinned model.
        new_version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert variables["TARGET"] == {"Ref": new_version} and new_version in versions
        assert variables["EXPECTED_MODEL"] == {"Ref": "ModelVersion"}
        event = json.loads(variables["CHECK_EVENT"])
        assert event.get("rawPath") == "/predict" or "rollout_check" in event
        assert hook["Handler"] == "pre_traffic.handler" and hook["Runtime"] == "python3.13"
    hooks = [
        p
        for p in resources(raw, "AWS::IAM::Policy").values()
        if "PreTrafficCheck" in json.dumps(p["Properties"]["Roles"])
    ]
    granted = json.dumps([p["Properties"]["PolicyDocument"] for p in hooks])
    assert "lambda:InvokeFunction" in granted
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in granted
