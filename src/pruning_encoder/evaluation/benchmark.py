"""The FanOutQA validation benchmark in one call: the model against its baselines, one table.

The cases are those of :func:`pruning_encoder.data.fanoutqa.build_validation` (the validation half
of the FanOutQA dev split over the Wikipedia summaries): **ranking** cases (a human-written
question, its evidence summary among 9 BM25 neighbours) and **pruning** cases (a context of 3
summaries, the evidence summary holding every answer). Metrics and baselines are those of
:mod:`pruning_encoder.evaluation.metrics`:

- ranking (``mrr@10``, ``ndcg@10``): the model's ``reranking_score``, ``bm25`` and the
  ``bi-encoder`` (cosine(question, summary));
- pruning (``answer_kept`` — every answer survives —, ``removed_distractor_pct``,
  ``removed_evidence_pct``, ``sentence_f2``): the model at its keep threshold, ``keep-all``,
  ``keep-first-sentence`` and the ``bi-encoder`` keeping the sentences whose cosine with the
  question reaches a threshold. That threshold is chosen **at the model's operating point**: the
  highest grid threshold (0.01 ... 0.99) at which the bi-encoder keeps the answers of at least as
  many pruning cases as the model does, so that the two are compared by how much they remove at
  the same answer-kept rate (the bi-encoder's threshold is thus fitted on these cases).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..context_pruning import _kept_spans
from ..data.records import Record, merge_spans
from ..sentence_splitter import Span
from .metrics import (
    GRID,
    _bi_encoder_similarities,
    _bm25_scores,
    _keep_all,
    _keep_first_sentence,
    _load_bi_encoder,
    _run_model,
    _runs,
    _units,
    pruning_metrics,
    ranking_metrics,
    sentence_probabilities,
)

__all__ = [
    "FANOUTQA_METRICS",
    "choose_threshold_for_answer_kept",
    "evaluate_fanoutqa",
    "load_fanoutqa_validation",
]

logger = logging.getLogger(__name__)

FANOUTQA_METRICS = (
    "mrr@10",
    "ndcg@10",
    "answer_kept",
    "removed_distractor_pct",
    "removed_evidence_pct",
    "sentence_f2",
)
_TOLERANCE = 1e-9

KeepRule = Callable[[str, Sequence[Span], Any], list[Span]]  # (text, sentences, keep mask)


def load_fanoutqa_validation(*, seed: int = 0) -> dict[str, list[Record]]:
    """``{"ranking": records, "pruning": records}`` built from the installed data packages.

    Raises:
        FileNotFoundError: A source package is missing (the message has the pip install line).
    """
    from ..data import wiki as wiki_data
    from ..data.fanoutqa import build_validation

    summaries, _, validation = wiki_data.load_sources()
    return build_validation(summaries, validation, seed=seed)


def _answer_kept_by_threshold(
    records: Sequence[Record],
    spans: Sequence[Sequence[Sequence[Span]]],
    scores: Sequence[Sequence[np.ndarray]],
    *,
    strict: bool,
    kept_spans: KeepRule,
) -> np.ndarray | None:
    """``answer_kept`` (as :func:`pruning_metrics` counts it) at every threshold of ``GRID``.

    A sentence is kept when its score is above (``strict``) or at least the threshold; the kept
    sentences become spans with ``kept_spans``. None if no relevant text has answers.
    """
    hits = np.zeros(len(GRID))
    total = 0
    for record, record_spans, record_scores in zip(records, spans, scores, strict=True):
        if not record.answers:
            continue
        answers = [answer.lower() for answer in record.answers]
        for i, text in enumerate(record.texts):
            if record.relevance[i] <= 0:
                continue
            total += 1
            values = np.asarray(record_scores[i], dtype=np.float64)[:, None]
            keep = values > GRID[None, :] if strict else values >= GRID[None, :]
            seen: dict[bytes, bool] = {}
            for j in range(len(GRID)):
                pattern = keep[:, j].tobytes()
                if pattern not in seen:
                    kept = merge_spans(kept_spans(text, record_spans[i], keep[:, j]))
                    pruned = "".join(text[s:e] for s, e in kept).lower()
                    seen[pattern] = all(answer in pruned for answer in answers)
                hits[j] += seen[pattern]
    return hits / total if total else None


def _highest_reaching(curve: np.ndarray | None, target: float) -> float | None:
    """The highest grid threshold whose value on ``curve`` is at least ``target``."""
    if curve is None:
        return None
    reached = np.flatnonzero(curve >= target - _TOLERANCE)
    return float(GRID[reached[-1]]) if len(reached) else None


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

    Use validation records, never test data: the threshold is fitted to them. One
    ``process(..., return_sentence_probabilities=True)`` pass scores every sentence; every grid
    threshold is then applied to those probabilities as ``process()`` would (a sentence is kept
    when its probability exceeds the threshold) and ``answer_kept`` is counted as in
    :func:`~pruning_encoder.evaluation.metrics.pruning_metrics` (every answer must survive).
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target must be within [0, 1], got {target}")
    records = list(records)
    spans, probabilities = sentence_probabilities(
        model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    curve = _answer_kept_by_threshold(
        records, spans, probabilities, strict=True, kept_spans=_kept_spans
    )
    return _highest_reaching(curve, target)


def _row(
    ranking: dict[str, float | None] | None = None, pruning: dict[str, float | None] | None = None
) -> dict[str, float | None]:
    row: dict[str, float | None] = dict.fromkeys(FANOUTQA_METRICS)
    for metrics in (ranking, pruning):
        if metrics is not None:
            row.update({name: metrics[name] for name in FANOUTQA_METRICS if name in metrics})
    return row


def evaluate_fanoutqa(
    model: Any,
    ranking: Sequence[Record],
    pruning: Sequence[Record],
    *,
    threshold: float | None = None,
    baselines: bool = True,
    bi_encoder: Any = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> dict[str, Any]:
    """The FanOutQA validation benchmark of the model and its baselines (see the module doc).

    The bi-encoder's pruning threshold is chosen on ``pruning`` at the model's operating point:
    the highest grid threshold whose ``answer_kept`` is at least the model's, so the baseline is
    compared with the model at the same answer-kept rate. If no grid threshold reaches it, the
    lowest one (0.01) is used and a warning is logged.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` or its inner model.
        ranking: Ranking records (``build_validation(...)["ranking"]``).
        pruning: Pruning records with ``answers`` (``build_validation(...)["pruning"]``).
        threshold: The model's keep threshold; defaults to ``config.default_threshold``.
        baselines: Also score ``bm25``, ``bi-encoder``, ``keep-all`` and ``keep-first-sentence``.
        bi_encoder: A SentenceTransformer path (the model's backbone) or loaded model; without
            one the bi-encoder baseline is skipped with a warning.
        batch_size: Pairs per forward pass (and strings per bi-encoder batch).
        show_progress_bar: Passed to ``process()`` and the bi-encoder.

    Returns:
        ``{"benchmark": "fanoutqa-validation", "methods": {name: {metric: value or None}},
        "counts": {"ranking_cases": ..., "pruning_cases": ...}, "threshold": ...,
        "bi_encoder_threshold": ... or None}``, JSON-serialisable; ``format_table`` prints it.
    """
    ranking, pruning = list(ranking), list(pruning)
    used = float(model.config.default_threshold if threshold is None else threshold)
    options: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": show_progress_bar}
    model_ranking = None
    if model.config.has_ranking_head:
        results = _run_model(model, ranking, threshold=used, probabilities=False, **options)
        scores = [[float(r["reranking_score"]) for r in group] for group in results]
        model_ranking = ranking_metrics(ranking, scores)
    units = _units(pruning)
    results = _run_model(model, pruning, threshold=used, probabilities=False, **options)
    kept = [[[tuple(s) for s in r["kept_spans"]] for r in group] for group in results]
    model_pruning = pruning_metrics(pruning, kept, units)
    methods = {"model": _row(model_ranking, model_pruning)}
    bi_encoder_threshold = None
    if baselines:
        methods["bm25"] = _row(ranking_metrics(ranking, _bm25_scores(ranking)))
        if bi_encoder is None:
            logger.warning("No bi_encoder given: skipping the bi-encoder baseline.")
        else:
            encoder = _load_bi_encoder(bi_encoder)
            text_scores, _ = _bi_encoder_similarities(
                ranking, encoder, [[[] for _ in r.texts] for r in ranking], **options
            )
            _, cosines = _bi_encoder_similarities(pruning, encoder, units, **options)
            bi_encoder_threshold = _matching_threshold(
                pruning, units, cosines, model_pruning["answer_kept"]
            )
            bi_kept = [
                [
                    _runs(text, spans, list(values >= bi_encoder_threshold))
                    for text, spans, values in zip(r.texts, r_units, r_cosines, strict=True)
                ]
                for r, r_units, r_cosines in zip(pruning, units, cosines, strict=True)
            ]
            methods["bi-encoder"] = _row(
                ranking_metrics(ranking, text_scores), pruning_metrics(pruning, bi_kept, units)
            )
        methods["keep-all"] = _row(pruning=pruning_metrics(pruning, _keep_all(pruning), units))
        methods["keep-first-sentence"] = _row(
            pruning=pruning_metrics(pruning, _keep_first_sentence(pruning, units), units)
        )
    return {
        "benchmark": "fanoutqa-validation",
        "methods": methods,
        "counts": {"ranking_cases": len(ranking), "pruning_cases": len(pruning)},
        "threshold": used,
        "bi_encoder_threshold": bi_encoder_threshold,
    }


def _matching_threshold(
    pruning: Sequence[Record],
    units: Sequence[Sequence[Sequence[Span]]],
    cosines: Sequence[Sequence[np.ndarray]],
    target: float | None,
) -> float:
    """The bi-encoder's highest grid threshold keeping answers at least as often as ``target``."""
    curve = _answer_kept_by_threshold(pruning, units, cosines, strict=False, kept_spans=_runs)
    if curve is None or target is None:
        logger.warning("No pruning case has answers: comparing the bi-encoder at %.2f.", GRID[0])
        return float(GRID[0])
    chosen = _highest_reaching(curve, target)
    if chosen is None:
        logger.warning(
            "The bi-encoder keeps the answers of fewer cases than the model at every threshold; "
            "comparing it at %.2f.",
            GRID[0],
        )
        return float(GRID[0])
    return chosen
