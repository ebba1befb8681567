"""What pruning costs on top of reranking, and what bf16 and ONNX save, on 2 CPU threads.

In one run, on the same (question, context) pairs and the same weights: a bare
``sentence_transformers.CrossEncoder.predict`` on the model's ``ranking_model/``, our
``predict()`` and ``process()`` (torch, float32), ``process()`` as loaded by default
(``dtype="auto"``: bfloat16 inference where the CPU multiplies it natively, float32 elsewhere),
``process()`` with the encoder's weights converted to bfloat16 (timed where the CPU multiplies
bf16 natively, or with ``--bf16``; emulated elsewhere, and slow), and ``process()`` through
onnxruntime in fp32 and int8 (``export_onnx``). Full
configuration (about 30 minutes on 2 CPU cores)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_process.py

Small configuration (what the test suite runs, to check that the benchmark works, not its
timings)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_process.py --small

Contexts are 1, 3 or 10 Wikipedia summaries (about 230 tokens each) from
``benchmarks/wiki_contexts.json``, and ``1w``: one summary cut to the whole sentences that fit
one window with its question, which the CrossEncoder and ``process()`` read alike. Each cell
runs every method on the same pairs, interleaved, and keeps the best of the repeats (the
machines here are shared: the best run is the one least disturbed). Ratios are against the
CrossEncoder or the torch ``process()`` of the same cell. The CrossEncoder truncates each pair
to the model's ``max_length``, whereas ``predict()`` and ``process()`` read the whole context in
windows of ``max_length`` tokens, so the table counts the tokens each reads and gives the ratio
per token read too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from pruning_encoder import PruningEncoder, split_sentences
from pruning_encoder.bundled import DEFAULT_MODEL
from pruning_encoder.context_pruning import LOOKAHEAD_BATCHES
from pruning_encoder.onnx_backend import FP32_FILE, INT8_FILE
from pruning_encoder.precision import native_bf16

DATA = Path(__file__).with_name("wiki_contexts.json")

Pair = tuple[str, str]
MEMORY_BATCH = 2
# The grid's row of one-window pairs (one summary cut to fit), beside 1, 3 and 10 summaries.
ONE_WINDOW = "1w"
LENGTH_BATCH = 8
LENGTH_METHODS = ("torch", "auto", "int8")
Method = Callable[[list[Pair]], Any]


def load_pairs(summaries_per_context: int, count: int) -> list[Pair]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    pool = data["summaries"]
    pairs = []
    for entry in data["questions"][:count]:
        texts = [pool[i] for i in entry["summaries"][:summaries_per_context]]
        pairs.append((entry["question"], "\n\n".join(texts)))
    return pairs


def one_window_pairs(model: PruningEncoder, count: int) -> list[Pair]:
    """Each question with each of its first 3 summaries, cut to the whole sentences that fit
    one window with the question: pairs the CrossEncoder and ``process()`` read alike."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    tokenizer = model.tokenizer

    def size(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    pairs = []
    for entry in data["questions"]:
        budget = model.max_length - 3 - size(entry["question"])
        for index in entry["summaries"][:3]:
            summary = data["summaries"][index]
            ends = [end for _, end in split_sentences(summary)]
            fitting = [end for end in ends if size(summary[:end]) <= budget] or ends[:1]
            pairs.append((entry["question"], summary[: fitting[-1]]))
    return pairs[:count]


def long_context(tokenizer: Any, tokens: int) -> str:
    """Distinct summaries joined until the context holds about ``tokens`` tokens."""
    parts: list[str] = []
    total = 0
    for text in json.loads(DATA.read_text(encoding="utf-8"))["summaries"]:
        if total >= tokens:
            break
        parts.append(text)
        total += len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return "\n\n".join(parts)


def best_seconds(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the OS at once, so that the resident memory
    before each call is a fair baseline (otherwise a method's buffers stay resident after it and
    the next method reuses them unseen)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: a fixed, low threshold
        libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD: trim the heap top whenever possible


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
        q = len(tokenizer(question, add_special_tokens=False, verbose=False)["input_ids"])
        c = len(tokenizer(context, add_special_tokens=False, verbose=False)["input_ids"])
        theirs += min(q + c + 3, cross_encoder_limit)
        budget = model.max_length - q - 3
        ours += c + max(1, -(-c // budget)) * (q + 3)
    return theirs, ours


ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    """The CPU model and the instruction sets that decide fp32, int8 and bf16 speed."""
    model, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    present = [flag for flag in ISA_FLAGS if flag in flags] or ["none of " + ", ".join(ISA_FLAGS)]
    return f"{model}; {' '.join(present)}"


@contextlib.contextmanager
def counting_tokens(models: dict[str, Any]) -> Iterator[dict[str, list[int]]]:
    """Count the padded and real (unmasked) tokens each model's forward passes read."""
    counts: dict[str, list[int]] = {name: [0, 0] for name in models}

    def add(name: str, mask: Any) -> None:
        counts[name][0] += int(np.prod(mask.shape))
        counts[name][1] += int(mask.sum())

    # The CrossEncoder's first module (its Transformer) takes the tokenized batch.
    handle = models["CrossEncoder"][0].register_forward_pre_hook(
        lambda module, args: add("CrossEncoder", args[0]["attention_mask"])
    )
    originals = {}
    for name in [name for name in ("torch", "auto", "bf16", "onnx", "int8") if name in models]:
        inner = models[name].model
        originals[name] = inner._heads

        def heads(*args: Any, _name: str = name, _run: Any = inner._heads, **kwargs: Any) -> Any:
            add(_name, kwargs["attention_mask"])
            return _run(*args, **kwargs)

        inner._heads = heads
    try:
        yield counts
    finally:
        handle.remove()
        for name, original in originals.items():
            models[name].model._heads = original


def process_method(model: PruningEncoder, batch_size: int) -> Method:
    def process(pairs: list[Pair]) -> Any:
        questions = [q for q, _ in pairs]
        contexts = [c for _, c in pairs]
        return model.process(questions, contexts, batch_size=batch_size, show_progress_bar=False)

    return process


def methods(models: dict[str, Any], batch_size: int, timed_bf16: bool) -> dict[str, Method]:
    cross_encoder, torch_model = models["CrossEncoder"], models["torch"]

    def ce(pairs: list[Pair]) -> Any:
        return cross_encoder.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    def predict(pairs: list[Pair]) -> Any:
        return torch_model.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    timed = {
        "CrossEncoder": ce,
        "predict": predict,
        "process": process_method(torch_model, batch_size),
        "auto": process_method(models["auto"], batch_size),
        "onnx": process_method(models["onnx"], batch_size),
        "int8": process_method(models["int8"], batch_size),
    }
    if timed_bf16:
        timed["bf16"] = process_method(models["bf16"], batch_size)
    return timed


def grid_pairs(model: PruningEncoder, size: int | str, count: int) -> list[Pair]:
    return one_window_pairs(model, count) if size == ONE_WINDOW else load_pairs(int(size), count)


def run_grid(args: argparse.Namespace, models: dict[str, Any]) -> list[dict]:
    rows = []
    limit = models["CrossEncoder"].max_seq_length
    for size in args.summaries:
        pairs = grid_pairs(models["torch"], size, args.pairs[size])
        theirs, ours = tokens_read(models["torch"], pairs, limit)
        for batch_size in args.batch_sizes:
            timed = methods(models, batch_size, args.bf16)
            for run in timed.values():  # warm-up
                run(pairs[:batch_size])
            times: dict[str, list[float]] = {name: [] for name in timed}
            for _ in range(args.repeats):
                for name, run in timed.items():
                    times[name].append(best_seconds(lambda r=run, p=pairs: r(p), 1))
            read = {}
            for name, run in timed.items():
                model_name = {"predict": "torch", "process": "torch"}.get(name, name)
                with counting_tokens(models) as counts:
                    run(pairs)
                read[name] = counts[model_name]
            row = {
                "summaries": size,
                "batch": batch_size,
                "pairs": len(pairs),
                "tokens_ce": theirs,
                "tokens_ours": ours,
                "seconds": {name: min(values) for name, values in times.items()},
                "padded_real_tokens": read,
            }
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def grid_memory(args: argparse.Namespace, models: dict[str, Any]) -> list[dict]:
    """Each grid cell's peak memory per method, on a second call (what a service that keeps the
    model sees: onnxruntime, for one, grows its buffers once and reuses them)."""
    rows = []
    for size in args.summaries:
        pairs = grid_pairs(models["torch"], size, args.pairs[size])
        for batch_size in args.batch_sizes:
            timed = methods(models, batch_size, args.bf16)
            peaks = {}
            for name, run in timed.items():
                run(pairs)
                peaks[name] = peak_memory_mb(lambda r=run, p=pairs: r(p))
            rows.append({"summaries": size, "batch": batch_size, "peak_mb": peaks})
    return rows


def measure_memory(args: argparse.Namespace, directory: Path) -> dict[str, list[dict]]:
    """Peak memory, measured in a fresh process of this script on the exports in ``directory``:
    the fair baseline it needs (:func:`return_freed_memory`) makes each large allocation a fresh
    mapping, which slows torch (by about 14% here; not onnxruntime, which keeps its buffers), so
    no timing runs under it."""
    results = directory / "memory.json"
    command = [sys.executable, __file__, "--memory-only", str(directory), "--json", str(results)]
    command += ["--model", args.model, "--threads", str(args.threads)]
    command += ["--small"] * args.small + ["--bf16" if args.bf16 else "--no-bf16"]
    subprocess.run(command, check=True)
    return json.loads(results.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def agreement(args: argparse.Namespace, models: dict[str, Any]) -> list[dict]:
    """ONNX against torch on the grid's pairs: ranking-score Pearson and same keep decisions."""
    rows = []
    for size in args.summaries:
        pairs = grid_pairs(models["torch"], size, args.pairs[size])
        questions, contexts = [q for q, _ in pairs], [c for _, c in pairs]
        results = {
            name: models[name].process(questions, contexts, return_sentence_probabilities=True)
            for name in ("torch", "auto", "bf16", "onnx", "int8")
        }
        threshold = models["torch"].config.default_threshold
        reference = results["torch"]
        for name in ("auto", "bf16", "onnx", "int8"):
            scores = [[r["reranking_score"] for r in results[key]] for key in ("torch", name)]
            probabilities = [
                np.concatenate([r["sentence_probabilities"] for r in results[key]])
                for key in ("torch", name)
            ]
            keep = [p > threshold for p in probabilities]
            # As the tests: leave out sentences within a factor of 2 of the threshold.
            clear = np.abs(np.log(np.clip(probabilities[0], 1e-12, 1.0) / threshold)) > np.log(2)
            rows.append(
                {
                    "summaries": size,
                    "backend": name,
                    "pearson": float(np.corrcoef(scores[0], scores[1])[0, 1]),
                    "same_keep": float(np.mean(keep[0] == keep[1])),
                    "same_keep_outside_margin": float(np.mean(keep[0][clear] == keep[1][clear])),
                    "sentences_outside_margin": int(clear.sum()),
                    "sentences": len(keep[0]),
                    "same_spans": sum(
                        a["kept_spans"] == b["kept_spans"]
                        for a, b in zip(reference, results[name], strict=True)
                    ),
                    "pairs": len(pairs),
                }
            )
    return rows


def run_lengths(args: argparse.Namespace, models: dict[str, Any]) -> list[dict]:
    """One context of growing length; ``LENGTH_BATCH`` windows per forward pass at every length,
    so that only the length changes (wider batches cost more per token, whatever the length)."""
    rows = []
    model = models["torch"]
    question = load_pairs(1, 1)[0][0]
    for tokens in args.lengths:
        context = long_context(model.tokenizer, tokens)
        count = len(model.tokenizer(context, add_special_tokens=False, verbose=False)["input_ids"])
        row: dict[str, Any] = {"tokens": count}
        for name in LENGTH_METHODS:
            run = functools.partial(
                models[name].process, question, context, batch_size=LENGTH_BATCH
            )
            run()  # warm-up
            seconds = best_seconds(run, args.repeats)
            row[name] = {"seconds": seconds, "ms_per_1k_tokens": 1e6 * seconds / count}
        rows.append(row)
    return rows


def run_memory(args: argparse.Namespace, models: dict[str, Any]) -> list[dict]:
    """Peak memory of ``process()`` as the number of pairs grows (one-window pairs, repeated),
    at batch ``MEMORY_BATCH``: the look-ahead holds ``LOOKAHEAD_BATCHES * MEMORY_BATCH`` pairs,
    so the peak should stay flat beyond it, but for the results themselves."""
    model = models["torch"]
    pool = one_window_pairs(model, 96)
    process = process_method(model, MEMORY_BATCH)
    process(pool[:MEMORY_BATCH])  # warm-up
    rows = []
    for count in args.memory_pairs:
        pairs = [pool[i % len(pool)] for i in range(count)]
        rows.append({"pairs": count, "peak_mb": peak_memory_mb(lambda p=pairs: process(p))})
    return rows


HEADER = (
    f"{'summaries':>9} {'batch':>5} {'tokens CE/ours':>15} {'pairs/s: CE':>11} {'predict':>8} "
    f"{'process':>8} {'auto':>6} {'bf16':>6} {'onnx':>6} {'int8':>6} {'process/CE':>10} "
    f"{'per token':>9} {'auto, bf16, int8 vs process':>27} {'padding CE/process':>18}"
)


def format_row(row: dict) -> str:
    s, n = row["seconds"], row["pairs"]
    per_token = (s["process"] / row["tokens_ours"]) / (s["CrossEncoder"] / row["tokens_ce"])
    bf16 = f"{n / s['bf16']:.1f}" if "bf16" in s else "-"
    speedup = ", ".join(
        f"{s['process'] / s[name]:.2f}x" if name in s else "-" for name in ("auto", "bf16", "int8")
    )
    read = row["padded_real_tokens"]
    padding = "/".join(
        f"{1 - real / padded:.0%}" if padded else "-"
        for padded, real in (read["CrossEncoder"], read["process"])
    )
    return (
        f"{row['summaries']:>9} {row['batch']:>5} {row['tokens_ce']:>7}/{row['tokens_ours']:<7} "
        f"{n / s['CrossEncoder']:>11.1f} {n / s['predict']:>8.1f} {n / s['process']:>8.1f} "
        f"{n / s['auto']:>6.1f} {bf16:>6} {n / s['onnx']:>6.1f} {n / s['int8']:>6.1f} "
        f"{s['process'] / s['CrossEncoder']:>9.2f}x {per_token:>8.2f}x "
        f"{speedup:>27} {padding:>18}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="bundled name or saved directory")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every method")
    parser.add_argument("--small", action="store_true", help="the quick configuration of CI")
    parser.add_argument("--json", type=Path, help="also write the results here")
    # Set by measure_memory for its child process: the directory of the parent's exports.
    parser.add_argument("--memory-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=native_bf16("cpu"),
        help="time the bfloat16 encoder (default: where the CPU has avx512_bf16 or AMX)",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.summaries, args.batch_sizes, args.repeats = [ONE_WINDOW, 3], [1, 4], 1
        args.pairs = {ONE_WINDOW: 4, 3: 4}
        args.lengths = [500, 1500]
        args.memory_pairs = [8, 64]
    else:
        args.summaries, args.batch_sizes, args.repeats = [ONE_WINDOW, 1, 3, 10], [1, 8, 32], 3
        args.pairs = {ONE_WINDOW: 96, 1: 32, 3: 32, 10: 8}
        args.lengths = [1000, 2500, 5000, 10000]
        args.memory_pairs = [32, 128, 512]
    return args


def load_models(args: argparse.Namespace, directory: Path, *, export: bool) -> dict[str, Any]:
    from sentence_transformers import CrossEncoder

    model = PruningEncoder(args.model, device="cpu", dtype="float32")
    if export:
        model.export_ranking_model(directory / "ranking_model")
        model.export_onnx(directory / "onnx")
    return {
        "CrossEncoder": CrossEncoder(str(directory / "ranking_model"), device="cpu"),
        "torch": model,
        "auto": PruningEncoder(args.model, device="cpu"),
        "onnx": PruningEncoder(directory / "onnx", backend="onnx", file_name=FP32_FILE),
        "int8": PruningEncoder(directory / "onnx", backend="onnx", file_name=INT8_FILE),
        "bf16": PruningEncoder(args.model, device="cpu", dtype="bfloat16"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_only:
        return_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.memory_only or Path(tmp)
        models = load_models(args, directory, export=args.memory_only is None)
        if args.memory_only:
            memory = {"grid": grid_memory(args, models), "memory": run_memory(args, models)}
            args.json.write_text(json.dumps(memory) + "\n")
            return 0
        print(f"CPU: {cpu_description()}")
        print(
            f"model {args.model}: max_length {models['torch'].max_length} (CrossEncoder: "
            f"{models['CrossEncoder'].max_seq_length}); {args.threads} threads; torch "
            f"{torch.__version__}; best of {args.repeats}"
        )
        print(HEADER, flush=True)
        grid = run_grid(args, models)
        print(
            f"\n{'summaries':>9} {'backend':>7} {'Pearson':>8} {'same keep':>10} "
            f"{'outside margin':>15} {'spans':>11}"
        )
        accuracy = agreement(args, models)
        for row in accuracy:
            print(
                f"{row['summaries']:>9} {row['backend']:>7} {row['pearson']:>8.4f} "
                f"{row['same_keep']:>9.1%} {row['same_keep_outside_margin']:>9.1%} of "
                f"{row['sentences_outside_margin']:<4} {row['same_spans']:>5}/{row['pairs']:<5}"
            )
        print(
            f"\n{'context tokens':>14}"
            + "".join(f"{n + ' s':>8} {'ms/1k':>6}" for n in LENGTH_METHODS)
        )
        lengths = run_lengths(args, models)
        for row in lengths:
            cells = (row[name] for name in LENGTH_METHODS)
            print(
                f"{row['tokens']:>14}"
                + "".join(f"{c['seconds']:>8.2f} {c['ms_per_1k_tokens']:>6.0f}" for c in cells)
            )
        measured = measure_memory(args, directory)
    print(f"\n{'summaries':>9} {'batch':>5} {'peak MB CE/process/int8':>24}")
    for row, peaks in zip(grid, measured["grid"], strict=True):
        row["peak_mb"] = mb = peaks["peak_mb"]
        memory = f"{mb['CrossEncoder']:.0f}/{mb['process']:.0f}/{mb['int8']:.0f}"
        print(f"{row['summaries']:>9} {row['batch']:>5} {memory:>24}")
    look_ahead = LOOKAHEAD_BATCHES * MEMORY_BATCH
    print(
        f"\n{'pairs':>6} {'peak MB':>8}  (process() at batch {MEMORY_BATCH}, "
        f"{look_ahead} pairs ahead)"
    )
    for row in measured["memory"]:
        print(f"{row['pairs']:>6} {row['peak_mb']:>8.0f}")
    if args.json:
        results = {
            "memory": measured["memory"],
            "cpu": cpu_description(),
            "grid": grid,
            "agreement": accuracy,
            "lengths": lengths,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
