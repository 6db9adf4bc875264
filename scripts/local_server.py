"""A local API server (uvicorn, as `make serve` runs it) for the benchmarks and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from classifier.contract import Env
from classifier.settings import REPO_MODEL

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    port: int,
    *,
    source: Path = ROOT,
    manifest: Path = REPO_MODEL,
    quiet: bool = False,
    log_level: str = "ERROR",
) -> subprocess.Popen[bytes]:
    """Serve ``source``'s functions/ on ``port``; returns once /health answers 200.

    The environment is this process's (tests set AWS endpoints, UPLOADS_BUCKET, API_AUTH there).
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(source / "functions"),
        Env.MODEL_URI: str(manifest),
        "POWERTOOLS_LOG_LEVEL": log_level,
    }
    command = [sys.executable, "-m", "uvicorn", "classifier.api:asgi", "--port", str(port)]
    output = subprocess.DEVNULL if quiet else None
    server = subprocess.Popen(
        [*command, "--log-level", "warning"], env=env, cwd=source, stdout=output, stderr=output
    )
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError(f"the local server on port {port} did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait()
