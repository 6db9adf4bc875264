"""Drop-folder throughput per container when every S3 call takes 30 ms (injected), side by side.

    python -m scripts.bench_uploads [--images 200] [--latency-ms 30] [--threads 1 10]
                                    [--batch-size 10] [--s3 memory moto]

Batches of ``--batch-size`` SQS messages (infra's ``uploads_batch_size`` is the deployed
size) go through ``classifier.upload_classifier.process`` one after another, as one container takes
them; inference is single-threaded (TFLITE_NUM_THREADS=1) and serialised, so only S3 waits
overlap. Each S3 request of the function's client first sleeps the given latency, as a real
round trip would. Two S3s:

- ``memory``: a dict answering GetObject, HeadObject and (conditional) PutObject from botocore's
  ``before-send`` hook, so the function's botocore work (signing, checksums, parsing) is real and
  S3's own work costs nothing, as it does for a function calling the real S3;
- ``moto``: a moto server in its own process; its CPU (several ms a request here) shares the
  machine with the function and becomes the ceiling.

Prints images per second for each S3 and I/O thread count.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TFLITE_NUM_THREADS": "1",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_DISABLED": "true",
}.items():
    os.environ.setdefault(name, value)

from scripts.local_server import free_port  # noqa: E402 - after the settings above

BUCKET = "bench-uploads"


def start_s3() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server in another process; returns it and its endpoint once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)  # noqa: S310 - http only
            return server, endpoint
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the moto server did not start")


def with_latency(client: Any, seconds: float) -> Any:
    """Every request of ``client`` waits ``seconds`` before it is sent (a network round trip)."""
    client.meta.events.register_first("before-send.s3", lambda **_: time.sleep(seconds))
    return client


class RawBody(io.BytesIO):
    """A response body as botocore reads it from urllib3."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


class MemoryS3:
    """Objects in a dict, served to botocore from its ``before-send`` hook (no HTTP, no moto)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _headers(request: Any) -> dict[str, str]:
        return {
            k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
        }

    def _body(self, request: Any) -> bytes:
        body = request.body
        data = body.read() if hasattr(body, "read") else bytes(body or b"")
        if "aws-chunked" in self._headers(request).get("Content-Encoding", ""):
            size, _, rest = data.partition(b"\r\n")  # one chunk, then the trailer
            data = rest[: int(size, 16)]
        return data

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> Any:
        from botocore.awsrequest import AWSResponse

        return AWSResponse("https://s3.amazonaws.com", status, headers, RawBody(body))

    def _error(self, status: int, code: str) -> Any:
        xml = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
        return self._answer(status, {"Content-Type": "application/xml"}, xml)

    def __call__(self, request: Any, **_: Any) -> Any:
        url = urlsplit(request.url)
        where = (url.hostname or "").split(".")[0], unquote(url.path.lstrip("/"))
        with self.lock:
            stored = self.objects.get(where)
            if request.method == "PUT":
                headers = self._headers(request)
                if stored and headers.get("If-None-Match") == "*":
                    return self._error(412, "PreconditionFailed")
                expected = headers.get("If-Match")
                if expected and (not stored or expected != stored[1]["ETag"]):
                    return self._error(412, "PreconditionFailed")
                data = self._body(request)
                meta = {k: v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")}
                etag = f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 - S3's ETag, not security
                self.objects[where] = data, {"ETag": etag, **meta}
                return self._answer(200, {"ETag": etag})
        if stored is None:
            return self._error(404, "NoSuchKey")
        data, headers = stored
        headers = {**headers, "Content-Length": str(len(data)), "Content-Type": "image/png"}
        return self._answer(200, headers, data if request.method == "GET" else b"")


@contextmanager
def s3_backend(kind: str) -> Iterator[Any]:
    """Point boto3 at the S3 of ``kind``; yields a function that wires a client to it."""
    if kind == "moto":
        server, endpoint = start_s3()
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            yield lambda client: client
        finally:
            del os.environ["AWS_ENDPOINT_URL"]
            server.terminate()
            server.wait()
        return
    memory = MemoryS3()

    def wire(client: Any) -> Any:
        client.meta.events.register_last("before-send.s3", memory)
        return client

    yield wire


def main(argv: list[str] | None = None) -> dict[tuple[str, int], float]:
    parser = argparse.ArgumentParser(prog="scripts/bench_uploads.py", description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--s3", nargs="+", choices=["memory", "moto"], default=["memory", "moto"])
    args = parser.parse_args(argv)

    import boto3
    from classifier import contract, service, upload_classifier

    from scripts.events import s3_event, s3_record, sqs_event, sqs_message

    images = sorted((ROOT / "imgs").glob("*.png"))
    rates: dict[tuple[str, int], float] = {}
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.images} images, batches of {args.batch_size}, {args.latency_ms:g} ms per S3 call"
    )
    print("| S3 | I/O threads | images/s | seconds |")
    print("|---|---|---|---|")
    for kind in args.s3:
        with s3_backend(kind) as wire:
            setup = wire(boto3.client("s3"))
            setup.create_bucket(Bucket=BUCKET)
            for threads in args.threads:
                os.environ["IO_THREADS"] = str(threads)
                service.reset()
                upload_classifier._io_pool = None
                messages = []
                for i in range(args.images):
                    key = f"{contract.UPLOADS_PREFIX}t{threads}/{i:05d}.png"
                    body = images[i % len(images)].read_bytes()
                    setup.put_object(Bucket=BUCKET, Key=key, Body=body)
                    record = s3_record(BUCKET, key, sequencer=f"{i + 1:016X}")
                    messages.append(sqs_message(s3_event(record)))
                service.classifier()  # loaded before timing, as in a warm container
                with_latency(wire(service.s3_client()), args.latency_ms / 1000)
                start = time.perf_counter()
                for i in range(0, len(messages), args.batch_size):
                    response = upload_classifier.process(
                        sqs_event(*messages[i : i + args.batch_size])
                    )
                    assert response == {"batchItemFailures": []}, response
                seconds = time.perf_counter() - start
                written = [
                    setup.head_object(
                        Bucket=BUCKET, Key=f"{contract.RESULTS_PREFIX}t{threads}/{i:05d}.png.json"
                    )
                    for i in (0, args.images - 1)
                ]
                assert all(w["ResponseMetadata"]["HTTPStatusCode"] == 200 for w in written)
                rates[kind, threads] = args.images / seconds
                print(f"| {kind} | {threads} | {rates[kind, threads]:.0f} | {seconds:.2f} |")
                sys.stdout.flush()
            service.reset()
    return rates


if __name__ == "__main__":
    main()
