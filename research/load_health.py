"""Does /health stay fast while /predict is busy? A local load run against `make serve`'s server.

    python -m research.load_health [--source DIR] [--clients 16] [--seconds 20]

Starts uvicorn on the published model (``--source`` serves another checkout's functions/, for a
before/after in one run), then ``--clients`` threads post imgs/cat.png to /predict in a loop while
one more thread asks /health every 50 ms. Prints the median and p90 of each. CPU-bound work inside
an ``async def`` route blocks the event loop, so /health waits behind every image; run off the
loop (a thread pool), it does not.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import httpx

from scripts import local_server
from scripts.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def run(source: Path, clients: int, seconds: float) -> dict[str, float]:
    port = free_port()
    server = local_server.start(port, source=source)
    url = f"http://127.0.0.1:{port}"
    image = (ROOT / "imgs" / "cat.png").read_bytes()
    predict: list[float] = []
    health: list[float] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    response = http.post(
                        f"{url}/predict", content=image, headers={"content-type": "image/png"}
                    )
                except httpx.HTTPError:
                    continue  # counted as no answer: only answered requests are timed
                if response.status_code == 200:
                    predict.append(time.perf_counter() - start)

    def prober() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    if http.get(f"{url}/health").status_code == 200:
                        health.append(time.perf_counter() - start)
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)

    try:
        threads = [threading.Thread(target=client) for _ in range(clients)]
        threads.append(threading.Thread(target=prober))
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        local_server.stop(server)
    return {
        "predict_p50_ms": statistics.median(predict) * 1000,
        "predict_p90_ms": percentile(predict, 0.9) * 1000,
        "health_p50_ms": statistics.median(health) * 1000,
        "health_p90_ms": percentile(health, 0.9) * 1000,
        "predictions": len(predict),
        "health_checks": len(health),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="research/load_health.py", description=__doc__)
    parser.add_argument("--source", type=Path, nargs="+", default=[ROOT])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    print(f"# {args.clients} clients on /predict, /health every 50 ms, {args.seconds:g} s each")
    print("| server | /predict p50 | p90 | /health p50 | p90 | predictions |")
    print("|---|---|---|---|---|---|")
    for source in args.source:
        r = run(source, args.clients, args.seconds)
        print(
            f"| {source} | {r['predict_p50_ms']:.0f} ms | {r['predict_p90_ms']:.0f} ms | "
            f"{r['health_p50_ms']:.1f} ms | {r['health_p90_ms']:.1f} ms | {r['predictions']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
