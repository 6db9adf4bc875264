"""Drop-folder throughput per container when every S3 call takes 30 ms (injected), side by side.

    python scripts/bench_uploads.py [--images 200] [--latency-ms 30] [--threads 1 10]

S3 is moto, in this process; each GetObject, PutObject and HeadObject first sleeps the given
latency, as a real S3 round trip would. Batches of 10 SQS messages (the deployed batch size) go
through ``classifier.uploads.process``; inference is single-threaded (TFLITE_NUM_THREADS=1) and
serialised, so only S3 waits overlap. Prints images per second for each I/O thread count.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TFLITE_NUM_THREADS": "1",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_DISABLED": "true",
}.items():
    os.environ.setdefault(name, value)

BUCKET = "bench-uploads"


class SlowS3:
    """A client whose object calls first wait ``latency`` seconds, like a real round trip."""

    def __init__(self, client: Any, latency: float) -> None:
        self._client, self._latency = client, latency

    def _slow(self, name: str) -> Any:
        call = getattr(self._client, name)

        def slow(**kwargs: Any) -> Any:
            time.sleep(self._latency)
            return call(**kwargs)

        return slow

    def __getattr__(self, name: str) -> Any:
        if name in ("get_object", "put_object", "head_object"):
            return self._slow(name)
        return getattr(self._client, name)


def main(argv: list[str] | None = None) -> dict[int, float]:
    parser = argparse.ArgumentParser(prog="scripts/bench_uploads.py", description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args(argv)

    from classifier import service, uploads
    from moto import mock_aws

    from tests.functional.s3_events import s3_event, s3_record, sqs_event, sqs_message

    images = sorted((ROOT / "imgs").glob("*.png"))
    cached_client = service.s3_client
    rates: dict[int, float] = {}
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.images} images, batches of 10, {args.latency_ms:g} ms per S3 call"
    )
    print("| I/O threads | images/s | seconds |")
    print("|---|---|---|")
    for threads in args.threads:
        os.environ["IO_THREADS"] = str(threads)
        with mock_aws():
            service.reset()
            uploads._io_pool = None
            fast = service.s3_client()
            fast.create_bucket(Bucket=BUCKET)
            messages = []
            for i in range(args.images):
                key = f"uploads/{i:05d}.png"
                fast.put_object(Bucket=BUCKET, Key=key, Body=images[i % len(images)].read_bytes())
                record = s3_record(BUCKET, key, sequencer=f"{i + 1:016X}")
                messages.append(sqs_message(s3_event(record)))
            service.classifier()  # loaded before timing, as in a warm container
            slow = SlowS3(fast, args.latency_ms / 1000)
            service.s3_client = lambda slow=slow: slow  # type: ignore[assignment]
            start = time.perf_counter()
            for i in range(0, len(messages), 10):
                response = uploads.process(sqs_event(*messages[i : i + 10]))
                assert response == {"batchItemFailures": []}, response
            seconds = time.perf_counter() - start
            service.s3_client = cached_client  # type: ignore[assignment]
        rates[threads] = args.images / seconds
        print(f"| {threads} | {rates[threads]:.0f} | {seconds:.2f} |", flush=True)
    return rates


if __name__ == "__main__":
    main()
