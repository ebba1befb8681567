"""A bounded load test of the HTTP service, on loopback only: it starts the service, sends a fixed
number of requests from concurrent clients, reports throughput and latency, and stops.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/load_service.py --clients 8 --requests 200

Each request is a ``POST /rerank`` with ``prune: true`` of one question against 2 Wikipedia
summaries from ``benchmarks/wiki_contexts.json``. The exit status is 1 if any request failed.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import uvicorn

from pruning_encoder import PruningEncoder
from pruning_encoder.bundled import DEFAULT_MODEL
from pruning_encoder.server import create_app

DATA = Path(__file__).with_name("wiki_contexts.json")


def request_bodies(count: int) -> list[bytes]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    bodies = []
    for i in range(count):
        entry = data["questions"][i % len(data["questions"])]
        texts = [data["summaries"][j] for j in entry["summaries"][i % 2 : i % 2 + 2]]
        body = {"query": entry["question"], "texts": texts, "prune": True}
        bodies.append(json.dumps(body).encode())
    return bodies


def start_server(model: PruningEncoder) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(model), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("The service did not start (see the log above).")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}/rerank"


def send(url: str, body: bytes) -> tuple[float, bool]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            ok = response.status == 200 and isinstance(json.loads(response.read()), list)
    except (urllib.error.URLError, OSError, ValueError):
        ok = False
    return time.perf_counter() - start, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="bundled name or saved directory")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = PruningEncoder(args.model, device="cpu")
    server, thread, url = start_server(model)
    try:
        send(url, request_bodies(1)[0])  # warm-up
        bodies = request_bodies(args.clients * args.requests)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = list(pool.map(lambda body: send(url, body), bodies))
        elapsed = time.perf_counter() - start
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    latencies = sorted(seconds for seconds, _ in results)
    errors = sum(not ok for _, ok in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"{len(results)} requests from {args.clients} clients in {elapsed:.1f} s: "
        f"{len(results) / elapsed:.1f} requests/s, p50 {1000 * statistics.median(latencies):.0f} "
        f"ms, p99 {1000 * p99:.0f} ms, {errors} errors"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
