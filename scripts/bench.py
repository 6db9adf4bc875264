"""Latency of the API Lambda, measured in-process through Mangum with the v2 event, side by side
with the report's way of serving (FastAPI with full TensorFlow's interpreter loaded at start).

    python scripts/bench.py [--event events/apigw-v2-multipart.json] [--runs 300] [--cold 7]

warm: the median (and p90) of ``handler(event)`` after the model is loaded, one call at a time.
cold: a fresh Python process per sample, timing from before ``import classifier.api`` to the
first answer (imports + model load + first inference), median of the samples. Neither includes
the Lambda service's own start-up or the network; both use MODEL_URI (default: the repo model).
report's way: a fresh process per sample that imports FastAPI and TensorFlow, loads the model in
tf.lite.Interpreter and answers one image (the student report's server), timed the same way.
per pass: one int8 invoke of the model, batch of 1, one thread, median of 500, per runtime.
cost: AWS's published prices (Lambda x86_64 $0.20 per million requests + $0.0000166667 per
GB-second, billed per ms; HTTP API $1.00 per million) at 1024 MB for the warm p50 measured here,
which is this machine's CPU, not Lambda's (1024 MB is about 0.6 vCPU there).
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

import numpy as np

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


REPORTS_WAY = """
import io, sys, time
start = time.perf_counter()
import numpy as np
import tensorflow as tf
from fastapi import FastAPI
from PIL import Image
interpreter = tf.lite.Interpreter(model_path={model!r})
interpreter.allocate_tensors()
app = FastAPI()
image = Image.open(io.BytesIO(open({image!r}, "rb").read())).convert("RGB").resize((32, 32))
detail = interpreter.get_input_details()[0]
scale, zero = detail["quantization"]
pixels = np.clip(np.rint(np.asarray(image, np.float32) / scale + zero), -128, 127)
interpreter.set_tensor(detail["index"], pixels.astype(np.int8)[None])
interpreter.invoke()
interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print(time.perf_counter() - start)
"""
LAMBDA_PER_MILLION = 0.20
LAMBDA_GB_SECOND = 0.0000166667
HTTP_API_PER_MILLION = 1.00


def per_pass_ms(manifest: str, runtime: str, runs: int = 500) -> float:
    from classifier import service

    classifier = service.load_model(manifest, runtime=runtime, num_threads=1)
    pixels = np.zeros((1, *classifier.input_shape), np.uint8)
    for _ in range(50):
        classifier._run(pixels)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier._run(pixels)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


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
    parser.add_argument("--report-cold", type=int, default=3, help="samples of the report's way")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}

    colds = []
    for _ in range(args.cold):
        code = COLD.format(scripts=str(ROOT / "scripts"), event=str(args.event))
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        colds.append(float(out.stdout.strip().splitlines()[-1]))

    model = ROOT / "models" / "latest" / "manifest.json"
    model_file = str((model.parent / json.loads(model.read_text())["model_path"]).resolve())
    reports = []
    for _ in range(args.report_cold):
        code = REPORTS_WAY.format(model=model_file, image=str(ROOT / "imgs" / "cat.png"))
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            check=True,
        )
        reports.append(float(out.stdout.strip().splitlines()[-1]))

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
        "reports_way_cold_first_answer_p50_ms": round(statistics.median(reports) * 1000, 1)
        if reports
        else None,
    }
    if reports:
        result["cold_speedup_vs_reports_way"] = round(
            result["reports_way_cold_first_answer_p50_ms"] / result["cold_first_answer_p50_ms"], 1
        )
    for runtime in ("ai-edge-litert", "tflite-runtime"):
        try:
            result[f"int8_pass_ms_{runtime}"] = round(per_pass_ms(str(model), runtime), 3)
        except Exception as exc:  # noqa: BLE001 - a runtime not installed here is reported
            result[f"int8_pass_ms_{runtime}"] = f"unavailable: {exc}"
    billed_s = np.ceil(result["warm_p50_ms"]) / 1000
    result["usd_per_million_requests_1024mb_x86"] = round(
        LAMBDA_PER_MILLION + HTTP_API_PER_MILLION + 1e6 * billed_s * 1.0 * LAMBDA_GB_SECOND, 2
    )
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
