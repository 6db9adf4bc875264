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
