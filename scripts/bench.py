"""This project's serving side by side with the report's way, in one run: `make bench`.

    python -m scripts.bench [--event events/apigw-v2-multipart.json] [--runs 300] [--cold 7]
                            [--json FILE] [--skip-bundles] [--skip-s3]

Rows (medians; this machine's CPU, not Lambda's: 1024 MB is about 0.6 vCPU there):

- warm: ``handler(event)`` through Mangum after the model is loaded, one call at a time (p50, p90).
- cold, in-process: a fresh process of the development environment per sample, from before
  ``import classifier.api`` to the first answer (imports + model load + first inference).
- cold, as in Lambda: the default target's bundle, built here, copied to a clean folder and run
  by that target's Python with ``-B -S -E`` (Lambda's code folder is read-only: nothing is
  cached between cold starts), with and without the bytecode the bundle ships.
- the report's way: a fresh process that imports FastAPI and TensorFlow, loads the model in
  ``tf.lite.Interpreter`` and answers one image (the student report's server), timed the same way.
- one int8 pass: set_tensor + invoke + get_tensor, batch of 1, one thread, 500 after 50, each
  runtime in its own process (TensorFlow's interpreter too: it breaks tflite-runtime in-process).
- bundle size: each target's bundle, installed and stripped as ``cdk synth`` does it.
- drop folder: ``scripts/bench_uploads.py`` (every S3 call 30 ms, in-memory S3), batches of 10
  and of 50 (the deployed default).
- peak RSS of the warm process; cost per million API requests: AWS's published prices (Lambda
  $0.20 per million requests + $0.0000166667 per GB-second on x86_64, $0.0000133334 on arm64,
  billed per ms; HTTP API $1.00 per million) at 1024 MB for the warm p50 measured here.
- cost by upload (:func:`upload_costs`): what people send (a 32 px PNG, a 200 KB photo, a 4 MB
  photo), as the file (the page before) and as the page's reduction (scripts/client.for_upload,
  the same pixels): its warm p50 measured here, the HTTP API metered in 512 KB steps of the
  request, and the init phase Lambda bills since August 2025 (the cold start as in Lambda,
  measured here) at ``--cold-rate`` of the requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from classifier.contract import Env
from classifier.settings import REPO_MODEL

from training import ROOT, machine

MODEL = Path(os.environ.get(Env.MODEL_URI) or REPO_MODEL)  # --candidate re-runs with another
# From before the import of the handler to its first answer; argv: the code folder, the event.
# BENCH_APP=minimal: the floor to compare with, a minimal FastAPI + Mangum + LiteRT app in the
# same bundle that reads the multipart image, runs six views in one invoke and answers JSON.
FIRST_ANSWER = """
import json, os, sys, time
start = time.perf_counter()
sys.path[:0] = [sys.argv[1]]
if os.environ.get("BENCH_APP") == "minimal":
    import io
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from fastapi import FastAPI, Request
    from mangum import Mangum
    from PIL import Image
    manifest_path = os.environ["MODEL_URI"]
    manifest = json.load(open(manifest_path))
    interpreter = Interpreter(
        model_path=os.path.join(os.path.dirname(manifest_path), manifest["model_path"])
    )
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], [6, 32, 32, 3])
    interpreter.allocate_tensors()
    classes = len(manifest["class_names"])  # the answers, not the features output
    sink = next(d for d in interpreter.get_output_details() if d["shape"][-1] == classes)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        form = await request.form()
        image = Image.open(io.BytesIO(await form["file"].read())).convert("RGB")
        pixels = np.asarray(image.resize((32, 32), Image.Resampling.BOX), np.float32)
        scale, zero = source["quantization"]
        views = np.repeat(np.clip(np.rint(pixels / scale + zero), -128, 127)[None], 6, axis=0)
        interpreter.set_tensor(source["index"], views.astype(source["dtype"]))
        interpreter.invoke()
        logits = interpreter.get_tensor(sink["index"]).astype(np.float32).mean(axis=0)
        return {"category": manifest["class_names"][int(logits.argmax())]}

    handler = Mangum(app, lifespan="off")
else:
    from classifier.api import handler
class Context:
    function_name = "bench"; memory_limit_in_mb = 1024; aws_request_id = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
