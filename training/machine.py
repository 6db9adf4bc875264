"""What machine a figure was measured on: the CPU's name, its cores, and the instruction sets
that decide training and int8 speed (machines here differ up to 10x)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags that change which precision trains fastest and how fast int8 kernels run.
SPEED_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe() -> str:
    """e.g. 'AMD EPYC, 2 cores, avx512_bf16 avx512_vnni avx512f avx2'."""
    flags = cpu_flags()
    shown = " ".join(f for f in SPEED_FLAGS if f in flags) or "no AVX2"
    return f"{cpu_name()}, {os.cpu_count()} cores, {shown}"
