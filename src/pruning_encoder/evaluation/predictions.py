"""The model's side of an evaluation: one aligned ``process()`` call over every (query, text)
pair of the records, regrouped per record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.records import Record
from .metrics import Kept, Scores, Units

__all__ = [
    "kept_of",
    "run_model",
    "scores_of",
    "sentence_probabilities",
    "spans_and_probabilities",
]


def run_model(
    model: Any,
    records: Sequence[Record],
    *,
    threshold: float | None,
    batch_size: int,
    probabilities: bool,
    show_progress_bar: bool | None,
) -> list[list[dict[str, Any]]]:
    """``process()`` results per record and text, from one call over every (query, text) pair.

    ``model`` is a :class:`~pruning_encoder.PruningEncoder` or its inner model; ``probabilities``
    adds ``sentence_spans`` and ``sentence_probabilities`` to each result.
    """
    questions = [record.query for record in records for _ in record.texts]
    contexts = [text for record in records for text in record.texts]
    if not contexts:
        return [[] for _ in records]
    results = model.process(
        questions,
        contexts,
        threshold=threshold,
        batch_size=batch_size,
        return_sentence_probabilities=probabilities,
        show_progress_bar=show_progress_bar,
    )
    grouped, offset = [], 0
    for record in records:
        grouped.append(list(results[offset : offset + len(record.texts)]))
        offset += len(record.texts)
    return grouped


def scores_of(results: list[list[dict[str, Any]]]) -> Scores:
    """The ``reranking_score`` of each result."""
    return [[float(r["reranking_score"]) for r in group] for group in results]


def kept_of(results: list[list[dict[str, Any]]]) -> Kept:
    """The ``kept_spans`` of each result."""
    return [[[(s, e) for s, e in r["kept_spans"]] for r in group] for group in results]


def sentence_probabilities(
    model: Any,
    records: Sequence[Record],
    *,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> tuple[Units, list[list[np.ndarray]]]:
    """What every threshold search sweeps, from one ``process()`` pass over every (query, text)
    pair: per record and text, the sentence spans and their keep-probabilities (``[sentences]``).
    """
    results = run_model(
        model,
        records,
        threshold=None,
        batch_size=batch_size,
        probabilities=True,
        show_progress_bar=show_progress_bar,
    )
    return spans_and_probabilities(results)


def spans_and_probabilities(
    results: list[list[dict[str, Any]]],
) -> tuple[Units, list[list[np.ndarray]]]:
    """The ``sentence_spans`` and ``sentence_probabilities`` of results run with
    ``probabilities=True``."""
    spans: Units = [[[(s, e) for s, e in r["sentence_spans"]] for r in group] for group in results]
    probabilities = [
        [np.asarray(r["sentence_probabilities"], dtype=np.float64) for r in group]
        for group in results
    ]
    return spans, probabilities
