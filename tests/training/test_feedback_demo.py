"""`make feedback-demo` end to end on a small synthetic set: capture, review, learn, gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_on_synthetic


@pytest.mark.slow
def test_the_feedback_demo_runs_the_loop_and_reports_before_and_after(
    synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    options = ("--send", "40", "--corrections", "20", "--epochs", "1", "--json", str(out))
    done = run_on_synthetic("scripts.feedback_demo", synthetic_data, tmp_path, *options)
    figures = json.loads(out.read_text())
    assert figures["sent"] == 40 and 0 < figures["labelled"] <= min(20, figures["captured"])
    for kind in ("grey_and_dark_test", "clean_test"):
        assert 0 <= figures[kind]["before"] <= 1 and 0 <= figures[kind]["after"] <= 1
    assert figures["after_model"] != figures["before_model"]
    assert isinstance(figures["promoted"], bool)
    assert "soft targets: the served model's answers" in done.stdout + done.stderr


@pytest.mark.slow
def test_retrain_local_runs_the_pipelines_steps_and_reports_the_gate(
    synthetic_data: dict[str, Any], tmp_path: Path
) -> None:
    """`make retrain-local`: the check's request run by the job's entry point, the real gate."""
    out = tmp_path / "figures.json"
    options = ("--send", "40", "--corrections", "20", "--epochs", "1", "--json", str(out))
    options += ("--pipeline", "--auto-promote")
    done = run_on_synthetic("scripts.feedback_demo", synthetic_data, tmp_path, *options)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    pipeline = figures["pipeline"]
    assert pipeline["check"]["new"] == figures["labelled"] > 0
    assert pipeline["job"].startswith("cifar10-retrain-")
    gate = pipeline["gate"]
    assert gate["candidate"] == figures["after_model"] != figures["before_model"]
    assert gate["verdict"]["images"] > 0 and gate["message"] in done.stdout
    assert figures["promoted"] == gate["accepted"] == ("promotion" in pipeline)
    # The job started from the served model in the bucket, not the repository's folder, and
    # kept its head (the labels are the same: only the corrections are new).
    printed = done.stdout + done.stderr
    assert "from the float weights of s3://feedback-demo-models/models/" in printed
    assert "its head kept" in printed and "new head" not in printed
