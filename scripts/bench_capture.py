"""The review queue under a burst: what capture keeps, what it refuses, and what it costs.

    make bench-capture                  # python -m scripts.bench_capture [--requests 20]

A local S3 (moto server) and the local API server with capture on for every answer
(``CAPTURE=all``) and the default hourly bound; then a stranger's burst: ``--requests`` batches
of one noise PNG sent 32 times, then as many batches of 32 distinct ones (4.3 MB each with
``--side 1200``), and the distinct burst again with capture off for comparison. Prints items
kept, answers refused by the bound or as repeats, the largest stored copy, and each request's
median time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import time
from typing import Any

import httpx
import numpy as np
from classifier import contract
from classifier.contract import Env
from classifier.core import sha256_hex
from PIL import Image

from scripts import local_server
from training.machine import describe

BATCH = 32


def noise_png(seed: int, side: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def burst(url: str, batches: list[list[bytes]]) -> list[float]:
    """Each batch as one POST /predict/batch; the seconds each took."""
    times = []
    with httpx.Client(timeout=120) as client:
        for batch in batches:
            files = [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(batch)]
            start = time.perf_counter()
            client.post(f"{url}/predict/batch", files=files).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def serve_and_send(capture: str, batches: list[list[bytes]], bucket: str) -> list[float]:
    os.environ.update({"CAPTURE": capture, "REVIEW_BUCKET": bucket})
    port = local_server.free_port()
    server = local_server.start(port, quiet=True)
    try:
        return burst(f"http://127.0.0.1:{port}", batches)
    finally:
        local_server.stop(server)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="scripts/bench_capture.py", description=__doc__)
    parser.add_argument("--requests", type=int, default=10, help="batches of 32 in the burst")
    parser.add_argument("--side", type=int, default=32, help="each noise PNG's side, pixels")
    args = parser.parse_args(argv)
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the local S3's access log
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3_server.start()
    host, port = s3_server.get_host_and_port()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    s3 = boto3.client("s3")
    bucket = f"bench-capture-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    distinct = [
        [noise_png(r * BATCH + i, args.side) for i in range(BATCH)] for r in range(args.requests)
    ]
    repeated = [[noise_png(10**6, args.side)] * BATCH] * args.requests
    off = serve_and_send("none", distinct, bucket)
    on = serve_and_send("all", repeated + distinct, bucket)
    images = s3.list_objects_v2(Bucket=bucket, Prefix=contract.REVIEW_IMAGES_PREFIX)
    stored = [o["Size"] for o in images.get("Contents", [])]
    items = [
        json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=contract.REVIEW_ITEMS_PREFIX).get(
            "Contents", []
        )
    ]
    repeated_digest = sha256_hex(repeated[0][0])
    kept_repeats = sum(item["sha256"] == repeated_digest for item in items)
    figures = {
        "machine": describe(),
        "sent_distinct": len(distinct) * BATCH,
        "sent_repeats": len(repeated) * BATCH,
        "image_bytes": len(distinct[0][0]),
        "bound_per_hour": Env.DEFAULT_CAPTURE_PER_HOUR,
        "items_kept": len(items),
        "distinct_refused_by_bound": len(distinct) * BATCH - (len(items) - kept_repeats),
        "repeats_kept": kept_repeats,
        "largest_stored_bytes": max(stored, default=0),
        "median_seconds_per_request": {
            "capture_off": round(statistics.median(off), 3),
            "capture_on_repeats": round(statistics.median(on[: args.requests]), 3),
            "capture_on_distinct": round(statistics.median(on[args.requests :]), 3),
        },
    }
    print(json.dumps(figures, indent=2))
    s3_server.stop()
    return figures


if __name__ == "__main__":
    main()
