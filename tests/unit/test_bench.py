"""The benchmark's cold starts: today's model and a candidate take turns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.bench import alternating_medians

# Prints its VALUE (seconds) after noting it in ORDER: which environment ran when.
NOTE_AND_PRINT = (
    "import os; open(os.environ['ORDER'], 'a').write(os.environ['VALUE'] + ' '); "
    "print(os.environ['VALUE'])"
)


def test_each_environment_runs_in_turn_and_gets_its_own_median(tmp_path: Path) -> None:
    order = tmp_path / "order"
    envs: list[dict[str, str] | None] = [
        {**os.environ, "ORDER": str(order), "VALUE": value} for value in ("0.25", "0.5")
    ]
    found = alternating_medians(3, [sys.executable, "-c", NOTE_AND_PRINT], envs)
    assert found == [250.0, 500.0]
    assert order.read_text().split() == ["0.25", "0.5"] * 3
