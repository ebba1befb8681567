"""The batch ``--input`` JSONL machinery of ``prune`` and ``rank``: read the records, report
the invalid lines, write the results atomically."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..checks import check_text
from ..pruning_encoder import PruningEncoder
from .common import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    PACKAGE,
    load_model,
    open_input,
    open_output,
    progress,
)

logger = logging.getLogger(__name__)

JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class InvalidLines:
    """Reports invalid input lines as ``source:line: reason`` and counts them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0

    def report(self, number: int, reason: str) -> None:
        logger.error("%s:%d: %s", self.source, number, reason)
        self.count += 1


Transform = Callable[
    [PruningEncoder, list[tuple[int, dict[str, Any]]], InvalidLines], Iterable[dict[str, Any]]
]


def map_jsonl(
    args: argparse.Namespace,
    model_path: str,
    desc: str,
    fields: dict[str, str],
    chunk_size: int,
    transform: Transform,
) -> int:
    """Write ``transform``'s records for the valid --input lines, ``chunk_size`` at a time."""
    invalid = InvalidLines("<stdin>" if args.input == "-" else args.input)
    # The output is opened before the model loads, to fail fast on a path that cannot be written.
    with open_input(args.input) as source, open_output(args.output) as out:
        model = load_model(model_path, args)
        lines = progress(source, args.input, desc, quiet=args.quiet)
        with logging_redirect_tqdm(loggers=[logging.getLogger(PACKAGE)], tqdm_class=tqdm):
            for chunk in _chunks(_records(lines, invalid, fields), chunk_size):
                for record in transform(model, chunk, invalid):
                    out.write(json.dumps(record) + "\n")
                out.flush()
    return EXIT_INVALID_INPUT if invalid.count else EXIT_OK


def _records(
    lines: Iterable[bytes], invalid: InvalidLines, fields: dict[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The valid records with their line numbers; blank lines are skipped, invalid ones reported."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _parse_record(line, fields)
        except ValueError as exc:
            invalid.report(number, str(exc))
            continue
        yield number, record


def _parse_record(line: bytes, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON object on one input line, with ``fields`` (name → "a string" or "an array of
    strings") of valid text (:func:`check_text`); raises ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {JSON_TYPES[type(record)]}")
    for field, kind in fields.items():
        if field not in record:
            raise ValueError(f"missing field {field!r}")
        value = record[field]
        if kind == "a string":
            valid = isinstance(value, str)
        else:
            valid = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not valid:
            got = JSON_TYPES[type(value)]
            if isinstance(value, list):
                got = "an array with " + ", ".join(sorted({JSON_TYPES[type(v)] for v in value}))
            raise ValueError(f"field {field!r} must be {kind}, got {got}")
        texts = [value] if isinstance(value, str) else value
        for i, text in enumerate(texts):
            check_text(text, f"field {field!r}" + ("" if isinstance(value, str) else f"[{i}]"))
    return record


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
