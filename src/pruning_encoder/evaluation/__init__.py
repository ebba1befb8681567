"""Evaluation: ranking and pruning metrics, baselines, the FanOutQA benchmark, threshold search."""

from __future__ import annotations

from .benchmark import evaluate_fanoutqa, load_fanoutqa_validation
from .curves import format_curves, plot_curves
from .evaluator import evaluate
from .metrics import METRICS, format_table, mrr_at_k, ndcg_at_k, pruning_metrics, ranking_metrics
from .predictions import sentence_probabilities
from .thresholds import (
    GRID,
    choose_bi_encoder_threshold,
    choose_threshold,
    choose_threshold_for_answer_kept,
    threshold_curve,
)

__all__ = [
    "GRID",
    "METRICS",
    "choose_bi_encoder_threshold",
    "choose_threshold",
    "choose_threshold_for_answer_kept",
    "evaluate",
    "evaluate_fanoutqa",
    "format_curves",
    "format_table",
    "load_fanoutqa_validation",
    "mrr_at_k",
    "ndcg_at_k",
    "plot_curves",
    "pruning_metrics",
    "ranking_metrics",
    "sentence_probabilities",
    "threshold_curve",
]
