"""Corpus pruning on Ray Data against one process: throughput ratio and memory per worker.

On the same (question, context) pairs — Wikipedia questions, each with one of its summaries, from
``benchmarks/wiki_contexts.json``, cycled up to ``--pairs`` — and the same model, in one run:
``prune_corpus(engine="local")`` (this process, ``--threads`` torch threads) and
``prune_corpus(engine="ray")`` (``--workers`` actors on a local Ray cluster, the threads shared
among them). Each writes its Parquet shards; the outputs must agree (same spans, scores within
1e-5). Peak memory is the largest resident set of a Ray actor, polled every 0.2 s.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_corpus.py --pairs 5000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from pruning_encoder.bundled import DEFAULT_MODEL
from pruning_encoder.engines.corpus import prune_corpus

DATA = Path(__file__).with_name("wiki_contexts.json")


def write_pairs(path: Path, count: int) -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    pool, questions = data["summaries"], data["questions"]
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            entry = questions[i % len(questions)]
            summary = pool[entry["summaries"][(i // len(questions)) % len(entry["summaries"])]]
            out.write(json.dumps({"question": entry["question"], "context": summary}) + "\n")


class ActorMemory:
    """The largest resident set (bytes) of a Ray map actor seen while it runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ActorMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                command = " ".join(process.info["cmdline"] or [])
                if "MapWorker" in command and process.info["memory_info"] is not None:
                    self.peak = max(self.peak, process.info["memory_info"].rss)


def rows(folder: Path) -> list[dict[str, Any]]:
    table = pq.read_table(folder)
    return sorted(table.to_pylist(), key=lambda row: row["source_row"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all")
    parser.add_argument("--shard-rows", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    options = {"model": args.model, "device": "cpu", "batch_size": 32}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "pairs.jsonl"
        write_pairs(source, args.pairs)
        start = time.perf_counter()
        prune_corpus(
            str(source), f"{tmp}/local", shard_rows=args.shard_rows, threads=args.threads, **options
        )
        local = time.perf_counter() - start
        import ray

        ray.init(
            num_cpus=args.workers,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        with ActorMemory() as memory:
            start = time.perf_counter()
            prune_corpus(
                str(source),
                f"{tmp}/ray",
                engine="ray",
                workers=args.workers,
                shard_rows=args.shard_rows,
                threads=max(1, args.threads // args.workers),
                **options,
            )
            on_ray = time.perf_counter() - start
        ray.shutdown()
        same = all(
            a["kept_spans"] == b["kept_spans"]
            and abs(a["reranking_score"] - b["reranking_score"]) <= 1e-5
            for a, b in zip(rows(Path(tmp, "local")), rows(Path(tmp, "ray")), strict=True)
        )
    report = {
        "pairs": args.pairs,
        "workers": args.workers,
        "threads": args.threads,
        "local_pairs_per_second": args.pairs / local,
        "ray_pairs_per_second": args.pairs / on_ray,
        "ray_time_over_local": on_ray / local,
        "ray_actor_peak_rss_mib": memory.peak / 2**20,
        "same_output": same,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
