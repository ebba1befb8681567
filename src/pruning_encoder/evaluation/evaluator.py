"""Evaluate a PruningEncoder against simple baselines, on the same records in one call.

Every method is scored on the same :class:`~pruning_encoder.data.records.Record` lists, with
the metrics of :mod:`.metrics`, and the report is plain JSON (``{"methods": {name: {metric:
value or None}}, "counts": ..., ...}``). :func:`compare` is the one loop; :func:`evaluate`
(ranking and pruning on the same records) and the FanOutQA benchmark
(:func:`~pruning_encoder.evaluation.benchmark.evaluate_fanoutqa`, ranking and pruning cases
apart) call it.

Methods: ``model`` (ranking by ``reranking_score``, None for a pruning_only model; pruning by
``kept_spans`` at the threshold), and the baselines of :mod:`.baselines`: ``bm25``,
``bi-encoder`` (pruning keeps the sentences whose cosine with the query exceeds its threshold),
``keep-all`` and ``keep-first-sentence``. The model and the bi-encoder turn kept sentences into
spans with the same rule, :func:`~pruning_encoder.context_pruning.kept_spans`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..data.records import Record
from .baselines import (
    bi_encoder_similarities,
    bm25_scores,
    keep_all,
    keep_first_sentence,
    load_bi_encoder,
)
from .curves import tradeoff
from .metrics import (
    METRICS,
    Units,
    pruning_metrics,
    ranking_metrics,
    relevant_units,
    sentence_units,
)
from .predictions import kept_of, run_model, scores_of, spans_and_probabilities
from .thresholds import GRID, highest_reaching, kept_at, threshold_curve

__all__ = ["compare", "evaluate"]

logger = logging.getLogger(__name__)


def _row(columns: Sequence[str], *metrics: dict[str, float | None] | None) -> dict[str, Any]:
    merged: dict[str, float | None] = {}
    for values in metrics:
        merged.update(values or {})
    return {name: merged.get(name) for name in columns}


def compare(
    model: Any,
    ranking: Sequence[Record],
    pruning: Sequence[Record],
    *,
    threshold: float | None,
    baselines: bool,
    bi_encoder: Any,
    bi_encoder_threshold: float | None,
    columns: Sequence[str] = METRICS,
    batch_size: int,
    show_progress_bar: bool | None,
) -> dict[str, Any]:
    """Score the model and (with ``baselines``) the baselines: ranking on ``ranking``, pruning on
    ``pruning`` (pass the same list for both to score every record for both, in one
    ``process()`` pass).

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` or its inner model.
        ranking: Records to rank.
        pruning: Records to prune.
        threshold: The model's keep threshold; None: ``config.default_threshold``.
        baselines: Also score ``bm25``, ``bi-encoder``, ``keep-all`` and ``keep-first-sentence``.
        bi_encoder: A SentenceTransformer path or loaded model; None skips that baseline (with
            a warning).
        bi_encoder_threshold: The cosine above which the bi-encoder keeps a sentence; None: the
            highest grid threshold at which it keeps the answers of ``pruning`` at least as often
            as the model does (the lowest, 0.01, with a warning, when none does).
        columns: The metrics of each row, in order.
        batch_size: Pairs per forward pass (and strings per bi-encoder batch).
        show_progress_bar: Passed to ``process()`` and the bi-encoder.

    Returns:
        ``{"methods": {name: {column: value or None}}, "threshold": ...,
        "bi_encoder_threshold": ... or None when the bi-encoder is not scored, "curves":
        {"model": rows, "bi-encoder": rows}}``: the trade-off curves on ``pruning``
        (:mod:`.curves`; the bi-encoder's only when it is scored).
    """
    used = float(model.config.default_threshold if threshold is None else threshold)
    options: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": show_progress_bar}
    same = ranking is pruning
    has_ranking = bool(model.config.has_ranking_head)
    model_scores = None
    if has_ranking and not same:
        results = run_model(model, ranking, threshold=used, probabilities=False, **options)
        model_scores = scores_of(results)
    units = sentence_units(pruning)
    results = run_model(model, pruning, threshold=used, probabilities=True, **options)
    if has_ranking and same:
        model_scores = scores_of(results)
    model_pruning = pruning_metrics(pruning, kept_of(results), units)
    model_ranking = None if model_scores is None else ranking_metrics(ranking, model_scores)
    methods = {"model": _row(columns, model_ranking, model_pruning)}
    spans, probabilities = spans_and_probabilities(results)
    curves = {"model": tradeoff(threshold_curve(pruning, spans, probabilities, units=units))}
    report: dict[str, Any] = {
        "methods": methods,
        "threshold": used,
        "bi_encoder_threshold": None,
        "curves": curves,
    }
    if not baselines:
        return report
    methods["bm25"] = _row(columns, ranking_metrics(ranking, bm25_scores(ranking)))
    chosen = None
    if bi_encoder is None:
        logger.warning("No bi_encoder given: skipping the bi-encoder baseline.")
    else:
        encoder = load_bi_encoder(bi_encoder)
        text_scores, cosines = bi_encoder_similarities(pruning, encoder, units, **options)
        if not same:  # rank whole texts only: their sentences need no encoding
            empty: Units = [[[] for _ in record.texts] for record in ranking]
            text_scores, _ = bi_encoder_similarities(ranking, encoder, empty, **options)
        curve = threshold_curve(pruning, units, cosines, units=units)
        curves["bi-encoder"] = tradeoff(curve)
        chosen = bi_encoder_threshold
        if chosen is None:
            chosen = _matching_threshold(curve, model_pruning["answer_kept"])
        bi_kept = kept_at(pruning, units, cosines, chosen)
        methods["bi-encoder"] = _row(
            columns, ranking_metrics(ranking, text_scores), pruning_metrics(pruning, bi_kept, units)
        )
    methods["keep-all"] = _row(columns, pruning_metrics(pruning, keep_all(pruning), units))
    methods["keep-first-sentence"] = _row(
        columns, pruning_metrics(pruning, keep_first_sentence(units), units)
    )
    report["bi_encoder_threshold"] = None if chosen is None else float(chosen)
    return report


def _matching_threshold(curve: list[dict[str, float | None]], target: float | None) -> float:
    """The bi-encoder's highest grid threshold keeping answers at least as often as ``target``."""
    if target is None or curve[0]["answer_kept"] is None:
        logger.warning("No pruning case has answers: comparing the bi-encoder at %.2f.", GRID[0])
        return float(GRID[0])
    chosen = highest_reaching(curve, "answer_kept", target)
    if chosen is None:
        logger.warning(
            "The bi-encoder keeps the answers of fewer cases than the model at every threshold; "
            "comparing it at %.2f.",
            GRID[0],
        )
        return float(GRID[0])
    return chosen


def evaluate(
    model: Any,
    records: Sequence[Record],
    *,
    threshold: float | None = None,
    batch_size: int = 32,
    baselines: bool = True,
    bi_encoder: Any = None,
    bi_encoder_threshold: float = 0.3,
    show_progress_bar: bool | None = None,
) -> dict[str, Any]:
    """Score the model and (with ``baselines``) the baselines on ``records``; see the module doc.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` or its inner model (``process``,
            ``config``).
        records: The evaluation records, ranked and pruned.
        threshold: The model's keep threshold; defaults to ``config.default_threshold``.
        batch_size: Pairs per forward pass (and strings per bi-encoder batch).
        baselines: Also score ``bm25``, ``bi-encoder``, ``keep-all`` and ``keep-first-sentence``.
        bi_encoder: A SentenceTransformer path (e.g. the untrained backbone) or loaded model;
            without one the bi-encoder baseline is skipped with a warning.
        bi_encoder_threshold: Cosine above which the bi-encoder keeps a sentence.
        show_progress_bar: Passed to ``process()`` and the bi-encoder.

    Returns:
        ``{"methods": {name: {metric: value or None}}, "counts": {...}, "threshold": ...,
        "bi_encoder_threshold": ..., "curves": {"model": rows, "bi-encoder": rows}}``,
        JSON-serialisable; ``curves`` holds the trade-off curves (:mod:`.curves`).
    """
    records = list(records)
    report = compare(
        model,
        records,
        records,
        threshold=threshold,
        baselines=baselines,
        bi_encoder=bi_encoder,
        bi_encoder_threshold=float(bi_encoder_threshold),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )
    units = sentence_units(records)
    relevance = [rel for record in records for rel in record.relevance]
    counts = {
        "queries": len(records),
        "texts": len(relevance),
        "relevant_texts": int(sum(rel > 0 for rel in relevance)),
        "sentences": sum(len(spans) for record_units in units for spans in record_units),
        "relevant_sentences": relevant_units(records, units),
    }
    return {
        "methods": report["methods"],
        "counts": counts,
        "threshold": report["threshold"],
        "bi_encoder_threshold": float(bi_encoder_threshold),
        "curves": report["curves"],
    }
