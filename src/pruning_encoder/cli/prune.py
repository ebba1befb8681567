"""``prune``: keep only the sentences of a context that are relevant to a question."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from ..batch_retry import retry_row_by_row
from ..context_pruning import RESULT_FIELDS
from ..engines.corpus import ENGINES, prune_corpus
from ..highlight import highlight
from ..pruning_encoder import PruningEncoder
from ..web import html_report
from .common import (
    ANSI_MARK,
    ANSI_RESET,
    COLOR_CHOICES,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    PROG,
    CliError,
    Options,
    chosen_model_path,
    load_model,
    open_output,
    output_options,
    positive_int,
    probability,
    read_text,
    token_budget,
    use_color,
)
from .jsonl import InvalidLines, map_jsonl

logger = logging.getLogger(__name__)

PRUNE_FIELDS = {"question": "a string", "context": "a string"}

PRUNE_EPILOG = f"""\
examples:
  {PROG} prune --model my-model --question "Who wrote Hamlet?" article.txt
  cat article.txt | {PROG} prune --model my-model --question "Who wrote Hamlet?" --json
  {PROG} prune --model my-model --input pairs.jsonl --output pruned.jsonl
  {PROG} prune --model my-model --input 'corpus/*.parquet' --output pruned/ --engine ray
  {PROG} prune --question "Who wrote Hamlet?" --highlight article.txt
  {PROG} prune --question "Who wrote Hamlet?" --html page.html article.txt other.txt

Each --input line is a JSON object with string fields "question" and "context"; its output line
is the same object plus {", ".join(RESULT_FIELDS)}.
An invalid line is reported as FILE:LINE on stderr and skipped; the exit status is then 1.

