"""The machine named beside every training figure: CPU, cores and the speed-deciding flags."""

from training import machine

CPUINFO = """processor	: 0
model name	: Example CPU 9000
flags		: fpu sse2 avx2 avx512f avx512_vnni sha_ni
"""


def test_the_description_names_the_cpu_cores_and_speed_flags(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: CPUINFO)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    assert machine.describe() == "Example CPU 9000, 2 cores, avx512_vnni avx512f avx2"


def test_a_cpu_without_avx2_says_so(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "model name\t: Old CPU\nflags\t: sse2\n")
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 4)
    assert machine.describe() == "Old CPU, 4 cores, no AVX2"
