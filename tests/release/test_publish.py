"""release/publish.py: verified, models/<version>/ first, latest last; broken, mismatched,
incomplete or badly quantised runs refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from release.publish import PublishError, publish
from tests.conftest import (
    PLOTS,
)


# --- publishing ---------------------------------------------------------------------------------
def test_publish_to_s3_writes_the_version_then_latest_last(
    tiny_run: dict[str, Any], aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    run_dir = Path(tiny_run["run_dir"])
    version = json.loads((run_dir / "manifest.json").read_text())["model_version"]
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        order: list[str] = []
        s3.meta.events.register(
            "before-parameter-build.s3.PutObject", lambda params, **_: order.append(params["Key"])
        )
        monkeypatch.setattr(boto3, "client", lambda *a, **k: s3)
        keys = publish(run_dir, "s3://models/prefix")
        assert order == keys
        assert order[-1] == "prefix/models/latest/manifest.json"
        expected = {
            f"prefix/models/{version}/{n}"
            # the float weights (model.keras) too, for fine-tuning
            for n in ("model.tflite", "manifest.json", "metrics.json", *PLOTS, "model.keras")
        }
        assert set(order[:-1]) == expected
        latest = json.loads(s3.get_object(Bucket="models", Key=order[-1])["Body"].read())
        assert latest["model_path"] == f"../{version}/model.tflite"
        head = s3.head_object(Bucket="models", Key=f"prefix/models/{version}/model.tflite")
        assert head["ContentLength"] == (run_dir / "model.tflite").stat().st_size
        assert s3.head_object(Bucket="models", Key=order[-1])["ContentType"] == "application/json"


def copy_run(tiny_run: dict[str, Any], tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run["run_dir"], run_dir)
    return run_dir


def test_publish_refuses_a_model_that_does_not_match_its_manifest(
    tiny_run: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = copy_run(tiny_run, tmp_path)
    model = run_dir / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    with pytest.raises(PublishError, match="does not match the manifest"):
        publish(run_dir, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing is written, latest least of all"


def test_publish_refuses_a_model_the_runtime_cannot_load(
    tiny_run: dict[str, Any], tmp_path: Path
) -> None:
    run_dir = copy_run(tiny_run, tmp_path)
    junk = b"not a flatbuffer" * 64
    (run_dir / "model.tflite").write_bytes(junk)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["files"]["model.tflite"] = {"sha256": hashlib.sha256(junk).hexdigest(), "bytes": 1024}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PublishError, match="does not load as served"):
        publish(run_dir, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "models" / "latest").exists()


def test_publish_checks_the_uploaded_copy_before_latest_moves(
    tiny_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from release import publish as publishing

    write = publishing.Destination.write

    def corrupting(self: Any, key: str, body: bytes) -> str:
        return write(self, key, b"torn" + body if key.endswith(".tflite") else body)

    monkeypatch.setattr(publishing.Destination, "write", corrupting)
    with pytest.raises(PublishError, match="is not the run's model"):
        publish(Path(tiny_run["run_dir"]), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "models" / "latest").exists()


def test_publish_refuses_an_incomplete_run(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"model_version": "v", "model_path": "model.tflite"})
    )
    with pytest.raises(FileNotFoundError, match=r"model\.tflite"):
        publish(tmp_path, str(tmp_path / "out"))


def test_publish_as_a_candidate_leaves_latest_to_the_gate(
    tiny_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from release.publish import main as publish_main

    out = tmp_path / "bucket"
    assert publish_main([str(tiny_run["run_dir"]), str(out), "--candidate"]) == 0
    (version,) = [p.name for p in (out / "models").iterdir()]
    assert version != "latest" and (out / "models" / version / "model.tflite").is_file()
    assert f"make promote VERSION={version}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("int8", "allowed", "published"), [(0.86, 0.05, True), (0.84, 0.05, False), (0.5, 1.0, True)]
)
def test_an_int8_model_far_below_its_float_model_is_not_published(
    tmp_path: Path, int8: float, allowed: float, published: bool
) -> None:
    from release.publish import PublishError, check_int8

    manifest = {
        "metrics": {
            "float_test_accuracy": 0.9,
            "int8_test_accuracy": int8,
            "int8_minus_float": int8 - 0.9,
        },
        "recipe": {"max_int8_loss": allowed},
        "data": {"test_images": 10_000},
    }
    if published:
        check_int8(manifest, tmp_path)
    else:
        with pytest.raises(PublishError, match=r"6\.0 points below .* not published"):
            check_int8(manifest, tmp_path)
