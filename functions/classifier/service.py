"""Expensive things, made once per container at first use: settings, S3 client, classifier.

Tests reset them with :func:`reset` (after ``mock_aws`` starts or the environment changes).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

from classifier.core import Classifier, ModelError
from classifier.manifest import Manifest, resolve
from classifier.runtime import load_classifier
from classifier.settings import Settings, in_lambda


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def s3_client() -> Any:
    """S3 with Signature Version 4 at the region's own endpoint.

    A plain client signs presigned POSTs with SigV2 in some regions (buckets made since June
    2020 refuse it) and points them at the global endpoint, which answers a new bucket outside
    us-east-1 with a redirect that a browser's CORS request does not follow.
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "virtual"},
        # Bounded waits: an S3 that does not answer costs a request about 2 x (2 + 5) s, and
        # the API then answers 503 (classifier.api), well inside API Gateway's 30 s; botocore's
        # defaults (60 s reads, retried) once held GET /review/items for 180 s.
        connect_timeout=2,
        read_timeout=5,
        retries={"total_max_attempts": 2, "mode": "standard"},
    )
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    endpoint = None if custom else f"https://s3.{region}.{_dns_suffix(region)}"
    return session.client("s3", region_name=region, endpoint_url=endpoint, config=config)


@functools.cache
def capture_s3_client() -> Any:
    """S3 for capture: short timeouts and one retry, so keeping an answer for review costs an
    answer at most a few seconds even when S3 is slow (a failure is logged and counted)."""
    import boto3
    from botocore.config import Config

    base = s3_client()
    config = Config(
        signature_version="s3v4",
        connect_timeout=1,
        read_timeout=2,
        retries={"total_max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3", region_name=base.meta.region_name, endpoint_url=base.meta.endpoint_url, config=config
    )


@functools.cache
def secrets_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2})
    return boto3.client("secretsmanager", config=config)


def _dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


@functools.cache
def events_client() -> Any:
    import boto3

    return boto3.client("events")


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ModelError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def read_uri(uri: str) -> bytes:
    """Bytes of ``s3://bucket/key`` or a local path; a failure is a :class:`ModelError`."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        with open(uri, "rb") as f:
            return f.read()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot read {uri}: {exc}") from exc


def load_model(manifest_uri: str, *, num_threads: int | None = None, **kwargs: Any) -> Classifier:
    """The classifier described by the manifest at ``manifest_uri`` (model beside it, checked)."""
    manifest = Manifest.from_bytes(read_uri(manifest_uri))
    if manifest_uri.startswith("s3://"):
        model_uri = "s3://" + resolve(manifest_uri.removeprefix("s3://"), manifest.model_path)
    else:
        model_uri = resolve(manifest_uri, manifest.model_path)
    return load_classifier(read_uri(model_uri), manifest, num_threads=num_threads, **kwargs)


@functools.cache
def _classifier() -> Classifier:
    config = settings()
    return load_model(
        config.model_uri,
        num_threads=config.num_threads,
        runtime=config.runtime,
        max_pixels=config.max_image_pixels,
    )


def classifier() -> Classifier:
    """The container's classifier, loaded lazily once; a failed load is retried next call."""
    return _classifier()


def preload() -> None:
    """Load the model now if this is Lambda, so it happens in the init phase.

    The init phase is what SnapStart snapshots and provisioned concurrency runs ahead of traffic,
    and it has its own 10 s budget at full CPU. A failure is not raised here: the first request
    tries again and answers 503 with the reason. Locally (`make serve`, tests) nothing happens.
    """
    if not in_lambda():
        return
    with contextlib.suppress(ModelError):
        classifier()


def _refresh_after_restore() -> None:
    """SnapStart: connections opened before the snapshot are dead after a restore."""
    s3_client.cache_clear()
    events_client.cache_clear()


def _register_restore_hooks() -> None:
    try:  # Lambda's python3.12+ runtimes provide it where SnapStart may be on
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return
    register_after_restore(_refresh_after_restore)


_register_restore_hooks()


def reset() -> None:
    for cached in (
        settings,
        s3_client,
        capture_s3_client,
        secrets_client,
        events_client,
        _classifier,
    ):
        cached.cache_clear()
