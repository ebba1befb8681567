"""The threshold search: one curve (threshold -> pruning metrics) and small pickers over it.

Every sweep (the model's keep threshold for F2 or for an answer-kept target, the bi-encoder's
cosine threshold, ``calibrate``) scores each sentence once and then applies every threshold of
:data:`GRID` (0.01, 0.02, ..., 0.99) to those scores with ``process()``'s own rules: a sentence
is kept when its score exceeds the threshold
(:func:`~pruning_encoder.token_budget.select_sentences`), and the kept sentences become spans
with :func:`~pruning_encoder.context_pruning.kept_spans`. Each row of
:func:`threshold_curve` is therefore what an evaluation at that threshold reports
(:func:`~pruning_encoder.evaluation.metrics.pruning_metrics`), plus ``removed_pct`` (characters
removed from all texts).

Use validation records, never test data, for any threshold chosen here: it is fitted to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..context_pruning import kept_spans
from ..data.records import Record
from ..token_budget import select_sentences
from .baselines import bi_encoder_similarities
from .metrics import (
    COUNTS,
    Kept,
    Units,
    metrics_from_counts,
    removed_pct,
    sentence_units,
    text_counts,
)
from .predictions import sentence_probabilities

__all__ = [
    "GRID",
    "best_f_beta",
    "choose_bi_encoder_threshold",
    "choose_threshold",
    "choose_threshold_for_answer_kept",
    "highest_reaching",
    "keep_masks",
    "kept_at",
    "lowest_reaching",
    "threshold_curve",
]

GRID = np.round(np.arange(1, 100) / 100, 2)
_TOLERANCE = 1e-9

Curve = list[dict[str, float | None]]
SentenceScores = Sequence[Sequence[np.ndarray]]  # per record, per text: [sentences]


def keep_masks(scores: Sequence[np.ndarray], thresholds: Sequence[float]) -> list[np.ndarray]:
    """Per text, which sentences ``process()`` keeps at each threshold: ``[sentences,
    thresholds]`` booleans (no title, no token budget)."""
    masks: list[list[np.ndarray]] = [[] for _ in scores]
    for threshold in thresholds:
        selections = select_sentences(
            [np.asarray(s, dtype=np.float64) for s in scores],
            threshold=float(threshold),
            titles=[False] * len(scores),
        )
        for mask, selection in zip(masks, selections, strict=True):
            mask.append(selection.keep)
    return [
        np.stack(mask, axis=1) if len(s) else np.zeros((0, len(thresholds)), dtype=bool)
        for mask, s in zip(masks, scores, strict=True)
    ]


def kept_at(
    records: Sequence[Record], spans: Units, scores: SentenceScores, threshold: float
) -> Kept:
    """The kept spans of every text at one threshold, by ``process()``'s rules."""
    masks = iter(keep_masks([s for record_scores in scores for s in record_scores], [threshold]))
    return [
        [
            kept_spans(text, s, mask[:, 0])
            for text, s, mask in zip(record.texts, record_spans, masks, strict=False)
        ]
        for record, record_spans in zip(records, spans, strict=True)
    ]


def threshold_curve(
    records: Sequence[Record],
    spans: Units,
    scores: SentenceScores,
    *,
    units: Units | None = None,
) -> Curve:
    """The pruning metrics at every threshold of :data:`GRID`.

    Args:
        records: The records.
        spans: Per record and text, the scored sentences (``(start, end)`` character offsets).
        scores: Per record and text, one score per sentence of ``spans`` (a keep-probability,
            a cosine...).
        units: The metrics' units (default: :func:`sentence_units` of ``records``).

    Returns:
        One row per threshold: ``{"threshold": t, **pruning_metrics, "removed_pct": ...}``.
    """
    units = sentence_units(records) if units is None else units
    masks = iter(keep_masks([s for record_scores in scores for s in record_scores], GRID.tolist()))
    totals = np.zeros((len(GRID), len(COUNTS)))
    for record, record_spans, record_units in zip(records, spans, units, strict=True):
        for i, (text, mask) in enumerate(zip(record.texts, masks, strict=False)):
            seen: dict[bytes, np.ndarray] = {}  # thresholds that keep the same sentences
            for j in range(len(GRID)):
                pattern = mask[:, j].tobytes()
                if pattern not in seen:
                    kept = kept_spans(text, record_spans[i], mask[:, j])
                    seen[pattern] = text_counts(record, i, kept, record_units[i])
                totals[j] += seen[pattern]
    return [
        {"threshold": threshold, **metrics_from_counts(counts), "removed_pct": removed_pct(counts)}
        for threshold, counts in zip(GRID.tolist(), totals, strict=True)
    ]


