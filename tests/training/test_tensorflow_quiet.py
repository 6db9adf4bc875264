"""training/tensorflow_quiet.py: what native code prints is held while a block runs, and shown
only if the block fails."""

from __future__ import annotations

import os

import pytest

from training.tensorflow_quiet import native_output_captured


def test_native_output_is_held_when_the_block_succeeds(capfd: pytest.CaptureFixture[str]) -> None:
    with native_output_captured():
        os.write(1, b"banner from native code\n")
    assert "banner" not in capfd.readouterr().out


def test_native_output_is_shown_when_the_block_fails(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), native_output_captured():
        os.write(2, b"the reason it failed\n")
        raise RuntimeError("failed")
    assert "the reason it failed" in capfd.readouterr().err
