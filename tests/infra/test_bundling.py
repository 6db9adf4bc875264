"""Which requirements each Lambda target gets (the built bundles: test_bundling_assets)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.infra
CDK = "the CDK is the infra audience's (make synth or make test installs it)"
pytest.importorskip("aws_cdk", reason=CDK)


def pins(requirements: list[str]) -> dict[str, str]:
    from infra.lockfile import pinned

    return pinned(requirements)


def test_python_311_x86_gets_tflite_runtime_and_numpy_1() -> None:
    from infra.components.bundling import PY311_X86, lambda_requirements

    pinned = pins(lambda_requirements(PY311_X86))
    assert pinned["tflite-runtime"] == "2.14.0" and pinned["numpy"] == "1.26.4"
    assert "ai-edge-litert" not in pinned
    assert PY311_X86.platforms == ("manylinux2014_x86_64",)  # Amazon Linux 2, glibc 2.26


def test_the_default_target_is_python_313_x86_with_litert_and_numpy_2() -> None:
    from infra.components.bundling import DEFAULT_TARGET, TARGETS, lambda_requirements

    target = TARGETS[DEFAULT_TARGET]
    assert (target.python, target.machine) == ("3.13", "x86_64")
    pinned = pins(lambda_requirements(target))
    assert pinned["ai-edge-litert"] == "2.3.0" and pinned["numpy"].startswith("2.")
    assert "tflite-runtime" not in pinned
    assert "manylinux_2_34_x86_64" in target.platforms  # Amazon Linux 2023, glibc 2.34


def test_python_313_arm_gets_ai_edge_litert() -> None:
    from infra.components.bundling import PY313_ARM, lambda_requirements

    pinned = pins(lambda_requirements(PY313_ARM))
    assert pinned["ai-edge-litert"] == "2.3.0"
    assert "tflite-runtime" not in pinned
    assert all(p.endswith("aarch64") for p in PY313_ARM.platforms)


def test_every_bundle_requirement_is_locked_pinned_and_hashed() -> None:
    from infra.components.bundling import TARGETS, lambda_requirements
    from infra.lockfile import locked_versions

    locked = locked_versions()
    for target in TARGETS.values():
        requirements = lambda_requirements(target)
        assert all(" --hash=sha256:" in r for r in requirements), target
        assert all(v in locked[n] for n, v in pins(requirements).items()), target
        assert not [r for r in requirements if "win32" in r or ";" in r]  # markers evaluated


def test_boto3_is_bundled_at_a_version_with_conditional_writes() -> None:
    from packaging.version import Version

    from infra.components.bundling import TARGETS, lambda_requirements

    for target in TARGETS.values():
        pinned = pins(lambda_requirements(target))
        # boto3 and botocore share versions; put_object's IfMatch/IfNoneMatch: botocore 1.35.69
        assert Version(pinned["boto3"]) >= Version("1.35.69")
        assert {"fastapi", "mangum", "pillow", "aws-lambda-powertools"} <= set(pinned)


def test_the_cdk_runs_on_a_supported_node_and_nothing_silences_its_notices() -> None:
    import os
    import shutil
    import subprocess

    from infra.app import use_venv_node

    use_venv_node()
    version = subprocess.run(
        [str(shutil.which("node")), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert int(version.strip().lstrip("v").split(".")[0]) >= 22, version  # 20 is end of life
    sources = [ROOT / "Makefile", *ROOT.glob("infra/**/*.py")]
    assert not [p for p in sources if "JSII_SILENCE" in p.read_text()]
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" not in os.environ
