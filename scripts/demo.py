"""The whole product on one machine, then everything it started is stopped.

1. the API (uvicorn) on the repository's model, models/latest/manifest.json; without one (before
   a model is trained and published) it trains a small stand-in model first, and says so;
2. the original report's client over imgs/: each file with its category, and a contact sheet;
3. the S3-upload classifier over the same PNGs against a local S3 (moto in server mode): the
   PNGs go under uploads/, an S3 event per object goes to the handler, and the JSON results it
   wrote under results/ are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from classifier import contract
from classifier.contract import Env
from classifier.settings import REPO_MODEL

from scripts import client, events, local_server
from scripts.invoke import LocalContext

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-output"
DATA = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"
BUCKET = "demo-uploads"


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def model_manifest() -> Path:
    """The repository's model, or a quick stand-in trained now (said loudly)."""
    published = REPO_MODEL
    if published.is_file():
        return published
    stand_in = OUT / "stand-in" / "models" / "latest" / "manifest.json"
    if stand_in.is_file():
        print(f"NOTE: no published model in models/; using the stand-in at {stand_in}")
        return stand_in
    if not DATA.is_dir():
        raise SystemExit(
            "no published model in models/ and no data set at ../shared/datasets/cifar10-jpeg "
            "to train a stand-in: run `make train DATA=<folder>` first"
        )
    print("NOTE: no published model in models/ yet: training a small STAND-IN model (~1 min)")
    command = [sys.executable, "-m", "training.train", "--data", str(DATA), "--limit", "5000"]
    command += ["--epochs", "3", "--widths", "16,32,32", "--out", str(OUT / "runs")]
    command += ["--upload", str(OUT / "stand-in")]
    subprocess.run(command, check=True, cwd=ROOT)
    return stand_in


def api_and_client(manifest: Path, port: int) -> None:
    banner(f"API on http://127.0.0.1:{port} (model {manifest.relative_to(ROOT)})")
    # The server's JSON request logs would interleave with the client's lines below.
    server = local_server.start(port, manifest=manifest, log_level="WARNING")
    try:
        url = f"http://127.0.0.1:{port}"
        print(json.dumps(httpx.get(f"{url}/health").json()))
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "CIFAR-10 classifier" in page.text
        print(f"web page: {url}/ (this demo stops the server; `make serve` keeps it up)")
        banner("client: every PNG in imgs/ to POST /predict")
        results = client.classify_folder(url, ROOT / "imgs")
        sheet = client.contact_sheet(results, OUT / "contact_sheet.png")
        agree = sum(r.get("category") == r["file"].stem for r in results)
        print(
            f"{agree}/{len(results)} agree with their file names; contact sheet: "
            f"{sheet.relative_to(ROOT)}"
        )
    finally:
        local_server.stop(server)


@contextmanager
def local_s3(manifest: Path) -> Iterator[str]:
    """A moto S3 server on a free port, with this process's AWS settings pointed at it (and
    put back afterwards); yields its endpoint."""
    import logging

    from classifier import service
    from moto.server import ThreadedMotoServer

    # One line per result is the demo's output; the handler's JSON logs and metrics and the
    # S3 server's access log would drown it.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", Env.MODEL_URI)}
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ[Env.MODEL_URI] = str(manifest)
    try:
        service.reset()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        service.reset()


def s3_handler(manifest: Path) -> None:
    banner("S3-upload classifier against a local S3 (moto server)")
    with local_s3(manifest):
        from classifier import service  # after local_s3 has quieted its logs
        from classifier.upload_classifier import handler

        s3 = service.s3_client()
        s3.create_bucket(Bucket=BUCKET)
        etags = {}
        for path in sorted((ROOT / "imgs").glob("*.png")):
            key, body = f"{contract.UPLOADS_PREFIX}{path.name}", path.read_bytes()
            put = s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/png")
            etags[key] = put["ETag"].strip('"'), len(body)
        print(f"uploaded {len(etags)} PNGs to s3://{BUCKET}/uploads/")
        for key, (etag, size) in etags.items():
            event = events.s3_event(events.s3_record(BUCKET, key, etag=etag, size=size))
            handler(event, LocalContext(function_name="cifar10-uploads"))
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=contract.RESULTS_PREFIX)["Contents"]
        banner(f"{len(listing)} results written under s3://{BUCKET}/results/")
        for item in listing:
            result = json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
            print(
                f"{item['Key']:<28} {result.get('category', 'error'):<11} "
                f"{result.get('confidence', 0):.2f}  etag {result['etag'][:8]}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    manifest = model_manifest()
    api_and_client(manifest, args.port)
    s3_handler(manifest)
    banner("demo done: server and local S3 stopped")


if __name__ == "__main__":
    main()
