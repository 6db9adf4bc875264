"""Settings read from the environment, in this one place.

The infrastructure (infra/) imports these names to set the very same variables on the Lambdas.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from classifier.core import MAX_PIXELS

MODEL_URI = "MODEL_URI"  # s3://bucket/models/latest/manifest.json, or a local path
UPLOADS_PREFIX = "UPLOADS_PREFIX"  # where the S3 classifier expects images
RESULTS_PREFIX = "RESULTS_PREFIX"  # where it writes results (and which it never reads)
MAX_BODY_BYTES = "MAX_BODY_BYTES"  # largest accepted request body / image object
MAX_IMAGE_PIXELS = "MAX_IMAGE_PIXELS"  # largest accepted image, in pixels
TFLITE_NUM_THREADS = "TFLITE_NUM_THREADS"  # interpreter threads (unset: runtime default)
TFLITE_RUNTIME = "TFLITE_RUNTIME"  # "tflite-runtime" or "ai-edge-litert" (unset: first installed)
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"

REPO_MODEL = Path(__file__).resolve().parents[2] / "models" / "latest" / "manifest.json"
DEFAULT_BODY_BYTES = 4 * 1024 * 1024  # API Gateway/Lambda allow 6 MB, base64 makes 4 MiB of it
DEFAULT_NAMESPACE = "Cifar10Classifier"
MAX_BATCH_FILES = 32


@dataclass(frozen=True)
class Settings:
    model_uri: str
    uploads_prefix: str = "uploads/"
    results_prefix: str = "results/"
    max_body_bytes: int = DEFAULT_BODY_BYTES
    max_image_pixels: int = MAX_PIXELS
    num_threads: int | None = None
    runtime: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        threads = env.get(TFLITE_NUM_THREADS)
        return cls(
            model_uri=env.get(MODEL_URI) or str(REPO_MODEL),
            uploads_prefix=env.get(UPLOADS_PREFIX, "uploads/"),
            results_prefix=env.get(RESULTS_PREFIX, "results/"),
            max_body_bytes=int(env.get(MAX_BODY_BYTES, DEFAULT_BODY_BYTES)),
            max_image_pixels=int(env.get(MAX_IMAGE_PIXELS, MAX_PIXELS)),
            num_threads=int(threads) if threads else None,
            runtime=env.get(TFLITE_RUNTIME) or None,
        )
