"""Settings read from the environment, in this one place, checked when read.

The infrastructure (infra/) imports these names to set the very same variables on the Lambdas.
A value that cannot be used raises :class:`SettingsError`, which the API answers with 503 and
the reason (never 500), and the drop folder retries (then parks in the dead-letter queue).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from classifier import contract
from classifier.core import MAX_PIXELS, ModelError

T = TypeVar("T", int, float)

# The manifest to serve: s3://bucket/models/<version>/manifest.json (deployed functions are
# pinned to a version, never `latest`), or a local path.
MODEL_URI = "MODEL_URI"
UPLOADS_PREFIX = "UPLOADS_PREFIX"  # where the S3 classifier expects images
RESULTS_PREFIX = "RESULTS_PREFIX"  # where it writes results (and which it never reads)
MAX_BODY_BYTES = "MAX_BODY_BYTES"  # largest accepted request body / image object
MAX_OBJECT_BYTES = "MAX_OBJECT_BYTES"  # drop folder: largest object classified
API_AUTH = "API_AUTH"  # how the deployed API is protected: none, iam or jwt (the page adapts)
UPLOADS_BUCKET = "UPLOADS_BUCKET"  # API: where POST /uploads lets clients put images (unset: off)
EVENT_BUS = "EVENT_BUS"  # drop folder: EventBridge bus for completion events (unset: none sent)
MAX_IMAGE_PIXELS = "MAX_IMAGE_PIXELS"  # largest accepted image, in pixels
MAX_REQUEST_PIXELS = "MAX_REQUEST_PIXELS"  # most pixels one request may make us decode
IO_THREADS = "IO_THREADS"  # drop folder: S3 reads and writes in flight at once
TFLITE_NUM_THREADS = "TFLITE_NUM_THREADS"  # interpreter threads (unset: runtime default)
TFLITE_RUNTIME = "TFLITE_RUNTIME"  # "ai-edge-litert" or "tflite-runtime" (unset: first installed)
REVIEW_BUCKET = "REVIEW_BUCKET"  # where answers are captured and labels written (unset: off)
CAPTURE = "CAPTURE"  # which answers this function keeps for review: none, unsure or all
CAPTURE_SAMPLE = "CAPTURE_SAMPLE"  # with CAPTURE=all: the share of answers kept (0..1)
CAPTURE_PER_HOUR = "CAPTURE_PER_HOUR"  # most items all containers together keep in an hour
# auth none: the Secrets Manager secret's ARN; locally (make serve, the demo): the token itself
REVIEWER_TOKEN_SECRET = "REVIEWER_TOKEN_SECRET"  # noqa: S105 (a variable's name)
REVIEWER_TOKEN = "REVIEWER_TOKEN"  # noqa: S105 (a variable's name)
REVIEWER_CLAIM = "REVIEWER_CLAIM"  # auth jwt: "<claim>=<value>" a reviewer's token carries
LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda itself: we run in Lambda
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"


def in_lambda(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Lambda execution environment."""
    return bool((os.environ if env is None else env).get(LAMBDA_FUNCTION_NAME))


REPO_MODEL = Path(__file__).resolve().parents[2] / "models" / "latest" / "manifest.json"
DEFAULT_BODY_BYTES = 4 * 1024 * 1024  # API Gateway/Lambda allow 6 MB, base64 makes 4 MiB of it
# Two images at the per-image limit: the costliest such pair (16-bit RGBA PNGs) decodes within
# the time a request may take (`make bench-worst`; figures in docs/measurements.md).
DEFAULT_REQUEST_PIXELS = 2 * MAX_PIXELS
DEFAULT_NAMESPACE = contract.METRICS_NAMESPACE
MAX_BATCH_FILES = 32
# A reviewer labels a few hundred images an hour at most: more would only bury the queue.
DEFAULT_CAPTURE_PER_HOUR = 100


