"""The training and evaluation data format: one query, several texts, labels and relevant spans.

One JSON object per line (or one row of a ``datasets.Dataset``)::

    {"query": "Who wrote Hamlet?",
     "texts": ["Hamlet is a tragedy. It was written by Shakespeare.", "Paris is in France."],
     "labels": [1, 0],
     "relevant_spans": [[[21, 51]], []],
     "answers": ["Shakespeare"]}

- ``query``: a non-empty string.
- ``texts``: a non-empty list of non-empty strings (the contexts to score and prune).
- ``labels`` (relevance, 0..1) and/or ``scores`` (a teacher's scores, any float): one per text;
  at least one of the two is required.
- ``relevant_spans``: per text, a list of ``[start, end)`` character offsets of the sentences
  that answer the query (``[]`` for an irrelevant text); overlapping spans are merged.
- ``answers`` (optional): answer strings, for the "answer kept" metric.
- ``id`` (optional): any JSON value, carried through.
- ``meta`` (optional): any JSON value, carried through and never read (e.g. where a record's
  labels came from: ``pruning-encoder label`` writes the model's answer there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import check_text
from ..sentence_splitter import Span

FIELDS = ("query", "texts", "labels", "scores", "relevant_spans", "answers", "id", "meta")


class DataError(ValueError):
    """A malformed record; the message names the file and line (or row) at fault."""


@dataclass
class Record:
    """One validated record of the data format above."""

    query: str
    texts: list[str]
    relevant_spans: list[list[Span]]
    labels: list[float] | None = None
    scores: list[float] | None = None
    answers: list[str] = field(default_factory=list)
    id: Any = None
    meta: Any = None

    @property
    def relevance(self) -> list[float]:
        """Binary relevance per text: the labels, else whether a text has relevant spans."""
        if self.labels is not None:
            return [1.0 if label > 0.5 else 0.0 for label in self.labels]
        return [1.0 if spans else 0.0 for spans in self.relevant_spans]

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"query": self.query, "texts": self.texts}
        if self.labels is not None:
            row["labels"] = self.labels
        if self.scores is not None:
            row["scores"] = self.scores
        row["relevant_spans"] = [[list(span) for span in spans] for spans in self.relevant_spans]
        if self.answers:
            row["answers"] = self.answers
        if self.id is not None:
            row["id"] = self.id
        if self.meta is not None:
            row["meta"] = self.meta
        return row


def read_records(path: str | Path) -> list[Record]:
    """Read and validate a JSONL file; raises :class:`DataError` naming ``FILE:LINE``."""
    records = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not valid JSON ({error.msg}).") from None
            records.append(parse_record(row, where))
    if not records:
        raise DataError(f"{path}: no records.")
    return records


def load_records(data: str | Path | Iterable[dict[str, Any] | Record]) -> list[Record]:
    """Records from a JSONL path, or from any iterable of dicts (such as a ``datasets.Dataset``)
    or :class:`Record` objects (taken as they are)."""
    if isinstance(data, str | Path):
        return read_records(data)
    records = [
        row if isinstance(row, Record) else parse_record(row, f"row {i}")
        for i, row in enumerate(data)
    ]
    if not records:
        raise DataError("The dataset has no records.")
    return records


def write_records(records: Iterable[Record], path: str | Path) -> None:
    """Write records as JSONL, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    staging.replace(path)


def parse_record(row: Any, where: str) -> Record:
    """Validate one record; ``where`` (``FILE:LINE``) prefixes every error message."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: a record must be a JSON object, got {type(row).__name__}.")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; expected some of {list(FIELDS)}.")
    for name in ("query", "texts", "relevant_spans"):
        if name not in row:
            raise DataError(f"{where}: missing field {name!r}.")
    query, texts = row["query"], row["texts"]
    if not isinstance(query, str) or not query.strip():
        raise DataError(f"{where}: 'query' must be a non-empty string.")
    if not isinstance(texts, list) or not texts:
        raise DataError(f"{where}: 'texts' must be a non-empty list of strings.")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: texts[{i}] must be a non-empty string.")
    try:  # the rule of process(), the CLI and the service: no lone surrogates
        for i, text in enumerate([query, *texts]):
            check_text(text, "query" if i == 0 else f"texts[{i - 1}]")
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None
    if "labels" not in row and "scores" not in row:
        raise DataError(f"{where}: give 'labels' (relevance) or 'scores' (teacher), or both.")
    labels = _numbers(row, "labels", len(texts), where, low=0.0, high=1.0)
    scores = _numbers(row, "scores", len(texts), where)
    spans = _spans(row["relevant_spans"], texts, where)
    answers = row.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
        raise DataError(f"{where}: 'answers' must be a list of non-empty strings.")
    return Record(query, texts, spans, labels, scores, answers, row.get("id"), row.get("meta"))


def _numbers(
    row: dict[str, Any],
    name: str,
    count: int,
    where: str,
    low: float = -math.inf,
    high: float = math.inf,
) -> list[float] | None:
    if name not in row:
        return None
    values = row[name]
    if not isinstance(values, list) or len(values) != count:
        raise DataError(f"{where}: {name!r} must be a list of {count} numbers, one per text.")
    for i, value in enumerate(values):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not low <= value <= high:
            bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) else ""
            raise DataError(f"{where}: {name}[{i}] must be a finite number{bounds}, got {value!r}.")
    return [float(value) for value in values]


def _spans(value: Any, texts: list[str], where: str) -> list[list[Span]]:
    if not isinstance(value, list) or len(value) != len(texts):
        raise DataError(
            f"{where}: 'relevant_spans' must be a list of {len(texts)} lists, one per text."
        )
    result = []
    for i, spans in enumerate(value):
        if not isinstance(spans, list):
            raise DataError(f"{where}: relevant_spans[{i}] must be a list of [start, end] pairs.")
        parsed = []
        for span in spans:
            ok = (
                isinstance(span, list | tuple)
                and len(span) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            )
            if not ok:
                raise DataError(
                    f"{where}: relevant_spans[{i}] holds {span!r}; expected [start, end] integers."
                )
            start, end = span
            if not 0 <= start < end <= len(texts[i]):
                raise DataError(
                    f"{where}: relevant_spans[{i}] span [{start}, {end}] is out of range for a "
                    f"text of {len(texts[i])} characters."
                )
            parsed.append((start, end))
        result.append(merge_spans(parsed))
    return result


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted spans with overlapping ones merged, so that no character counts twice."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
