"""training/serving_process.py: the release road in a fresh TensorFlow-free process, its failure
named by its last error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PUBLISHED
from training import serving_process


def test_verify_answers_with_the_served_models_report() -> None:
    report = serving_process.verify(PUBLISHED)
    assert report["model_version"] == json.loads(PUBLISHED.read_text())["model_version"]
    assert report["runtime"].startswith("ai-edge-litert") and report["first_answer"]


def test_a_failed_publish_is_an_error_naming_why(tmp_path: Path) -> None:
    with pytest.raises(serving_process.ServingProcessError, match="lacks"):
        serving_process.publish(tmp_path / "no-such-run", str(tmp_path / "bucket"))
