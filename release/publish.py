"""Publish a run: verified, ``models/<version>/`` first, ``models/latest/manifest.json`` last.

    python -m release.publish runs/<run> s3://bucket[/prefix] | ./folder

The destination is ``s3://bucket/prefix`` or a local folder; both get the same layout. This is the
one writer of ``latest`` (a deploy never moves it). Before ``latest`` moves:

1. the run's model is loaded by the serving code in a TensorFlow-free process and must answer
   (``release.verify``): schema, size, sha256, quantisation, a first prediction;
2. the copy just written to ``models/<version>/`` is read back and must match its manifest.

Writing the latest pointer last means a reader following it never finds a manifest whose model is
missing or different.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from classifier import contract
from classifier import manifest as mf
from classifier.core import ModelError

from training import serving_process

CONTENT_TYPES = {".json": "application/json", ".png": "image/png", ".keras": "application/zip"}


class PublishError(RuntimeError):
    """The run cannot be published; ``latest`` was not moved."""


def verify_in_serving_process(manifest_path: Path) -> dict[str, Any]:
    """``release.verify`` in a TensorFlow-free process; PublishError with its reason."""
    try:
        return serving_process.verify(manifest_path)
    except serving_process.ServingProcessError as exc:
        raise PublishError(f"{manifest_path.parent} does not load as served: {exc}") from exc


class Destination:
    """An S3 prefix or a local folder, written and read back by key."""

    def __init__(self, destination: str) -> None:
        self.s3: Any = None
        if destination.startswith("s3://"):
            import boto3

            self.bucket, _, prefix = destination[len("s3://") :].partition("/")
            self.prefix = prefix.strip("/")
            self.s3 = boto3.client("s3")
        else:
            self.root = Path(destination)

    def where(self, key: str) -> str:
        if self.s3 is None:
            return str(self.root / key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, body: bytes) -> str:
        where = self.where(key)
        if self.s3 is None:
            Path(where).parent.mkdir(parents=True, exist_ok=True)
            Path(where).write_bytes(body)
        else:
            content_type = CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")
            self.s3.put_object(Bucket=self.bucket, Key=where, Body=body, ContentType=content_type)
        return where

    def read(self, key: str) -> bytes:
        """The object's bytes; OSError (FileNotFoundError where it does not exist) otherwise."""
        where = self.where(key)
        if self.s3 is None:
            return Path(where).read_bytes()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=where)["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"s3://{self.bucket}/{where} does not exist") from exc
            raise OSError(f"s3://{self.bucket}/{where}: {exc}") from exc
        except BotoCoreError as exc:
            raise OSError(f"s3://{self.bucket}/{where}: {exc}") from exc


def publish(run_dir: Path, destination: str, *, verify: bool = True) -> list[str]:
    """Copy a verified run to ``destination``; returns the keys or paths written, in order."""
    written, raw = _copy_run(run_dir, destination, verify=verify)
    written.append(_write_latest(destination, raw))  # last
    return written


def publish_candidate(run_dir: Path, destination: str, *, verify: bool = True) -> list[str]:
    """Copy a verified run to ``models/<version>/`` only: a candidate, ``latest`` untouched.

    What the cloud training job writes; ``release.promote`` later gates it and moves latest.
    """
    return _copy_run(run_dir, destination, verify=verify)[0]


def _copy_run(run_dir: Path, destination: str, *, verify: bool) -> tuple[list[str], bytes]:
    """Write ``models/<version>/`` and check the copy; the keys written and its manifest."""
    files = mf.published_files(run_dir)
    manifest = json.loads((run_dir / contract.MANIFEST_NAME).read_text())
    version = manifest["model_version"]
    check_int8(manifest, run_dir)
    if verify:
        verify_in_serving_process(run_dir / contract.MANIFEST_NAME)
    target = Destination(destination)
    written = [target.write(contract.model_key(version, p.name), p.read_bytes()) for p in files]
    return written, check_copy(destination, version)


DEFAULT_MAX_INT8_LOSS = 0.05  # for manifests written before the recipe recorded its own


def check_int8(manifest: dict[str, Any], run_dir: Path) -> None:
    """Refuse an int8 model that lost more than its recipe's ``max_int8_loss`` on its float
    model: a broken quantisation must not reach users (on a small test split a few images are
    noise)."""
    metrics = manifest["metrics"]
    max_loss = manifest["recipe"].get("max_int8_loss", DEFAULT_MAX_INT8_LOSS)
    lost = -metrics["int8_minus_float"]
    if lost > max(max_loss, 3 / max(1, manifest["data"]["test_images"])):
        raise PublishError(
            f"the int8 model scores {metrics['int8_test_accuracy']:.2%}, "
            f"{lost * 100:.1f} points below the float model's "
            f"{metrics['float_test_accuracy']:.2%} (at most {max_loss * 100:g} allowed); "
            f"not published. Both are in {run_dir}"
        )


def point_latest(destination: str, version: str) -> str:
    """Move ``models/latest`` to ``models/<version>/``, after checking the copy there.

    Reads back what readers of latest will get (manifest and model) and verifies it; only then
    writes the latest manifest. Returns the key or path written.
    """
    return _write_latest(destination, check_copy(destination, version))


def _write_latest(destination: str, checked_manifest: bytes) -> str:
    """Write the latest manifest for a copy that :func:`check_copy` has just checked."""
    latest = json.dumps(mf.latest_manifest(json.loads(checked_manifest)), indent=2).encode()
    return Destination(destination).write(
        contract.model_key(contract.LATEST, contract.MANIFEST_NAME), latest + b"\n"
    )


def check_copy(destination: str, version: str) -> bytes:
    """Read ``models/<version>/`` back and verify its model against its manifest; the manifest."""
    target = Destination(destination)
    try:
        raw = target.read(contract.model_key(version, contract.MANIFEST_NAME))
        uploaded = mf.Manifest.from_bytes(raw)
        uploaded.verify(target.read(contract.model_key(version, Path(uploaded.model_path).name)))
    except ModelError as exc:
        raise PublishError(f"the copy at {destination} is not the run's model: {exc}") from exc
    except OSError as exc:  # a missing object or file
        raise PublishError(
            f"{contract.MODELS_PREFIX}{version}/ cannot be read at {destination}: {exc}"
        ) from exc
    if uploaded.model_version != version:
        raise PublishError(
            f"{contract.model_key(version, contract.MANIFEST_NAME)} says it is "
            f"{uploaded.model_version}, not {version}"
        )
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.publish", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder (model.tflite, manifest.json)")
    parser.add_argument("destination", help="s3://bucket[/prefix] or a local folder")
    parser.add_argument(
        "--candidate",
        action="store_true",
        help="write models/<version>/ only, for `make promote` to gate (latest untouched)",
    )
    args = parser.parse_args(argv)
    try:
        if args.candidate:
            keys = publish_candidate(args.run_dir, args.destination)
        else:
            keys = publish(args.run_dir, args.destination)
    except (PublishError, FileNotFoundError) as exc:
        print(f"error: {exc}; models/latest was not moved", file=sys.stderr)
        return 1
    if args.candidate:
        version = json.loads((args.run_dir / contract.MANIFEST_NAME).read_text())["model_version"]
        print(f"candidate {version}: {len(keys)} files; next: make promote VERSION={version}")
    else:
        print(f"published {len(keys)} files to {args.destination}; latest is {keys[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
