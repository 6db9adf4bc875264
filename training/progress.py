"""What a run prints and times: one line per stage, and each stage's seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Stopwatch:
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str, start: float) -> float:
        self.seconds[stage] = round(time.monotonic() - start, 2)
        return self.seconds[stage]


def log(stage: str, message: str) -> None:
    print(f"[{stage:>8}] {message}", flush=True)
