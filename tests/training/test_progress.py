"""training/progress.py: one line per stage, and each stage's seconds kept for the manifest."""

from __future__ import annotations

import time

import pytest

from training.progress import Stopwatch, log


def test_a_lap_records_the_stages_seconds() -> None:
    clock = Stopwatch()
    start = time.monotonic() - 1.5
    assert clock.lap("train", start) >= 1.5
    assert set(clock.seconds) == {"train"} and clock.seconds["train"] >= 1.5


def test_a_log_line_names_its_stage(capsys: pytest.CaptureFixture[str]) -> None:
    log("evaluate", "int8 0.91")
    assert capsys.readouterr().out == "[evaluate] int8 0.91\n"
