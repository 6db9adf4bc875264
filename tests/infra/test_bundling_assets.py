"""infra/components/bundling.py: each target's bundle, complete, lean, locked, and running both
handlers."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_event
from tests.infra.conftest import resources, synth
from training.data import CIFAR10_CLASSES

pytestmark = [pytest.mark.slow, pytest.mark.infra]


# --- the bundled asset ---------------------------------------------------------------------------
def function_asset(synthesised: dict[str, Any], handler: str = "classifier.api.handler") -> Path:
    """The folder `cdk synth` bundled for the function whose handler is ``handler``."""
    (function,) = [
        r
        for r in resources(synthesised["raw"], "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
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
    return function_asset(synthesised if target == "python3.13-x86_64" else py311)


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
from classifier import api, upload_classifier, service
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
    "drop_folder": upload_classifier.handler(events["drop_folder"], Context()),
    "check": upload_classifier.handler(events["check"], Context()),
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


RUN_GATE_IN_BUNDLE = """
import json, sys
task_root, runtime_root, event = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path[:0] = [task_root]
sys.path.append(runtime_root)
from release import pipeline
assert pipeline.__file__.startswith(task_root), pipeline
print(json.dumps(pipeline.gate_handler(event)))
assert "tensorflow" not in sys.modules
"""


def test_the_retraining_gate_runs_from_its_bundle(
    synthesised: dict[str, Any],
    synthetic_data: dict[str, Any],
    tmp_path: Path,
    lambda_runtime_packages: Path,
    local_s3: str,
) -> None:
    """The pipeline's functions carry the release road: the real gate, from a clean copy of
    the asset, with the Lambda's Python, against a local S3."""
    import boto3

    from infra.components.bundling import find_python
    from release.cloud import data_archive
    from tests.conftest import ROOT

    python = find_python("3.13")
    if python is None:
        pytest.skip("no python3.13 on this machine to run the pipeline's bundle with")
    clean = tmp_path / "lambda-task-root"
    shutil.copytree(function_asset(synthesised, "release.pipeline.gate_handler"), clean)
    s3 = boto3.client(
        "s3",
        endpoint_url=local_s3,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    models, uploads = "gate-models", "gate-uploads"
    for bucket in (models, uploads):
        s3.create_bucket(Bucket=bucket)
    served, candidate = "20261205-184340-default-a91c0b13", "20261204-220138-default-874e1624"
    for version in (served, candidate):
        for name in ("manifest.json", "model.tflite"):
            body = (ROOT / "models" / version / name).read_bytes()
            s3.put_object(Bucket=models, Key=f"models/{version}/{name}", Body=body)
    s3.put_object(
        Bucket=models,
        Key="models/latest/manifest.json",
        Body=(ROOT / "models" / "latest" / "manifest.json").read_bytes(),
    )
    s3.upload_file(
        str(data_archive(Path(synthetic_data["folder"]), tmp_path)), models, "data/cifar10.tar"
    )
    job = "cifar10-retrain-bundle"
    record = json.dumps({"model_version": candidate})
    s3.put_object(Bucket=models, Key=f"sagemaker/output/{job}/candidate.json", Body=record)
    env = {
        "AWS_ENDPOINT_URL": local_s3,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MODELS_BUCKET": models,
        "UPLOADS_BUCKET": uploads,
        "CIFAR10_CACHE": str(tmp_path / "cache"),
    }
    event = json.dumps({"job": job, "served": served})
    done = subprocess.run(
        [
            python,
            "-B",
            "-S",
            "-E",
            "-c",
            RUN_GATE_IN_BUNDLE,
            str(clean),
            str(lambda_runtime_packages),
            event,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["candidate"] == candidate, result
    assert result["verdict"]["images"] == 100 and result["verdict"]["current"] == served