response = handler(json.load(open(sys.argv[2])), Context())
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
ONE_INVOKE = """
import statistics, sys, time
import numpy as np

runtime, model = sys.argv[1:3]
if runtime == "tensorflow":
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
elif runtime == "ai-edge-litert":
    from ai_edge_litert.interpreter import Interpreter
else:
    from tflite_runtime.interpreter import Interpreter
interpreter = Interpreter(model_path=model, num_threads=1)
interpreter.allocate_tensors()
source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
pixels = np.zeros(source["shape"], source["dtype"])
def one():
    interpreter.set_tensor(source["index"], pixels)
    interpreter.invoke()
    return interpreter.get_tensor(sink["index"])
for _ in range(50):
    one()
times = []
for _ in range(500):
    start = time.perf_counter()
    one()
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1000)
"""
LAMBDA_PER_MILLION = 0.20
GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
HTTP_API_PER_MILLION = 1.00
HTTP_API_STEP = 512 * 1024  # HTTP APIs meter a request per 512 KB of it
MEMORY_GB = 1.0  # the functions' 1024 MB


def median_of(samples: int, command: list[str], **kwargs: Any) -> float:
    """The median of the last line each run of ``command`` prints (seconds -> milliseconds)."""
    return alternating_medians(samples, command, [kwargs.pop("env", None)], **kwargs)[0]


def alternating_medians(
    samples: int, command: list[str], envs: list[dict[str, str] | None], **kwargs: Any
) -> list[float]:
    """``median_of`` for each environment, their runs taking turns: a slower spell of the
    machine falls on each alike, so their ratio is the difference between them."""
    values: list[list[float]] = [[] for _ in envs]
    for _ in range(samples):
        for env, found in zip(envs, values):
            done = subprocess.run(
                command, capture_output=True, text=True, check=True, env=env, **kwargs
            )
            found.append(float(done.stdout.strip().splitlines()[-1]))
    return [statistics.median(v) * 1000 for v in values]


