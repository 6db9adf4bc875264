"""release/verify.py: a model loads as served, in a process that never imported TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import (
    CLASSES,
    subprocess_env,
)


def test_verify_loads_a_model_as_served_in_a_process_without_tensorflow(
    tiny_run: dict[str, Any],
) -> None:
    code = (
        "import sys; from release.verify import main; rc = main([sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(tiny_run["run_dir"]) / "manifest.json")],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["first_answer"] in CLASSES
    assert answer["runtime"].split()[0] in ("tflite-runtime", "ai-edge-litert")