With --engine (local: this process; ray: Ray Data actors), --input is a JSONL or Parquet file, a
folder or a glob, and --output a folder of Parquet shards (part-*.parquet) with the source
position of each row (source_file, source_row), the results and an "error" column for rows that
could not be pruned (the exit status is 1 while it holds any). The folder's _manifest.jsonl
records finished shards: after a crash or Ctrl-C, the same command does only what is missing.
"""


def add_prune(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    prune = commands.add_parser(
        "prune",
        parents=parents,
        help="keep only the sentences of a context that are relevant to a question",
        description="Keep only the sentences of each context that are relevant to its question.",
        epilog=PRUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = prune.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--question", metavar="TEXT", help="prune the context in FILE for this question"
    )
    source.add_argument(
        "--input", metavar="JSONL", help="prune the question/context pair of each line (- stdin)"
    )
    prune.add_argument(
        "context",
        nargs="*",
        metavar="FILE",
        help="the context for --question (default, -: stdin); several with --highlight or --html",
    )
    prune.add_argument(
        "--threshold",
        type=probability,
        metavar="P",
        help="keep a sentence whose keep-probability exceeds this (default: the model's)",
    )
    prune.add_argument(
        "--max-tokens",
        type=token_budget,
        metavar="N",
        help="a token budget: of the sentences above the threshold, keep the most probable that "
        "fit N tokens of the model's tokenizer (adds kept_tokens to JSON results)",
    )
    output_options(prune, "the full result")
    shown = prune.add_argument_group("seeing what is kept (with --question)")
    shown.add_argument(
        "--highlight",
        action="store_true",
        help="print the whole context with the kept sentences marked",
    )
    shown.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        help="with --highlight, mark in colour (auto: when stdout is a terminal and NO_COLOR is "
        "unset) or with [[ ]] brackets (default: auto)",
    )
    shown.add_argument(
        "--html",
        metavar="FILE",
        help="write a self-contained page: each document with its score, kept sentences marked, "
        "keep-probabilities on hover and a threshold slider",
    )
    corpus = prune.add_argument_group(
        "corpus mode (--engine): --input is a JSONL or Parquet file, folder or glob, --output a "
        "folder of Parquet shards (every input field passes through, in one schema); a rerun "
        "resumes"
    )
    corpus.add_argument(
        "--engine", choices=ENGINES, help="prune in this process (local) or on Ray Data (ray)"
    )
    corpus.add_argument(
        "--shard-rows",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="input rows per output shard (default: 10000)",
    )
    corpus.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help="with --engine ray, actors, each loading the model once (default: 2)",
    )
    corpus.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0,
        metavar="G",
        help="with --engine ray, GPUs per actor (default: 0)",
    )
    prune.set_defaults(handler=_prune)


def _prune(args: argparse.Namespace) -> int:
    _check_prune_mode(args)
    model_path = chosen_model_path(args.model)
    options: Options = {
        "threshold": args.threshold,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "show_progress_bar": False,
    }
    if args.question is not None:
        return _prune_text(args, model_path, options)
    if args.engine is not None:
        return _prune_corpus(args, model_path)
    return _prune_jsonl(args, model_path, options)


def _prune_corpus(args: argparse.Namespace, model_path: str) -> int:
    if args.input == "-" or args.output == "-":
        raise CliError("--engine reads files (not stdin) and writes a folder: give --output DIR")
    if args.backend != "torch" or args.dtype not in ("auto", "float32"):
        load_model(model_path, args)  # the same checks as the other modes
    try:
        report = prune_corpus(
            args.input,
            args.output,
            engine=args.engine,
            shard_rows=args.shard_rows,
            workers=args.workers,
            num_gpus=args.gpus_per_worker,
            model=model_path,
            device=args.device,
            dtype=args.dtype,
            backend=args.backend,
            file_name=args.onnx_file,
            threshold=args.threshold,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
        )
    except (OSError, ValueError) as error:
        raise CliError(f"cannot prune {args.input}: {' '.join(str(error).split())}") from None
    logger.warning(
        "%s: %d shards pruned, %d already done; %d rows written, %d with an error",
        args.output,
        report.shards_pruned,
        report.shards_skipped,
        report.rows,
        report.errors,
    )
    return EXIT_INVALID_INPUT if report.errors else EXIT_OK


def _check_prune_mode(args: argparse.Namespace) -> None:
    """Refuse the options of the other mode: argparse cannot tie them to --question or --input."""
    if args.input is not None and args.context:
        raise CliError("a context FILE goes with --question; with --input, contexts are in JSONL")
    if args.input is not None and args.json:
        raise CliError("--json goes with --question; --input always writes JSON lines")
    if args.question is not None and args.output != "-":
        raise CliError("--output goes with --input; --question prints to stdout")
    if args.question is not None and args.engine is not None:
        raise CliError("--engine goes with --input")
    if args.input is not None and (args.highlight or args.html):
        raise CliError("--highlight and --html go with --question")
    if args.json and (args.highlight or args.html):
        raise CliError("--json prints the result: drop it with --highlight or --html")
    if args.html and args.max_tokens is not None:
        raise CliError("--max-tokens does not go with --html: its slider applies thresholds only")
    if len(args.context) > 1 and not (args.highlight or args.html):
        raise CliError("several context FILEs go with --highlight or --html")


def _prune_text(args: argparse.Namespace, model_path: str, options: Options) -> int:
    names = args.context or ["-"]
    contexts = [read_text(name) for name in names]
    model = load_model(model_path, args)
    try:
        results = model.process(
            args.question, contexts, return_sentence_probabilities=bool(args.html), **options
        )
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot prune: {exc}", EXIT_INVALID_INPUT) from None
    if args.html:
        labels = ["stdin" if name == "-" else name for name in names]
        page = html_report(
            model, args.question, contexts, names=labels, threshold=args.threshold, results=results
        )
        with open_output(args.html) as out:
            out.write(page)
    if args.highlight:
        print(_highlighted(names, contexts, results, color=use_color(args.color, sys.stdout)))
    elif not args.html:
        result = results[0]
        print(json.dumps(result) if args.json else result["pruned_context"])
    return EXIT_OK


def _highlighted(
    names: list[str], contexts: list[str], results: list[dict[str, Any]], *, color: bool
) -> str:
    """Each context with its kept sentences marked; several under a ``== FILE ==`` line."""
    pre, post = (ANSI_MARK, ANSI_RESET) if color else ("[[", "]]")
    texts = [
        highlight(r, c, pre_tag=pre, post_tag=post) for r, c in zip(results, contexts, strict=True)
    ]
    if len(texts) == 1:
        return texts[0]
    blocks = []
    for name, text, result in zip(names, texts, results, strict=True):
        score = result["reranking_score"]
        scored = "" if score is None else f" (score {score:.3f})"
        blocks.append(f"== {name}{scored} ==\n{text}")
    return "\n\n".join(blocks)


def _prune_jsonl(args: argparse.Namespace, model_path: str, options: Options) -> int:
    def prune_batch(
        model: PruningEncoder, batch: list[tuple[int, dict[str, Any]]], invalid: InvalidLines
    ) -> Iterator[dict[str, Any]]:
        return _prune_batch(model, batch, options, invalid)

    return map_jsonl(args, model_path, "Pruning", PRUNE_FIELDS, args.batch_size, prune_batch)


def _prune_batch(
    model: PruningEncoder,
    batch: list[tuple[int, dict[str, Any]]],
    options: Options,
    invalid: InvalidLines,
) -> Iterator[dict[str, Any]]:
    """Each record of the batch with its results added, in order; a record the model refuses
    (an overlong question) is reported and skipped."""

    def call(part: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        return _prune_records(model, [record for _, record in part], options)

    for (number, record), outcome in zip(batch, retry_row_by_row(call, batch), strict=True):
        if isinstance(outcome, Exception):
            invalid.report(number, f"cannot prune: {outcome}")
        else:
            yield {**record, **outcome}


def _prune_records(
    model: PruningEncoder, records: list[dict[str, Any]], options: Options
) -> list[dict[str, Any]]:
    questions = [record["question"] for record in records]
    contexts = [record["context"] for record in records]
    results: list[dict[str, Any]] = model.process(questions, contexts, **options)
    return results