def one_pass_ms(runtime: str, model_file: str, env: dict[str, str]) -> float | str:
    done = subprocess.run(
        [sys.executable, "-c", ONE_INVOKE, runtime, model_file],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if done.returncode:
        return "unavailable: " + (done.stderr.strip().splitlines() or ["?"])[-1][:80]
    return round(float(done.stdout.strip().splitlines()[-1]), 3)


def bundles(workdir: Path) -> dict[str, Path]:
    """Each target's bundle, built here as `cdk synth` builds it."""
    from infra.components.bundling import TARGETS, install

    built = {}
    saved = os.dup(2)
    for name, target in TARGETS.items():
        folder = workdir / name
        with open(os.devnull, "w") as quiet:
            os.dup2(quiet.fileno(), 2)  # pip's warnings about this machine's package mirrors
            try:
                install(target, folder)
            finally:
                os.dup2(saved, 2)
        built[name] = folder
    os.close(saved)
    return built


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def lambda_cold_ms(
    bundle: Path, event: Path, samples: int, *, bytecode: bool, models: list[Path]
) -> list[float] | str:
    """First answer from a clean copy of ``bundle``, run as Lambda runs it (read-only, no
    site), serving each of ``models`` in turn: their medians."""
    from infra.components.bundling import DEFAULT_TARGET, TARGETS, find_python

    python = find_python(TARGETS[DEFAULT_TARGET].python)
    if python is None:
        return f"unavailable: no python{TARGETS[DEFAULT_TARGET].python}"
    with tempfile.TemporaryDirectory() as tmp:
        task_root = Path(tmp) / "task"
        shutil.copytree(bundle, task_root)
        if not bytecode:
            for cache in list(task_root.rglob("__pycache__")):
                shutil.rmtree(cache)
        envs: list[dict[str, str] | None] = [
            {Env.MODEL_URI: str(model), "PATH": "/usr/bin:/bin", "HOME": tmp} for model in models
        ]
        # The minimal app on the served model takes its turn beside them (the last median).
        envs.append({**envs[0], "BENCH_APP": "minimal"})  # type: ignore[dict-item]
        command = [python, "-B", "-S", "-E", "-c", FIRST_ANSWER, str(task_root), str(event)]
        return [round(v, 1) for v in alternating_medians(samples, command, envs, cwd=tmp)]


def drop_folder_rate(batch_size: int, env: dict[str, str]) -> int:
    out = subprocess.run(
        [
            *(sys.executable, str(ROOT / "scripts" / "bench_uploads.py"), "--s3", "memory"),
            *("--threads", "10", "--batch-size", str(batch_size)),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    row = [line for line in out.stdout.splitlines() if line.startswith("| memory |")][-1]
    return int(row.split("|")[3])


def cost_per_million(
    duration_ms: float,
    architecture: str,
    *,
    request_bytes: int = 0,
    cold_rate: float = 0.0,
    init_ms: float = 0.0,
) -> float:
    """Dollars per million requests: Lambda's requests and billed milliseconds (the init phase
    of the ``cold_rate`` share that start a new environment included), the HTTP API's metering
    (one request per started 512 KB)."""
    billed_s = (np.ceil(duration_ms) + cold_rate * np.ceil(init_ms)) / 1000
    lambda_usd = LAMBDA_PER_MILLION + 1e6 * billed_s * MEMORY_GB * GB_SECOND[architecture]
    steps = max(1, -(-request_bytes // HTTP_API_STEP))
    return round(lambda_usd + steps * HTTP_API_PER_MILLION, 2)


def uploads() -> dict[str, bytes]:
    """What people send, made from one test image: files of the sizes the cost table names."""
    from PIL import Image

    from training import photos

    pixels = np.asarray(Image.open(ROOT / "imgs" / "ship.png").convert("RGB"))
    return {
        "32 px PNG": (ROOT / "imgs" / "ship.png").read_bytes(),
        "200 KB photo (1280x960)": photos.phone_photo(pixels, (1280, 960), quality=85, grain=7),
        "4 MB photo (4032x3024)": photos.phone_photo(pixels),
    }


def upload_costs(runs: int, init_ms: float, cold_rate: float) -> dict[str, Any]:
    """Per upload and way (file, reduction): bytes sent, warm p50 and dollars per million."""
    from scripts.client import for_upload
    from scripts.make_events import BOUNDARY, http_v2, multipart

    out: dict[str, Any] = {}
    for name, data in uploads().items():
        media = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        for way, (body, sent_as) in (("file", (data, media)), ("reduced", for_upload(data))):
            request = multipart("upload", body, sent_as)
            form = f"multipart/form-data; boundary={BOUNDARY}"
            event = http_v2("POST", "/predict", request, form)
            ms = statistics.median(warm(event, runs))
            out[f"{name}, {way}"] = {
                "request_bytes": len(request),
                "warm_p50_ms": round(ms, 2),
                **{
                    f"usd_per_million_{arch}": cost_per_million(
                        ms, arch, request_bytes=len(request), cold_rate=cold_rate, init_ms=init_ms
                    )
                    for arch in GB_SECOND
                },
            }
    return out


def warm(event: Path | dict[str, Any], runs: int) -> list[float]:
    import logging

    from classifier.api import handler, logger

    from scripts.invoke import LocalContext

    logger.setLevel(logging.WARNING)  # keep the log line per request out of the timing
    body = json.loads(event.read_text()) if isinstance(event, Path) else event
    context = LocalContext()
    assert handler(body, context)["statusCode"] == 200
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = handler(body, context)
        times.append((time.perf_counter() - start) * 1000)
        assert response["statusCode"] == 200
    return sorted(times)


def views_cost(event: Path, runs: int) -> dict[str, float]:
    """Warm /predict p50 with each test-time view set, the served model, one process: what the
    six views (one batched invoke) cost beside one view."""
    from dataclasses import replace

    from classifier import service
    from classifier.core import TTA_VIEWS

    classifier = service.classifier()
    served = classifier.inference
    out = {}
    try:
        for tta in TTA_VIEWS:
            classifier.inference = replace(served, tta=tta)
            out[tta] = round(statistics.median(warm(event, runs)), 2)
    finally:
        classifier.inference = served
    return out


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("--event", type=Path, default=ROOT / "events" / "apigw-v2-multipart.json")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cold", type=int, default=7)
    parser.add_argument("--report-cold", type=int, default=5, help="samples of the report's way")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--skip-bundles", action="store_true", help="no bundle rows (faster)")
    parser.add_argument("--skip-s3", action="store_true", help="no drop-folder rows (faster)")
    parser.add_argument(
        "--cold-rate",
        type=float,
        default=0.01,
        help="share of requests that start a new Lambda environment, for the billed init",
    )
    parser.add_argument(
        "--candidate",
        type=Path,
        help="another model's manifest: its warm, cold and cost rows beside the served model's, "
        "measured in this same run",
    )
    return parser.parse_args(argv)


def cold_rows(args: argparse.Namespace, env: dict[str, str], model_file: str) -> dict[str, Any]:
    """First answers in fresh processes: ours (a candidate's taking turns with it), the
    report's way, one int8 pass per runtime."""
    r: dict[str, Any] = {}
    first_answer = [sys.executable, "-c", FIRST_ANSWER, str(ROOT / "functions"), str(args.event)]
    envs: list[dict[str, str] | None] = [env]
    if args.candidate:
        envs.append({**env, Env.MODEL_URI: str(args.candidate.resolve())})
    found = alternating_medians(args.cold, first_answer, envs)
    r["cold_in_process_ms"] = round(found[0], 1)
    if args.candidate:
        r["candidate"] = {"cold_in_process_ms": round(found[1], 1)}
    reports_code = REPORTS_WAY.format(model=model_file, image=str(ROOT / "imgs" / "cat.png"))
    r["reports_way_cold_ms"] = round(
        median_of(
            args.report_cold,
            [sys.executable, "-c", reports_code],
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        ),
        1,
    )
    for runtime in ("ai-edge-litert", "tflite-runtime", "tensorflow"):
        r[f"one_pass_ms_{runtime}"] = one_pass_ms(runtime, model_file, env)
    return r


def bundle_rows(args: argparse.Namespace) -> dict[str, Any]:
    """The Lambda bundles' sizes and their cold starts as Lambda runs them; with a candidate,
    its cold starts too, taking turns with today's model's (under ``candidate``)."""
    r: dict[str, Any] = {}
    models = [MODEL.resolve()] + ([args.candidate.resolve()] if args.candidate else [])
    with tempfile.TemporaryDirectory() as tmp:
        built = bundles(Path(tmp))
        for name, folder in built.items():
            r[f"bundle_mb_{name}"] = size_mb(folder)
        from infra.components.bundling import DEFAULT_TARGET

        for bytecode in (True, False):
            key = "lambda_cold_ms_" + ("bytecode" if bytecode else "sources_only")
            found = lambda_cold_ms(
                built[DEFAULT_TARGET], args.event, args.cold, bytecode=bytecode, models=models
            )
            r[key] = found if isinstance(found, str) else found[0]
            if args.candidate and not isinstance(found, str):
                r.setdefault("candidate", {})[key] = found[1]
            if bytecode and not isinstance(found, str):
                # Issue 37's budget: within 1.15x of the minimal app, both as Lambda runs them.
                r["lambda_cold_ms_minimal_app"] = found[-1]
                r["lambda_cold_vs_minimal_app"] = round(found[0] / found[-1], 2)
    return r


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = options(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    model_file = str((MODEL.parent / json.loads(MODEL.read_text())["model_path"]).resolve())
    r: dict[str, Any] = {}

    # First, before anything else is imported here: the peak RSS is the serving process's.
    times = warm(args.event, args.runs)
    r["warm_p50_ms"] = round(statistics.median(times), 2)
    r["warm_p90_ms"] = round(times[int(0.9 * (len(times) - 1))], 2)
    r["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for tta, ms in views_cost(args.event, args.runs).items():
        r[f"warm_p50_ms_views_{tta}"] = ms

    # A candidate's cold starts are measured here, taking turns with today's (the rest of its
    # rows come from a process serving it, below).
    paired: dict[str, Any] = {}
    for rows in (cold_rows(args, env, model_file), {} if args.skip_bundles else bundle_rows(args)):
        paired.update(rows.pop("candidate", {}))
        r.update(rows)
    if not args.skip_s3:
        for batch in (10, 50):
            r[f"drop_folder_images_per_s_batch_{batch}"] = drop_folder_rate(batch, env)

    r["cold_speedup_vs_reports_way"] = round(r["reports_way_cold_ms"] / r["cold_in_process_ms"], 1)
    for architecture in GB_SECOND:
        r[f"usd_per_million_api_requests_{architecture}"] = cost_per_million(
            r["warm_p50_ms"], architecture
        )
    # The init of cold starts as Lambda bills it: measured on the bundle, else in-process.
    init_ms = r.get("lambda_cold_ms_bytecode") or r["cold_in_process_ms"]
    r["cold_rate"] = args.cold_rate
    r["upload_costs"] = upload_costs(max(20, args.runs // 10), init_ms, args.cold_rate)

    from classifier import service

    classifier = service.classifier()
    print(
        f"# {machine.describe()}, Python {platform.python_version()} "
        f"(bundle: its target's), {classifier.runtime}, model {classifier.model_version}\n"
    )
    print(table(r, args))
    if args.candidate:
        r["candidate"] = {**candidate_rows(args, env), **paired}
        print("\n" + compare(r, r["candidate"]))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return r


def candidate_rows(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The warm measurements for ``--candidate``, in a fresh process serving it (its cold
    starts are the parent's, taking turns with today's model)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "candidate.json"
        command = [sys.executable, __file__, "--skip-s3", "--skip-bundles", "--json", str(out)]
        command += ["--runs", str(args.runs), "--cold", "1", "--report-cold", "1"]
        subprocess.run(
            command,
            check=True,
            env={**env, Env.MODEL_URI: str(args.candidate.resolve())},
            stdout=subprocess.DEVNULL,
        )
        return dict(json.loads(out.read_text()))


# The served costs a new model may have, against today's in the same run (issue 25's budget).
LIMITS = {"warm_p50_ms": 2.5, "lambda_cold_ms_bytecode": 1.2, "cold_in_process_ms": 1.2}


def compare(today: dict[str, Any], candidate: dict[str, Any]) -> str:
    lines = ["| served cost | today's model | candidate | ratio (limit) |", "|---|---|---|---|"]
    for key, limit in LIMITS.items():
        a, b = today.get(key), candidate.get(key)
        if isinstance(a, float) and isinstance(b, float):
            lines.append(f"| {key} | {a} | {b} | {b / a:.2f}x ({limit}x) |")
    key = "usd_per_million_api_requests_x86_64"
    lines.append(f"| {key} | ${today[key]:.2f} | ${candidate[key]:.2f} | (at most $1.30) |")
    return "\n".join(lines)


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    """The figures as docs/measurements.md's table."""

    def get(key: str, unit: str = "") -> str:
        value = r.get(key)
        return "-" if value is None else f"{value}{unit if isinstance(value, float) else ''}"

    bundles = ", ".join(
        f"{k.removeprefix('bundle_mb_')} {v} MB" for k, v in r.items() if k.startswith("bundle_mb_")
    )
    rows = [
        (
            "`POST /predict` through Mangum, warm",
            f"p50 {get('warm_p50_ms', ' ms')}, p90 {get('warm_p90_ms', ' ms')}",
            "",
        ),
        (
            "warm `/predict` p50 by test-time views",
            f"six views (one invoke) {get('warm_p50_ms_views_mirror-translate', ' ms')}",
            f"one view {get('warm_p50_ms_views_none', ' ms')}; "
            f"two {get('warm_p50_ms_views_mirror', ' ms')}",
        ),
        (
            "cold process to first answer",
            get("cold_in_process_ms", " ms"),
            f"the report's way {get('reports_way_cold_ms', ' ms')} "
            f"({get('cold_speedup_vs_reports_way')}x slower)",
        ),
        (
            "cold start as in Lambda (bundle, read-only)",
            f"{get('lambda_cold_ms_bytecode', ' ms')} with its bytecode, "
            f"{get('lambda_cold_ms_sources_only', ' ms')} without",
            f"a minimal FastAPI + Mangum + LiteRT app {get('lambda_cold_ms_minimal_app', ' ms')} "
            f"({get('lambda_cold_vs_minimal_app')}x)",
        ),
        (
            "one int8 pass, one thread",
            f"LiteRT {get('one_pass_ms_ai-edge-litert', ' ms')}",
            f"TensorFlow {get('one_pass_ms_tensorflow', ' ms')}; "
            f"tflite-runtime {get('one_pass_ms_tflite-runtime', ' ms')}",
        ),
        ("bundle, unzipped", bundles or "-", ""),
        (
            "drop folder, 30 ms per S3 call, 10 I/O threads",
            f"{get('drop_folder_images_per_s_batch_50')} images/s (batches of 50, the default)",
            f"batches of 10: {get('drop_folder_images_per_s_batch_10')} images/s",
        ),
        ("peak RSS, warm process", get("peak_rss_mb", " MB"), ""),
        (
            "cost per million API requests at 1024 MB",
            f"${r['usd_per_million_api_requests_x86_64']:.2f} x86_64, "
            f"${r['usd_per_million_api_requests_arm64']:.2f} arm64 (same duration assumed)",
            "",
        ),
    ]
    lines = ["| what | this project | for comparison |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n\n" + cost_table(r)


def cost_table(r: dict[str, Any]) -> str:
    """Dollars per million requests by what is uploaded, as the file and as the page sends it."""
    lines = [
        f"| upload (1024 MB, {r['cold_rate']:.0%} cold starts billed) | bytes sent | warm p50 "
        "| $ per million, x86_64 | arm64 |",
        "|---|---|---|---|---|",
    ]
    for name, row in r.get("upload_costs", {}).items():
        lines.append(
            f"| {name} | {row['request_bytes']:,} | {row['warm_p50_ms']} ms "
            f"| ${row['usd_per_million_x86_64']:.2f} | ${row['usd_per_million_arm64']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
