"""How fast ``split_sentences`` is, against bare ``sentencex.segment`` on the same text in one run.

``split_sentences`` runs sentencex on each block of text and then applies its own rules (line
breaks, enumerations, citation markers, abbreviations before numbers), so the ratio is what
those rules and the span bookkeeping cost on top of the library. The text is every Wikipedia
summary of ``benchmarks/wiki_contexts.json`` plus this repository's README (Markdown, lists,
code), repeated to about 2 MB::

    .venv/bin/python benchmarks/bench_splitter.py

The best of ``--repeats`` runs is kept for each method, alternating (the machines here are
shared: the best run is the one least disturbed).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import sentencex

from pruning_encoder.sentence_splitter import split_sentences

ROOT = Path(__file__).resolve().parent.parent


def corpus(target_chars: int) -> str:
    summaries = json.loads((ROOT / "benchmarks" / "wiki_contexts.json").read_text())["summaries"]
    text = "\n\n".join([*summaries, (ROOT / "README.md").read_text()])
    return "\n\n".join([text] * max(1, target_chars // len(text)))


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=2_000_000, help="corpus size, characters")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    text = corpus(args.chars)
    methods: dict[str, Callable[[], object]] = {
        "sentencex.segment": lambda: list(sentencex.segment("en", text)),
        "split_sentences": lambda: split_sentences(text, "en"),
    }
    seconds = dict.fromkeys(methods, float("inf"))
    for _ in range(args.repeats):
        for name, function in methods.items():
            seconds[name] = min(seconds[name], best_seconds(function, 1))
    baseline = seconds["sentencex.segment"]
    print(f"{len(text):,} characters, best of {args.repeats}")
    print(f"{'method':<20} {'seconds':>8} {'MB/s':>7} {'x sentencex':>12}")
    for name, value in seconds.items():
        print(f"{name:<20} {value:8.3f} {len(text) / value / 1e6:7.2f} {value / baseline:12.2f}")


if __name__ == "__main__":
    main()
