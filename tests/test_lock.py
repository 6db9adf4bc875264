"""One lock for every install: uv.lock agrees with pyproject.toml, and the files exported from it
(uv's own requirements, the SageMaker job's) are what the lock says today."""

from __future__ import annotations

import subprocess
import tomllib

from infra import lockfile
from tests.conftest import ROOT


def test_the_lock_agrees_with_pyproject() -> None:
    done = subprocess.run(
        [*lockfile.uv_command(), "lock", "--check", "--project", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"uv.lock is out of date: run `make lock`\n{done.stderr}"


def test_the_exported_requirements_are_the_locks() -> None:
    assert lockfile.UV_REQUIREMENTS.read_text() == lockfile.uv_requirements()
    assert lockfile.SAGEMAKER_REQUIREMENTS.read_text() == lockfile.sagemaker_requirements()
    assert "tensorflow" not in lockfile.pinned(
        [line for line in lockfile.SAGEMAKER_REQUIREMENTS.read_text().splitlines() if "==" in line]
    )


def test_every_python_gets_one_version_of_each_package_across_all_extras() -> None:
    # The lock splits a few packages by Python (tflite-runtime on 3.11 needs NumPy 1; SciPy's
    # newest need 3.12): within one Python every extra shares one version of each.
    entries = lockfile.export(("lambda", "serve", "train", "infra", "dev", "sagemaker"))
    for python in ("3.11", "3.12", "3.13"):
        for machine in ("x86_64", "aarch64"):
            names = [
                e.split("==")[0]
                for e in lockfile.applying(entries, lockfile.target_environment(python, machine))
            ]
            assert len(names) == len(set(names)), (python, machine)
            assert {"tensorflow", "fastapi", "aws-cdk-lib", "pytest"} <= set(names)


def test_every_extra_pins_each_direct_requirement_once_across_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    specs: dict[str, set[str]] = {}
    for lines in extras.values():
        for line in lines:
            requirement = line.split(";")[0].strip()
            name = lockfile.normalise(requirement.split("[")[0].split("=")[0].split(">")[0])
            specs.setdefault(name, set()).add(requirement.split("]")[-1].lstrip(" ="))
    # numpy's two lines are for two Pythons (see pyproject.toml); every other pin agrees.
    assert {n: s for n, s in specs.items() if len(s) > 1 and n != "numpy"} == {}
