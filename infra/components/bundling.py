"""Bundle the serving code for Lambda without Docker.

``pip install --platform ... --only-binary=:all: --python-version ... --target`` fetches the
Lambda platform's wheels on any machine; the serving package is copied beside them. The
requirements are the ``lambda`` extra of pyproject.toml, evaluated for the target Python, boto3
included: the conditional result writes need a botocore the runtime's own may predate, so the
bundle pins one (its API models cut to the services the functions call, :data:`AWS_SERVICES`).
TensorFlow and the tests never enter the bundle.

Then :data:`STRIP` removes, by explicit patterns, what the functions never load (tests, headers,
type stubs, LiteRT's compiler plugins, tools, accelerators and CompiledModel runtime, Pillow's
codecs beyond PNG and JPEG, NumPy's and Powertools' unused subpackages), debug symbols are
stripped from shared libraries, and what is left is compiled to bytecode by the target's Python
(:func:`compile_bytecode`: Lambda cannot cache it). The bundle test runs both handlers from the
finished bundle with the target's Python (an API request, a drop-folder batch against a local
S3, a rollout check) and compares the answers with the development environment's, so a pattern
that removed something needed fails the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infra import lockfile

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "classifier"
# The retraining pipeline's functions (release/pipeline.py) also carry the release road and the
# few TensorFlow-free training modules the gate imports: the same code as `make promote`.
RELEASE_MODULES = (
    *sorted((ROOT / "release").glob("*.py")),
    *(ROOT / "training" / f"{name}.py" for name in ("__init__", "corrections", "data")),
    ROOT / "training" / "serving_process.py",
)
# The AWS services the functions call: botocore's API models of all others are removed.
AWS_SERVICES = ("s3", "events")
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # unzipped code + layers
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the code, read-only


@dataclass(frozen=True)
class Target:
    """A Lambda runtime and architecture, and the wheels that run there."""

    python: str  # "3.11"
    architecture: lambda_.Architecture
    platforms: tuple[str, ...]

    @property
    def runtime(self) -> lambda_.Runtime:
        # SnapStart covers Python 3.12 and later (AWS Lambda docs).
        return lambda_.Runtime(
            f"python{self.python}",
            lambda_.RuntimeFamily.PYTHON,
            supports_snap_start=tuple(map(int, self.python.split("."))) >= (3, 12),
        )

    @property
    def machine(self) -> str:
        # jsii hands back a new proxy object for each access: compare names, not identities.
        return "aarch64" if self.architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"


def _manylinux(machine: str) -> tuple[str, ...]:
    """Wheel platforms that run on Amazon Linux 2023 (glibc 2.34), newest first."""
    return (
        *(f"manylinux_2_{minor}_{machine}" for minor in (34, 28, 27, 17)),
        f"manylinux2014_{machine}",
    )


# python3.13 runs on Amazon Linux 2023 (glibc 2.34): LiteRT (ai-edge-litert) and NumPy 2. Default.
PY313_X86 = Target("3.13", lambda_.Architecture.X86_64, _manylinux("x86_64"))
PY313_ARM = Target("3.13", lambda_.Architecture.ARM_64, _manylinux("aarch64"))
# python3.11 runs on Amazon Linux 2 (glibc 2.26): manylinux2014 wheels only; tflite-runtime and
# NumPy 1, for those pinned to it (AWS deprecates this runtime on 2027-06-30).
PY311_X86 = Target("3.11", lambda_.Architecture.X86_64, ("manylinux2014_x86_64",))
TARGETS = {
    "python3.13-x86_64": PY313_X86,
    "python3.13-arm64": PY313_ARM,
    "python3.11-x86_64": PY311_X86,
}
DEFAULT_TARGET = "python3.13-x86_64"

# What the functions never load, relative to the bundle root (glob patterns, files or folders).
STRIP = (
    # everywhere: caches, type stubs, Cython headers, console scripts for another machine
    "**/__pycache__",
    "**/*.pyi",
    "**/*.pxd",
    "bin",
    # NumPy: tests, C headers and static libraries, build tools, subpackages nothing imports
    "numpy/tests",
    "numpy/*/tests",
    "numpy/_core/include",
    "numpy/_core/lib",
    "numpy/_core/_simd.*.so",
    "numpy/_core/_*_tests.*.so",
    "numpy/f2py",
    "numpy/_pyinstaller",
    "numpy/typing/tests",
    "numpy/testing",
    # Powertools: Logger, Metrics and the batch/data-class utilities stay; the REST event handler
    # (with its Swagger UI) and the utilities nothing here imports go
    "aws_lambda_powertools/event_handler",
    *(
        f"aws_lambda_powertools/utilities/{name}"
        for name in (
            "auth_alpha",
            "circuit_breaker",
            "data_masking",
            "feature_flags",
            "idempotency",
            "kafka",
            "parameters",
            "streaming",
            "validation",
        )
    ),
    # LiteRT: the interpreter stays; compiler plugins, tools and the WebGPU accelerator go, and
    # libLiteRt.so, the CompiledModel runtime, which the Interpreter only tries to open for
    # accelerators (it runs the same without it: the bundle test compares its answers)
    "ai_edge_litert/tools",
    "ai_edge_litert/vendors",
    "ai_edge_litert/aot",
    "ai_edge_litert/*Accelerator*.so",
    "ai_edge_litert/libLiteRt.so",
    "ai_edge_litert/*_pb2.py",
    "ai_edge_litert/schema_py_generated.py",
    "ai_edge_litert/tflite",
    # pydantic 1's API, which nothing here uses: FastAPI imports it only to refuse pydantic 1
    # models, and takes an ImportError to mean there are none
    "pydantic/v1",
    # LiteRT's dependencies that its interpreter never imports
    "tqdm",
    "ml_dtypes",
    "google",
    # Pillow: PNG and JPEG decoding stays; AVIF, WebP, fonts and colour management go
    "PIL/_avif.*.so",
    "PIL/_webp.*.so",
    "PIL/_imagingft.*.so",
    "PIL/_imagingcms.*.so",
    "PIL/_imagingtk.*.so",
    "pillow.libs/libavif*",
    "pillow.libs/libwebp*",
    "pillow.libs/libsharpyuv*",
    "pillow.libs/libfreetype*",
    "pillow.libs/libharfbuzz*",
    "pillow.libs/libbrotli*",
    "pillow.libs/libpng16*",
    "pillow.libs/liblcms2*",
)


# NumPy 2 imports these lazily, on first use, which the functions never make; NumPy 1 imports them
# with numpy itself, so they stay in the python3.11 bundle.
STRIP_NUMPY_2 = ("numpy/random", "numpy/fft", "numpy/polynomial", "numpy/ma")


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (PYTHON313=... overrides; then pyenv's; then PATH)."""
    candidates = [os.environ.get(f"PYTHON{version.replace('.', '')}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))]
    candidates.append(shutil.which(f"python{version}"))
    for candidate in candidates:
        if not candidate:
            continue
        done = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(root: Path, target: Target) -> bool:
    """Compile every module under ``root`` with the target's Python; False if there is none.

    Lambda's code folder is read-only, so Python cannot cache bytecode there: a bundle without
    it compiles every module it imports on every cold start (docs/measurements.md: 1.9 s instead
    of 0.7 s to the first answer on this project's machine). The bytecode is hash-based and
    unchecked (PEP 552), so the zip's timestamps do not matter, and names its sources as
    Lambda sees them (/var/task/...), for tracebacks.
    """
    python = find_python(target.python)
    if python is None:
        print(
            f"warning: no python{target.python} here (set PYTHON{target.python.replace('.', '')}"
            "=...): the bundle ships without bytecode, so every cold start compiles it",
            file=sys.stderr,
        )
        return False
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            "-p",
            LAMBDA_TASK_ROOT,
            str(root),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return True


def strip_bundle(root: Path, target: Target) -> int:
    """Apply :data:`STRIP` under ``root`` and strip debug symbols; returns the bytes saved."""
    before = folder_size(root)
    numpy_2 = any(root.glob("numpy-2.*.dist-info"))
    for pattern in STRIP + (STRIP_NUMPY_2 if numpy_2 else ()):
        for path in sorted(root.glob(pattern), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
    models = root / "botocore" / "data"
    for service in models.iterdir() if models.is_dir() else ():
        if service.is_dir() and service.name not in AWS_SERVICES:
            shutil.rmtree(service)
    strip = shutil.which("strip")
    if strip and target.machine == os.uname().machine:  # GNU strip knows this machine's ELF
        libraries = [str(p) for p in root.rglob("*.so*") if p.is_file()]
        subprocess.run([strip, "--strip-unneeded", *libraries], check=False, capture_output=True)
    return before - folder_size(root)


def lambda_requirements(target: Target) -> list[str]:
    """The ``lambda`` extra's closure in uv.lock for ``target``: pinned, with every hash."""
    return lockfile.requirements_for("lambda", target.python, target.machine)


def install(target: Target, output_dir: Path, *, release: bool = False) -> None:
    """Fill ``output_dir`` with the wheels for ``target`` and the serving package (and, with
    ``release``, the modules of :data:`RELEASE_MODULES`)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        str(output_dir),
        "--implementation",
        "cp",
        "--python-version",
        target.python,
        "--only-binary=:all:",
        "--upgrade",
    ]
    for platform in target.platforms:
        command += ["--platform", platform]
    # Exactly the lock: every package named with its hashes, none resolved anew.
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(lambda_requirements(target)) + "\n")
        # pip checks Requires-Python against the running interpreter, not --python-version,
        # when it installs from hashed requirements: the lock already chose each version for
        # the target's Python (its markers evaluated by lockfile), and the wheel tags hold.
        command += ["--require-hashes", "--no-deps", "--ignore-requires-python"]
        command += ["-r", str(requirements)]
        subprocess.run(command, check=True)
    shutil.copytree(
        PACKAGE,
        output_dir / "classifier",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )
    for module in RELEASE_MODULES if release else ():
        (output_dir / module.parent.name).mkdir(exist_ok=True)
        shutil.copy2(module, output_dir / module.parent.name / module.name)
    strip_bundle(output_dir, target)
    compile_bytecode(output_dir, target)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@jsii.implements(cdk.ILocalBundling)
class LocalBundling:
    """CDK's hook for bundling on this machine instead of in a Docker container."""

    def __init__(self, target: Target, release: bool = False) -> None:
        self.target = target
        self.release = release

    def try_bundle(self, output_dir: str, options: Any = None, **_: Any) -> bool:
        out = Path(output_dir)
        install(self.target, out, release=self.release)
        size = folder_size(out)
        if size > LAMBDA_LIMIT_BYTES:
            raise RuntimeError(
                f"the bundle is {size / 2**20:.0f} MB unzipped; Lambda allows 250 MB"
            )
        print(
            f"bundled {PACKAGE.name} for python{self.target.python} {self.target.machine}: "
            f"{size / 2**20:.1f} MB unzipped",
            file=sys.stderr,
        )
        return True


def source_hash(target: Target, release: bool = False) -> str:
    """Changes when the serving code, its requirements or the target change (not otherwise)."""
    digest = hashlib.sha256(f"{target.python}:{target.machine}:{target.platforms}".encode())
    digest.update("\n".join(STRIP + STRIP_NUMPY_2 + AWS_SERVICES).encode())
    # A machine that gains the target's Python bundles again, with bytecode this time.
    digest.update(b"bytecode" if find_python(target.python) else b"sources")
    # The locked versions and their hashes: two machines build one bundle under one hash.
    digest.update("\n".join(lambda_requirements(target)).encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    for path in RELEASE_MODULES if release else ():
        digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def lambda_code(target: Target, *, release: bool = False) -> lambda_.Code:
    """The serving code as a Lambda asset, bundled locally (Docker is never used); with
    ``release``, the retraining pipeline's code beside it."""
    return lambda_.Code.from_asset(
        str(PACKAGE.parent),
        asset_hash=source_hash(target, release),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Required by the API, never pulled: local bundling always succeeds or raises.
            image=lambda_.Runtime(
                f"python{target.python}", lambda_.RuntimeFamily.PYTHON
            ).bundling_image,
            local=LocalBundling(target, release),
        ),
    )
