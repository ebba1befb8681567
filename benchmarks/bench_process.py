"""How much pruning costs on top of reranking: ``process()`` and ``predict()`` against a bare
``sentence_transformers.CrossEncoder.predict`` on the same (question, context) pairs, in one run.

Full configuration (about 15 minutes on 2 CPU cores)::

    HF_HUB_OFFLINE=1 python benchmarks/bench_process.py

Small configuration (what CI runs, to check that the benchmark works, not its timings)::

    HF_HUB_OFFLINE=1 python benchmarks/bench_process.py --small

Contexts are 1, 3 or 10 Wikipedia summaries (about 230 tokens each) from
``benchmarks/wiki_contexts.json``. Each cell times every method on the same pairs, interleaved,
and reports the median of the repeats; ratios are times over the CrossEncoder's time in that cell.
The CrossEncoder is the model's own ``ranking_model/`` (same weights, same backbone) loaded with
sentence-transformers; it truncates to 512 tokens, whereas ``process()`` and ``predict()`` read the
whole context in windows of ``max_length`` tokens, so the table also counts the tokens each reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from pruning_encoder import PruningEncoder
from pruning_encoder.bundled import DEFAULT_MODEL

DATA = Path(__file__).with_name("wiki_contexts.json")

Pair = tuple[str, str]


def load_pairs(summaries_per_context: int, count: int) -> list[Pair]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    pool = data["summaries"]
    pairs = []
    for entry in data["questions"][:count]:
        texts = [pool[i] for i in entry["summaries"][:summaries_per_context]]
        pairs.append((entry["question"], "\n\n".join(texts)))
    return pairs


def long_context(tokenizer: Any, tokens: int) -> str:
    """Summaries joined until the context holds about ``tokens`` tokens."""
    pool = json.loads(DATA.read_text(encoding="utf-8"))["summaries"]
    parts: list[str] = []
    total = 0
    for text in pool * (1 + tokens // 5000):
        if total >= tokens:
            break
        parts.append(text)
        total += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return "\n\n".join(parts)


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(run: Callable[[], Any]) -> float:
    """Peak resident memory above the level before the call, sampled every millisecond."""
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return (max(peak, process.memory_info().rss) - before) / 2**20


def tokens_read(model: PruningEncoder, pairs: list[Pair], cross_encoder_limit: int) -> tuple:
    """Tokens the CrossEncoder reads (truncated) and tokens our windows read (whole contexts)."""
    tokenizer = model.tokenizer
    ours = theirs = 0
    for question, context in pairs:
        q = len(tokenizer(question, add_special_tokens=False)["input_ids"])
        c = len(tokenizer(context, add_special_tokens=False)["input_ids"])
        theirs += min(q + c + 3, cross_encoder_limit)
        budget = model.max_length - q - 3
        windows = max(1, -(-c // budget))
        ours += c + windows * (q + 3)
    return theirs, ours


def methods(model: PruningEncoder, cross_encoder: Any, batch_size: int) -> dict[str, Callable]:
    def ce(pairs: list[Pair]) -> Any:
        return cross_encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    def predict(pairs: list[Pair]) -> Any:
        return model.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    def process(pairs: list[Pair]) -> Any:
        questions = [q for q, _ in pairs]
        contexts = [c for _, c in pairs]
        return model.process(questions, contexts, batch_size=batch_size, show_progress_bar=False)

    return {"CrossEncoder": ce, "predict": predict, "process": process}


def run_grid(args: argparse.Namespace, model: PruningEncoder, cross_encoder: Any) -> list[dict]:
    rows = []
    for size in args.summaries:
        pairs = load_pairs(size, args.pairs)
        theirs, ours = tokens_read(model, pairs, cross_encoder.max_seq_length)
        for batch_size in args.batch_sizes:
            timed = methods(model, cross_encoder, batch_size)
            for run in timed.values():  # warm-up
                run(pairs[:batch_size])
            times: dict[str, list[float]] = {name: [] for name in timed}
            for _ in range(args.repeats):
                for name, run in timed.items():
                    times[name].append(median_seconds(lambda r=run: r(pairs), 1))
            seconds = {name: statistics.median(values) for name, values in times.items()}
            memory = {
                name: peak_memory_mb(lambda r=run: r(pairs)) for name, run in timed.items()
            }
            rows.append(
                {
                    "summaries": size,
                    "batch": batch_size,
                    "pairs": len(pairs),
                    "tokens_ce": theirs,
                    "tokens_ours": ours,
                    "seconds": seconds,
                    "peak_mb": memory,
                }
            )
            print(format_row(rows[-1]), flush=True)
    return rows


def run_lengths(args: argparse.Namespace, model: PruningEncoder) -> list[dict]:
    rows = []
    question = load_pairs(1, 1)[0][0]
    for tokens in args.lengths:
        context = long_context(model.tokenizer, tokens)
        model.process(question, context)  # warm-up
        seconds = median_seconds(lambda c=context: model.process(question, c), args.repeats)
        count = len(model.tokenizer(context, add_special_tokens=False)["input_ids"])
        rows.append({"tokens": count, "seconds": seconds, "ms_per_1k_tokens": 1e6 * seconds / count})
    return rows


HEADER = (
    f"{'summaries':>9} {'batch':>5} {'tokens CE/ours':>15} {'CE pairs/s':>10} "
    f"{'predict pairs/s':>15} {'process pairs/s':>15} {'predict/CE':>10} {'process/CE':>10} "
    f"{'peak MB CE/pred/proc':>21}"
)


def format_row(row: dict) -> str:
    s, n = row["seconds"], row["pairs"]
    mb = row["peak_mb"]
    memory = f"{mb['CrossEncoder']:.0f}/{mb['predict']:.0f}/{mb['process']:.0f}"
    return (
        f"{row['summaries']:>9} {row['batch']:>5} {row['tokens_ce']:>7}/{row['tokens_ours']:<7} "
        f"{n / s['CrossEncoder']:>10.1f} {n / s['predict']:>15.1f} {n / s['process']:>15.1f} "
        f"{s['predict'] / s['CrossEncoder']:>9.2f}x {s['process'] / s['CrossEncoder']:>9.2f}x "
        f"{memory:>21}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="bundled name or saved directory")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every method")
    parser.add_argument("--small", action="store_true", help="the quick configuration CI runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.small:
        args.summaries, args.batch_sizes, args.pairs, args.repeats = [1, 3], [1, 8], 8, 1
        args.lengths = [500, 2000]
    else:
        args.summaries, args.batch_sizes, args.pairs, args.repeats = [1, 3, 10], [1, 8, 32], 32, 3
        args.lengths = [1000, 2500, 5000, 10000]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(args.threads)
    model = PruningEncoder(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        model.export_ranking_model(Path(tmp, "ranking_model"))
        cross_encoder = CrossEncoder(str(Path(tmp, "ranking_model")), device="cpu")
    print(
        f"model {args.model}: max_length {model.max_length} (CrossEncoder: "
        f"{cross_encoder.max_seq_length}); {args.threads} threads; torch {torch.__version__}; "
        f"median of {args.repeats}"
    )
    print(HEADER, flush=True)
    grid = run_grid(args, model, cross_encoder)
    print(f"\n{'context tokens':>14} {'process s':>10} {'ms / 1k tokens':>15}")
    lengths = run_lengths(args, model)
    for row in lengths:
        print(f"{row['tokens']:>14} {row['seconds']:>10.3f} {row['ms_per_1k_tokens']:>15.1f}")
    if args.json:
        args.json.write_text(json.dumps({"grid": grid, "lengths": lengths}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
