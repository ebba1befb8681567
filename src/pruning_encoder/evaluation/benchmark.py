"""The FanOutQA validation benchmark in one call: the model against its baselines, one table.

The cases are those of :func:`pruning_encoder.data.fanoutqa.build_validation` (the validation half
of the FanOutQA dev split over the Wikipedia summaries): **ranking** cases (a human-written
question, its evidence summary among the question's 9 top BM25 hits) and **pruning** cases (the
evidence summary, holding every answer, and the question's 2 top hits). Metrics and baselines
are those of :mod:`pruning_encoder.evaluation.evaluator`:

- ranking (``mrr@10``, ``ndcg@10``): the model's ``reranking_score``, ``bm25`` and the
  ``bi-encoder`` (cosine(question, summary));
- pruning (``answer_kept`` — every answer survives —, ``removed_distractor_pct``,
  ``removed_evidence_pct``, ``sentence_f2``): the model at its keep threshold, ``keep-all``,
  ``keep-first-sentence`` and the ``bi-encoder`` keeping the sentences whose cosine with the
  question exceeds a threshold. That threshold is chosen **at the model's operating point**: the
  highest grid threshold (0.01 ... 0.99) at which the bi-encoder keeps the answers of at least as
  many pruning cases as the model does, so that the two are compared by how much they remove at
  the same answer-kept rate (the bi-encoder's threshold is thus fitted on these cases).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.records import Record
from .evaluator import compare
from .thresholds import choose_threshold_for_answer_kept  # still importable from here (old path)

__all__ = [
    "FANOUTQA_METRICS",
    "choose_threshold_for_answer_kept",
    "evaluate_fanoutqa",
    "load_fanoutqa_validation",
]

FANOUTQA_METRICS = (
    "mrr@10",
    "ndcg@10",
    "answer_kept",
    "removed_distractor_pct",
    "removed_evidence_pct",
    "sentence_f2",
)


def load_fanoutqa_validation(*, seed: int = 0) -> dict[str, list[Record]]:
    """``{"ranking": records, "pruning": records}`` built from the installed data packages.

    Raises:
        FileNotFoundError: A source package is missing (the message has the pip install line).
    """
    from ..data import wiki as wiki_data
    from ..data.fanoutqa import build_validation

    summaries, _, validation = wiki_data.load_sources()
    return build_validation(summaries, validation, seed=seed)


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
        "bi_encoder_threshold": ... or None, "curves": {"model": rows, "bi-encoder": rows}}``,
        JSON-serialisable; ``format_table`` prints the methods, ``format_curves`` the
        trade-off curves (threshold -> answer kept, distractor and evidence characters
        removed) and ``plot_curves`` draws them.
    """
    ranking, pruning = list(ranking), list(pruning)
    report = compare(
        model,
        ranking,
        pruning,
        threshold=threshold,
        baselines=baselines,
        bi_encoder=bi_encoder,
        bi_encoder_threshold=None,
        columns=FANOUTQA_METRICS,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )
    return {
        "benchmark": "fanoutqa-validation",
        "methods": report["methods"],
        "counts": {"ranking_cases": len(ranking), "pruning_cases": len(pruning)},
        "threshold": report["threshold"],
        "bi_encoder_threshold": report["bi_encoder_threshold"],
        "curves": report["curves"],
    }
