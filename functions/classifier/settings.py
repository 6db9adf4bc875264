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
from classifier.contract import Env
from classifier.core import MAX_PIXELS, ModelError

T = TypeVar("T", int, float)


def in_lambda(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Lambda execution environment."""
    return bool((os.environ if env is None else env).get(Env.LAMBDA_FUNCTION_NAME))


REPO_MODEL = Path(__file__).resolve().parents[2] / contract.REPO_MODEL_PATH
DEFAULT_BODY_BYTES = 4 * 1024 * 1024  # API Gateway/Lambda allow 6 MB, base64 makes 4 MiB of it
# Two images at the per-image limit: the costliest such pair (16-bit RGBA PNGs) decodes within
# the time a request may take (`make bench-worst`; figures in docs/measurements.md).
DEFAULT_REQUEST_PIXELS = 2 * MAX_PIXELS
MAX_BATCH_FILES = 32


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
    capture_per_hour: int = Env.DEFAULT_CAPTURE_PER_HOUR
    reviewer_token_secret: str | None = None
    reviewer_token: str | None = None
    reviewer_claim: str = "scope=review"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings, or :class:`SettingsError` naming the variable that cannot be used."""
        env = os.environ if env is None else env
        threads = _integer(env, Env.TFLITE_NUM_THREADS, 0)
        settings = cls(
            model_uri=env.get(Env.MODEL_URI) or str(REPO_MODEL),
            uploads_prefix=_prefix(env, Env.UPLOADS_PREFIX, contract.UPLOADS_PREFIX),
            results_prefix=_prefix(env, Env.RESULTS_PREFIX, contract.RESULTS_PREFIX),
            max_body_bytes=_integer(env, Env.MAX_BODY_BYTES, DEFAULT_BODY_BYTES),
            max_object_bytes=_integer(env, Env.MAX_OBJECT_BYTES, contract.ASYNC_MAX_BYTES),
            uploads_bucket=env.get(Env.UPLOADS_BUCKET) or None,
            api_auth=env.get(Env.API_AUTH) or "none",
            event_bus=env.get(Env.EVENT_BUS) or None,
            max_image_pixels=_integer(env, Env.MAX_IMAGE_PIXELS, MAX_PIXELS),
            max_request_pixels=_integer(env, Env.MAX_REQUEST_PIXELS, DEFAULT_REQUEST_PIXELS),
            num_threads=threads or None,
            runtime=env.get(Env.TFLITE_RUNTIME) or None,
            io_threads=_integer(env, Env.IO_THREADS, 10),
            review_bucket=env.get(Env.REVIEW_BUCKET) or None,
            capture=_choice(env, Env.CAPTURE, contract.CAPTURE_MODES, "none"),
            capture_sample=_fraction(env, Env.CAPTURE_SAMPLE, 1.0),
            capture_per_hour=_integer(env, Env.CAPTURE_PER_HOUR, Env.DEFAULT_CAPTURE_PER_HOUR),
            reviewer_token_secret=env.get(Env.REVIEWER_TOKEN_SECRET) or None,
            reviewer_token=env.get(Env.REVIEWER_TOKEN) or None,
            reviewer_claim=_claim(env, Env.REVIEWER_CLAIM, "scope=review"),
        )
        if settings.uploads_prefix.startswith(settings.results_prefix):
            raise SettingsError(
                f"{Env.UPLOADS_PREFIX}={settings.uploads_prefix!r} lies inside "
                f"{Env.RESULTS_PREFIX}={settings.results_prefix!r}: results would be classified"
            )
        return settings
