"""Evaluation: ranking and pruning metrics, baselines, the FanOutQA benchmark, threshold search."""

from __future__ import annotations

from .metrics import (
    choose_bi_encoder_threshold,
    choose_threshold,
    evaluate,
    format_table,
    mrr_at_k,
    ndcg_at_k,
    pruning_metrics,
    ranking_metrics,
    sentence_probabilities,
)

__all__ = [
    "choose_bi_encoder_threshold",
    "choose_threshold",
    "evaluate",
    "format_table",
    "mrr_at_k",
    "ndcg_at_k",
    "pruning_metrics",
    "ranking_metrics",
    "sentence_probabilities",
]