class SettingsError(ModelError):
    """An environment variable holds a value the service cannot use."""


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], T], kind: str) -> T | None:
    """The variable parsed, or None when it is unset or empty (the default applies unchecked)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not {kind}") from None


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    value = _parsed(env, name, int, "a whole number")
    if value is None:
        return default
    if value < minimum:
        raise SettingsError(f"setting {name}={value} is below its minimum, {minimum}")
    return value


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not value.endswith("/") or value.startswith("/"):
        raise SettingsError(f"setting {name}={value!r} must be a key prefix like {default!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"setting {name}={value!r} is not one of {', '.join(choices)}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _parsed(env, name, float, "a number")
    if value is None:
        return default
    if not 0 <= value <= 1:
        raise SettingsError(f"setting {name}={value} is not between 0 and 1")
    return value


def _claim(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    claim, _, wanted = value.partition("=")
    if not claim or not wanted:
        raise SettingsError(f"setting {name}={value!r} must be <claim>=<value>, like {default!r}")
    return value


@dataclass(frozen=True)
class Settings:
    model_uri: str
    uploads_prefix: str = contract.UPLOADS_PREFIX
    results_prefix: str = contract.RESULTS_PREFIX
    max_body_bytes: int = DEFAULT_BODY_BYTES
    max_object_bytes: int = contract.ASYNC_MAX_BYTES
    uploads_bucket: str | None = None
    api_auth: str = "none"
    event_bus: str | None = None
    max_image_pixels: int = MAX_PIXELS
    max_request_pixels: int = DEFAULT_REQUEST_PIXELS
    num_threads: int | None = None
    runtime: str | None = None
    io_threads: int = 10
    review_bucket: str | None = None
    capture: str = "none"
    capture_sample: float = 1.0
    capture_per_hour: int = DEFAULT_CAPTURE_PER_HOUR
    reviewer_token_secret: str | None = None
    reviewer_token: str | None = None
    reviewer_claim: str = "scope=review"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings, or :class:`SettingsError` naming the variable that cannot be used."""
        env = os.environ if env is None else env
        threads = _integer(env, TFLITE_NUM_THREADS, 0)
        settings = cls(
            model_uri=env.get(MODEL_URI) or str(REPO_MODEL),
            uploads_prefix=_prefix(env, UPLOADS_PREFIX, contract.UPLOADS_PREFIX),
            results_prefix=_prefix(env, RESULTS_PREFIX, contract.RESULTS_PREFIX),
            max_body_bytes=_integer(env, MAX_BODY_BYTES, DEFAULT_BODY_BYTES),
            max_object_bytes=_integer(env, MAX_OBJECT_BYTES, contract.ASYNC_MAX_BYTES),
            uploads_bucket=env.get(UPLOADS_BUCKET) or None,
            api_auth=env.get(API_AUTH) or "none",
            event_bus=env.get(EVENT_BUS) or None,
            max_image_pixels=_integer(env, MAX_IMAGE_PIXELS, MAX_PIXELS),
            max_request_pixels=_integer(env, MAX_REQUEST_PIXELS, DEFAULT_REQUEST_PIXELS),
            num_threads=threads or None,
            runtime=env.get(TFLITE_RUNTIME) or None,
            io_threads=_integer(env, IO_THREADS, 10),
            review_bucket=env.get(REVIEW_BUCKET) or None,
            capture=_choice(env, CAPTURE, contract.CAPTURE_MODES, "none"),
            capture_sample=_fraction(env, CAPTURE_SAMPLE, 1.0),
            capture_per_hour=_integer(env, CAPTURE_PER_HOUR, DEFAULT_CAPTURE_PER_HOUR),
            reviewer_token_secret=env.get(REVIEWER_TOKEN_SECRET) or None,
            reviewer_token=env.get(REVIEWER_TOKEN) or None,
            reviewer_claim=_claim(env, REVIEWER_CLAIM, "scope=review"),
        )
        if settings.uploads_prefix.startswith(settings.results_prefix):
            raise SettingsError(
                f"{UPLOADS_PREFIX}={settings.uploads_prefix!r} lies inside "
                f"{RESULTS_PREFIX}={settings.results_prefix!r}: results would be classified"
            )
        return settings
