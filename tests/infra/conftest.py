"""Shared by the infra tests: the stack synthesised once per session, and template helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

S3_ACTIONS = ("s3:", "*")

try:  # the CDK comes with the infra extra (make synth, make test); make test-fast has none
    import aws_cdk  # noqa: F401

    CDK_MISSING = None
except ImportError as exc:
    CDK_MISSING = f"needs the CDK ({exc}): `make synth` or `make test` installs the infra extra"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests that synthesise the stack skip, naming why, where the CDK is not installed."""
    if CDK_MISSING and item.get_closest_marker("infra"):
        pytest.skip(CDK_MISSING)


def synth(outdir: Path, **context: Any) -> tuple[Any, dict[str, Any]]:
    from aws_cdk.assertions import Template

    from infra.app import build_app

    app = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    (stack,) = [s for s in assembly.stacks]
    template = json.loads(Path(stack.template_full_path).read_text())
    return Template.from_json(template), template


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    template, raw = synth(outdir)
    yield {"template": template, "raw": raw, "outdir": outdir}


@pytest.fixture
def raw(synthesised: dict[str, Any]) -> dict[str, Any]:
    """The default stack's template as JSON (synthesised once per session)."""
    return synthesised["raw"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def everything_on(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack with its optional features on (template only, nag checked): automatic
    promotion and both retraining triggers, the traffic drift baseline."""
    _, raw = synth(
        tmp_path_factory.mktemp("cdk.out-everything-on"),
        retrainAutoPromote="true",
        retrainSchedule="rate(7 days)",
        retrainMinLabels="50",
        driftBaseline="traffic",
        driftBaselineDays="14",
        **{"aws:cdk:bundling-stacks": []},
    )
    return raw  # type: ignore[no-any-return]


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


def statements(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, statement)
        for name, policy in resources(raw, "AWS::IAM::Policy").items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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


# --- model bound to function version, canary with rollback ----------------------------------
def function_id(raw: dict[str, Any], handler: str) -> str:
    return next(
        k
        for k, v in resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == handler
    )
