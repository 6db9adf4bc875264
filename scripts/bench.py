"""Latency of the API Lambda, measured in-process through Mangum with the v2 event.

    python scripts/bench.py [--event events/apigw-v2-multipart.json] [--runs 300] [--cold 7]

warm: the median (and p90) of ``handler(event)`` after the model is loaded, one call at a time.
cold: a fresh Python process per sample, timing from before ``import classifier.api`` to the
first answer (imports + model load + first inference), median of the samples. Neither includes
the Lambda service's own start-up or the network; both use MODEL_URI (default: the repo model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLD = """
import json, sys, time
start = time.perf_counter()
from classifier.api import handler
sys.path.insert(0, {scripts!r})
from invoke import LocalContext
event = json.load(open({event!r}))
response = handler(event, LocalContext())
elapsed = time.perf_counter() - start
assert response["statusCode"] == 200, response
print(elapsed)
"""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("--event", type=Path, default=ROOT / "events" / "apigw-v2-multipart.json")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cold", type=int, default=7)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}

    colds = []
    for _ in range(args.cold):
        code = COLD.format(scripts=str(ROOT / "scripts"), event=str(args.event))
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        colds.append(float(out.stdout.strip().splitlines()[-1]))

    sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "scripts")]
    import logging

    from classifier.api import handler, logger
    from invoke import LocalContext

    logger.setLevel(logging.WARNING)  # keep the log line per request out of the timing
    event = json.loads(args.event.read_text())
    context = LocalContext()
    assert handler(event, context)["statusCode"] == 200
    warm = []
    for _ in range(args.runs):
        start = time.perf_counter()
        response = handler(event, context)
        warm.append(time.perf_counter() - start)
        assert response["statusCode"] == 200
    warm_ms = sorted(w * 1000 for w in warm)
    result = {
        "warm_p50_ms": round(statistics.median(warm_ms), 2),
        "warm_p90_ms": round(warm_ms[int(0.9 * (len(warm_ms) - 1))], 2),
        "cold_first_answer_p50_ms": round(statistics.median(colds) * 1000, 1),
        "cold_samples": len(colds),
        # Peak resident memory of this process (handler, model, 300 requests): sizes the Lambda.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "warm_runs": len(warm),
    }
    from classifier import service

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{service.classifier().runtime}, model {service.classifier().model_version}"
    )
    print(f"event: {args.event.name}")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