# --------------------------------------------------------------------------- pickers


def _reaching(curve: Curve, column: str, target: float) -> list[float]:
    return [
        float(row["threshold"])  # type: ignore[arg-type]
        for row in curve
        if (value := row[column]) is not None and value >= target - _TOLERANCE
    ]


def highest_reaching(curve: Curve, column: str, target: float) -> float | None:
    """The highest threshold whose ``column`` is at least ``target`` (the most removed while
    keeping enough); None if none reaches it."""
    reached = _reaching(curve, column, target)
    return max(reached) if reached else None


def lowest_reaching(curve: Curve, column: str, target: float) -> float | None:
    """The lowest threshold whose ``column`` is at least ``target`` (the most kept while
    removing enough); None if none reaches it."""
    reached = _reaching(curve, column, target)
    return min(reached) if reached else None


def best_f_beta(curve: Curve, beta: float) -> float:
    """The threshold of the highest sentence F-beta; ties go to the lowest threshold (keeps the
    most)."""

    def score(row: dict[str, Any]) -> float:
        precision, recall = row["sentence_precision"], row["sentence_recall"]
        if not precision or not recall:
            return 0.0
        b2 = beta * beta
        return (1 + b2) * precision * recall / (b2 * precision + recall)

    best = max(range(len(curve)), key=lambda j: (score(curve[j]), -j))
    return float(curve[best]["threshold"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- searches


def choose_threshold(
    model: Any,
    records: Sequence[Record],
    *,
    batch_size: int = 32,
    beta: float = 2.0,
    show_progress_bar: bool | None = None,
) -> float:
    """The model's keep threshold that maximises sentence F-beta (F2 by default) on ``records``.

    One ``process(..., return_sentence_probabilities=True)`` pass scores every sentence; the
    curve then gives the metrics of every grid threshold (see the module doc). Ties go to the
    lowest threshold.
    """
    spans, probabilities = sentence_probabilities(
        model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    return best_f_beta(threshold_curve(records, spans, probabilities), beta)


def choose_bi_encoder_threshold(
    records: Sequence[Record],
    bi_encoder: Any,
    *,
    batch_size: int = 32,
    beta: float = 2.0,
    show_progress_bar: bool | None = None,
) -> float:
    """The bi-encoder cosine threshold maximising sentence F-beta (F2) on ``records``.

    Like :func:`choose_threshold`, from one encoding pass; a sentence is kept when its cosine
    with the query exceeds the threshold. ``bi_encoder`` is a SentenceTransformer path (or an
    already loaded model).
    """
    units = sentence_units(records)
    _, cosines = bi_encoder_similarities(
        records, bi_encoder, units, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    return best_f_beta(threshold_curve(records, units, cosines, units=units), beta)


def choose_threshold_for_answer_kept(
    model: Any,
    records: Sequence[Record],
    target: float = 0.95,
    *,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> float | None:
    """The highest grid threshold at which the model's ``answer_kept`` on ``records`` is at least
    ``target``; None if no threshold of the grid (0.01 ... 0.99) reaches it (or no relevant text
    has answers).

    One ``process(..., return_sentence_probabilities=True)`` pass scores every sentence; the
    curve gives ``answer_kept`` at every grid threshold (every answer must survive).

    Raises:
        ValueError: ``target`` outside [0, 1].
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target must be within [0, 1], got {target}")
    records = list(records)
    spans, probabilities = sentence_probabilities(
        model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    curve = threshold_curve(records, spans, probabilities)
    return highest_reaching(curve, "answer_kept", target)
