"""``rank``: sort documents by relevance to a query (a cross-encoder reranker)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

from ..pruning_encoder import PruningEncoder
from .common import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    PROG,
    CliError,
    Options,
    chosen_model_path,
    load_model,
    output_options,
    positive_int,
    read_text,
)
from .jsonl import InvalidLines, map_jsonl

RANK_FIELDS = {"query": "a string", "documents": "an array of strings"}

RANK_EPILOG = f"""\
examples:
  {PROG} rank --query "Who wrote Hamlet?" documents.txt
  {PROG} rank --query "Who wrote Hamlet?" --top-k 3 --json documents.txt
  {PROG} rank --input queries.jsonl --output ranked.jsonl

With --query, FILE (or stdin, -) holds one document per line (ending at \\n or \\r\\n; blank
lines are skipped: a form feed or U+2028 inside a line stays in its document); the
output is one line per document, best first: score, document number (from 1), document.
Each --input line is a JSON object with "query" (a string) and "documents" (an array of
strings); its output line is the same object plus "ranking": [{{"corpus_id": ..., "score":
...}}, ...], best first. An invalid line is reported as FILE:LINE on stderr and skipped; the exit
status is then 1.
"""


def add_rank(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    rank = commands.add_parser(
        "rank",
        parents=parents,
        help="sort documents by relevance to a query (a cross-encoder reranker)",
        description="Sort documents by relevance to a query, best first.",
        epilog=RANK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = rank.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", metavar="TEXT", help="rank the documents in FILE for this")
    source.add_argument(
        "--input", metavar="JSONL", help="rank the documents of each line for its query (- stdin)"
    )
    rank.add_argument(
        "documents", nargs="?", metavar="FILE", help="one document per line (default, -: stdin)"
    )
    rank.add_argument(
        "--top-k", type=positive_int, metavar="K", help="keep the K best documents only"
    )
    output_options(rank, "the ranking")
    rank.set_defaults(handler=_rank)


def document_lines(text: str) -> list[str]:
    """One document per line, lines ending at ``\\n`` (or ``\\r\\n``), blank lines skipped.

    Not ``str.splitlines()``: a form feed, U+2028 or NEL inside a line is part of its document.
    """
    lines = (line.removesuffix("\r") for line in text.split("\n"))
    return [line for line in lines if line.strip()]


def _rank(args: argparse.Namespace) -> int:
    if args.input is not None and (args.documents is not None or args.json):
        raise CliError("FILE and --json go with --query; --input always writes JSON lines")
    if args.query is not None and args.output != "-":
        raise CliError("--output goes with --input; --query prints to stdout")
    model_path = chosen_model_path(args.model)
    options: Options = {"top_k": args.top_k, "batch_size": args.batch_size}
    if args.query is not None:
        documents = document_lines(read_text(args.documents or "-"))
        model = load_model(model_path, args)
        try:
            ranking = model.rank(args.query, documents, return_documents=True, **options)
        except ValueError as exc:
            raise CliError(f"cannot rank: {exc}", EXIT_INVALID_INPUT) from None
        if args.json:
            print(json.dumps(ranking))
        else:
            for entry in ranking:
                print(f"{entry['score']:.4f}\t{entry['corpus_id'] + 1}\t{entry['text']}")
        return EXIT_OK

    def rank_one(
        model: PruningEncoder, chunk: list[tuple[int, dict[str, Any]]], invalid: InvalidLines
    ) -> Iterator[dict[str, Any]]:
        [(number, record)] = chunk
        try:
            ranking = model.rank(record["query"], record["documents"], **options)
        except ValueError as exc:
            invalid.report(number, f"cannot rank: {exc}")
            return
        yield {**record, "ranking": ranking}

    # One query per call: rank() already batches a query's documents.
    return map_jsonl(args, model_path, "Ranking", RANK_FIELDS, 1, rank_one)
