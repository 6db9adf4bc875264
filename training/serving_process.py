"""The serving code's checks in a fresh process that never imports TensorFlow.

tflite-runtime's Interpreter breaks in a process that has imported TensorFlow, and the number a
run or a gate reports must be the one the Lambdas would give: so training, publishing, promotion
and the feedback demo all run ``release.evaluate``, ``release.verify`` and ``release.publish``
through this module, with the serving code importable as the Lambdas import it. The training job
reaches the release road only this way, never by importing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from training import ROOT


class ServingProcessError(RuntimeError):
    """The process failed; the message is its last error line."""


def run(module: str, *args: str, given: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` from the repository root, serving code on the path, with
    ``given`` on its standard input."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        input=given,
    )


def failure_reason(done: subprocess.CompletedProcess[str]) -> str:
    """The last line a failed process wrote to stderr (its error), or that it wrote nothing."""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else "no output"


def verify(manifest: Path) -> dict[str, Any]:
    """``release.verify``: the model loads as served and answers; its report."""
    done = run("release.verify", str(manifest))
    if done.returncode != 0:
        raise ServingProcessError(failure_reason(done))
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def publish(run_dir: Path, destination: str, *, candidate: bool = False) -> str:
    """``release.publish``: the run verified and copied to ``destination``; what it printed."""
    done = run(
        "release.publish", str(run_dir), destination, *(["--candidate"] if candidate else [])
    )
    if done.returncode != 0:
        raise ServingProcessError(failure_reason(done))
    return done.stdout.strip()


def evaluate(
    manifest: Path,
    *args: str,
    show_output: bool = False,
    draft: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``release.evaluate`` on ``manifest`` with its options (``--data``, ``--arrays``,
    ``--calibrate-on``, ...): its JSON result. With ``draft`` (a run's manifest fields),
    ``manifest`` is the run folder and no manifest is written. ``show_output`` prints what it
    wrote on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        drafted = ["--draft"] if draft is not None else []
        given = json.dumps(draft) if draft is not None else None
        done = run(
            "release.evaluate", str(manifest), "--json", str(out), *drafted, *args, given=given
        )
        if done.returncode != 0:
            if show_output:
                sys.stderr.write(done.stdout + done.stderr)
            raise ServingProcessError(failure_reason(done))
        return dict(json.loads(out.read_text()))
