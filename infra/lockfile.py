"""uv.lock, the one lock every install comes from, read for the installs uv does not do itself.

The development venv and CI sync from uv.lock directly (the Makefile). Three installs happen
elsewhere and take their requirements from here, each pinned and hashed: uv itself
(requirements/uv.txt, bootstrapped by pip), the Lambda bundle (:func:`requirements_for`, for the
target's Python and architecture, installed by pip with ``--require-hashes --no-deps``) and the
SageMaker job's requirements.txt (:func:`sagemaker_requirements`).

    python -m infra.lockfile export-uv         # requirements/uv.txt
    python -m infra.lockfile sagemaker         # training/requirements-sagemaker.txt
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
UV_REQUIREMENTS = ROOT / "requirements" / "uv.txt"
SAGEMAKER_REQUIREMENTS = ROOT / "training" / "requirements-sagemaker.txt"
# AWS's TensorFlow training container brings TensorFlow, Keras, NumPy and boto3 (and what they
# need); the job installs the rest of the ``sagemaker`` extra's closure from the lock.
SAGEMAKER_PROVIDED = (
    "tensorflow",
    "keras",
    "numpy",
    "protobuf",
    "ml-dtypes",
    "boto3",
    "botocore",
    "s3transfer",
)


def uv_command() -> list[str]:
    """uv on PATH, else the venv's (the ``uv`` package), else ``python -m uv``."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "uv"]


def export(extras: tuple[str, ...]) -> list[str]:
    """The lock's requirements for ``extras``, one entry per package: 'name==v ; marker' plus
    its hashes (uv's requirements format, joined into one line)."""
    command = [*uv_command(), "export", "--frozen", "--no-emit-project", "--no-header"]
    command += ["--no-annotate", "--format", "requirements-txt", "--project", str(ROOT)]
    for extra in extras:
        command += ["--extra", extra]
    text = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [" ".join(e.split()) for e in re.split(r"\n(?=\S)", text.replace("\\\n", " ")) if e]


def target_environment(python: str, machine: str) -> dict[str, str]:
    """PEP 508 marker values of a Linux CPython ``python`` ("3.13") on ``machine``."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": f"{python}.0",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def applying(entries: list[str], environment: dict[str, str]) -> list[str]:
    """The entries whose marker holds in ``environment``, their markers removed."""
    from packaging.markers import Marker

    kept = []
    for entry in entries:
        requirement, _, rest = entry.partition(" --hash")
        rest = " --hash" + rest if rest else ""
        name, _, marker = requirement.partition(" ; ")
        if marker and not Marker(marker).evaluate(environment):
            continue
        kept.append(name.strip() + rest)
    return kept


def requirements_for(extra: str, python: str, machine: str) -> list[str]:
    """``extra``'s locked closure for a Linux CPython target, pinned and hashed."""
    return applying(export((extra,)), target_environment(python, machine))


def pinned(entries: list[str]) -> dict[str, str]:
    """{normalised name: version} of requirement entries."""
    out = {}
    for entry in entries:
        name, _, version = entry.split(" ", 1)[0].partition("==")
        out[normalise(name)] = version
    return out


def locked_versions() -> dict[str, list[str]]:
    """Every package in uv.lock with its versions (two where markers split a package)."""
    versions: dict[str, list[str]] = {}
    for package in tomllib.loads(LOCK.read_text())["package"]:
        if "version" in package:
            versions.setdefault(normalise(package["name"]), []).append(package["version"])
    return versions


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv_requirements() -> str:
    """requirements/uv.txt: uv at its locked version with every wheel's hash."""
    (entry,) = [e for e in export(("dev",)) if e.startswith("uv==")]
    return "# uv at its version in uv.lock: `make lock` writes this file.\n" + entry + "\n"


def sagemaker_requirements() -> str:
    """The training job's requirements.txt: the ``sagemaker`` extra's closure for the container's
    Python 3.12 on x86_64, less what the container brings."""
    kept = [
        e
        for e in requirements_for("sagemaker", "3.12", "x86_64")
        if normalise(e.split("==")[0]) not in SAGEMAKER_PROVIDED
    ]
    head = (
        "# What the training job needs in AWS's TensorFlow training container beyond what it has\n"
        f"# ({', '.join(SAGEMAKER_PROVIDED)}): the `sagemaker` extra's closure from uv.lock,\n"
        "# hashed. SageMaker installs it as the code's requirements.txt; `make lock` writes it.\n"
    )
    return head + "\n".join(kept) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("export-uv", "sagemaker"))
    args = parser.parse_args()
    print(uv_requirements() if args.what == "export-uv" else sagemaker_requirements(), end="")


if __name__ == "__main__":
    main()
