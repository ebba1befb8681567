"""Ranking and pruning metrics, and the table that shows them.

Ranking metrics (per query over its own texts, binary relevance :attr:`Record.relevance`,
averaged over the queries with at least one relevant text; a query without one is skipped):

- ``mrr@10``: 1 / rank of the first relevant text if it is in the top 10, else 0.
- ``ndcg@10``: DCG@10 / ideal DCG@10 with binary gains, ``DCG = sum rel_i / log2(i + 1)``
  over ranks ``i = 1..10``.
- Ties are broken pessimistically: texts with equal scores are ordered with the irrelevant ones
  first, then by original index, so a constant scorer earns no credit from the input order.

Pruning metrics. The units are the sentences ``split_sentences(text)`` of every text. A unit is
*relevant* when at least half of its characters lie inside the record's ``relevant_spans``,
and *kept* when at least half of its characters lie inside the method's kept spans. Counts are
micro-pooled over all texts of all records:

- ``sentence_precision`` = kept relevant / kept units (None when nothing is kept);
- ``sentence_recall`` = kept relevant / relevant units (None when no unit is relevant);
- ``sentence_f1`` and ``sentence_f2``: F-beta ``(1 + b²)·tp / ((1 + b²)·tp + b²·fn + fp)``
  with b = 1 and 2 (None when the denominator is 0);
- ``answer_kept``: over the relevant texts of records that have ``answers``, the fraction whose
  pruned text (the kept spans, concatenated) contains every answer, case-insensitively (None if
  there are no such texts). A relevant text without any answer in it counts as a miss, so
  keep-all's value is the ceiling for every method;
- ``removed_relevant_pct`` / ``removed_irrelevant_pct``: ``100 * (1 - kept characters /
  original characters)``, both summed over the relevant / irrelevant texts (None if none);
- ``removed_evidence_pct`` / ``removed_distractor_pct``: the same, over the characters inside /
  outside the ``relevant_spans`` of every text (a relevant text's other sentences count as
  distractors), as in the FanOutQA benchmark of :mod:`pruning_encoder.data.fanoutqa`.

The pruning metrics are computed from additive counts per text (:func:`text_counts`,
:func:`metrics_from_counts`), so that a threshold sweep can sum them per threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.records import Record, merge_spans
from ..sentence_splitter import Span, split_sentences

__all__ = [
    "COUNTS",
    "METRICS",
    "METRIC_LABELS",
    "PRUNING_METRICS",
    "f_beta",
    "format_table",
    "format_value",
    "metrics_from_counts",
    "mostly_inside",
    "mrr_at_k",
    "ndcg_at_k",
    "pruning_metrics",
    "ranking_metrics",
    "relevant_units",
    "removed_pct",
    "sentence_units",
    "text_counts",
]

METRICS = (
    "mrr@10",
    "ndcg@10",
    "sentence_precision",
    "sentence_recall",
    "sentence_f1",
    "sentence_f2",
    "answer_kept",
    "removed_relevant_pct",
    "removed_irrelevant_pct",
    "removed_evidence_pct",
    "removed_distractor_pct",
)
PRUNING_METRICS = METRICS[2:]
METRIC_LABELS = {
    "mrr@10": "MRR@10",
    "ndcg@10": "nDCG@10",
    "sentence_precision": "sent P",
    "sentence_recall": "sent R",
    "sentence_f1": "sent F1",
    "sentence_f2": "sent F2",
    "answer_kept": "answer kept",
    "removed_relevant_pct": "rm rel %",
    "removed_irrelevant_pct": "rm irrel %",
    "removed_evidence_pct": "rm evid %",
    "removed_distractor_pct": "rm distr %",
}

Scores = list[list[float]]  # per record, per text
Units = list[list[list[Span]]]  # per record, per text, sentence spans
Kept = list[list[list[Span]]]  # per record, per text, kept spans

# The additive counts of one text, in this order (see text_counts).
COUNTS = (
    "tp",
    "fp",
    "fn",
    "answers_found",
    "answers_total",
    "kept_relevant_chars",
    "relevant_chars",
    "kept_irrelevant_chars",
    "irrelevant_chars",
    "kept_evidence_chars",
    "evidence_chars",
    "kept_distractor_chars",
    "distractor_chars",
)
_AT = {name: i for i, name in enumerate(COUNTS)}


# --------------------------------------------------------------------------- ranking metrics


def _ranked_relevance(scores: Sequence[float], relevance: Sequence[float]) -> list[float]:
    """Relevance in ranked order: by score, descending; ties irrelevant-first, then by index."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), relevance[i] > 0, i))
    return [1.0 if relevance[i] > 0 else 0.0 for i in order]


def mrr_at_k(scores: Sequence[float], relevance: Sequence[float], k: int = 10) -> float | None:
    """Reciprocal rank of the first relevant text within the top ``k``; None if none relevant."""
    ranked = _ranked_relevance(scores, relevance)
    if not any(ranked):
        return None
    for rank, rel in enumerate(ranked[:k], start=1):
        if rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(scores: Sequence[float], relevance: Sequence[float], k: int = 10) -> float | None:
    """Binary-gain nDCG@k; None if no text is relevant."""
    ranked = _ranked_relevance(scores, relevance)
    total = int(sum(ranked))
    if not total:
        return None
    dcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ranked[:k], start=1))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(total, k) + 1))
    return dcg / ideal


def ranking_metrics(records: Sequence[Record], scores: Scores) -> dict[str, float | None]:
    """``mrr@10`` and ``ndcg@10`` averaged over the queries with at least one relevant text."""
    mrr, ndcg = [], []
    for record, record_scores in zip(records, scores, strict=True):
        value = mrr_at_k(record_scores, record.relevance)
        if value is None:
            continue
        mrr.append(value)
        ndcg.append(ndcg_at_k(record_scores, record.relevance) or 0.0)
    if not mrr:
        return {"mrr@10": None, "ndcg@10": None}
    return {"mrr@10": float(np.mean(mrr)), "ndcg@10": float(np.mean(ndcg))}


# --------------------------------------------------------------------------- pruning metrics


def _overlap(span: Span, spans: Sequence[Span]) -> int:
    start, end = span
    return sum(max(0, min(end, e) - max(start, s)) for s, e in spans)


def mostly_inside(span: Span, spans: Sequence[Span]) -> bool:
    """Whether at least half of the characters of ``span`` lie inside ``spans``."""
    return 2 * _overlap(span, spans) >= span[1] - span[0]


def f_beta(tp: float, fp: float, fn: float, beta: float) -> float | None:
    """``(1 + b²)·tp / ((1 + b²)·tp + b²·fn + fp)``; None when the denominator is 0."""
    b2 = beta * beta
    denominator = (1 + b2) * tp + b2 * fn + fp
    return None if denominator == 0 else (1 + b2) * tp / denominator


def sentence_units(records: Sequence[Record]) -> Units:
    """The units of the pruning metrics: ``split_sentences(text)`` of every text."""
    return [[split_sentences(text) for text in record.texts] for record in records]


def relevant_units(records: Sequence[Record], units: Units) -> int:
    """How many ``units`` are relevant (at least half inside the records' relevant spans)."""
    return sum(
        mostly_inside(unit, record.relevant_spans[i])
        for record, record_units in zip(records, units, strict=True)
        for i, spans in enumerate(record_units)
        for unit in spans
    )


def text_counts(record: Record, i: int, kept: Sequence[Span], units: Sequence[Span]) -> np.ndarray:
    """The additive counts (:data:`COUNTS`, ``[13]``) of text ``i`` of ``record`` pruned to the
    ``kept`` spans; ``units`` are its sentences."""
    text = record.texts[i]
    spans = merge_spans(kept)
    counts = np.zeros(len(COUNTS))
    for unit in units:
        relevant = mostly_inside(unit, record.relevant_spans[i])
        keep = mostly_inside(unit, spans)
        counts[_AT["tp"]] += relevant and keep
        counts[_AT["fp"]] += keep and not relevant
        counts[_AT["fn"]] += relevant and not keep
    pruned = "".join(text[s:e] for s, e in spans)
    group = "relevant" if record.relevance[i] > 0 else "irrelevant"
    counts[_AT[f"kept_{group}_chars"]] += len(pruned)
    counts[_AT[f"{group}_chars"]] += len(text)
    inside = merge_spans(record.relevant_spans[i])
    inside_chars = sum(e - s for s, e in inside)
    kept_inside = sum(_overlap(span, inside) for span in spans)
    counts[_AT["evidence_chars"]] += inside_chars
    counts[_AT["kept_evidence_chars"]] += kept_inside
    counts[_AT["distractor_chars"]] += len(text) - inside_chars
    counts[_AT["kept_distractor_chars"]] += len(pruned) - kept_inside
    if group == "relevant" and record.answers:
        lowered = pruned.lower()
        counts[_AT["answers_total"]] += 1
        counts[_AT["answers_found"]] += all(a.lower() in lowered for a in record.answers)
    return counts


def _removed(counts: np.ndarray, what: str) -> float | None:
    total = counts[_AT[f"{what}_chars"]]
    return float(100.0 * (1.0 - counts[_AT[f"kept_{what}_chars"]] / total)) if total else None


def metrics_from_counts(counts: np.ndarray) -> dict[str, float | None]:
    """The pruning metrics of summed :func:`text_counts` (see the module doc)."""
    tp, fp, fn = (float(counts[_AT[name]]) for name in ("tp", "fp", "fn"))
    answers = counts[_AT["answers_total"]]
    return {
        "sentence_precision": tp / (tp + fp) if tp + fp else None,
        "sentence_recall": tp / (tp + fn) if tp + fn else None,
        "sentence_f1": f_beta(tp, fp, fn, 1.0),
        "sentence_f2": f_beta(tp, fp, fn, 2.0),
        "answer_kept": float(counts[_AT["answers_found"]] / answers) if answers else None,
        "removed_relevant_pct": _removed(counts, "relevant"),
        "removed_irrelevant_pct": _removed(counts, "irrelevant"),
        "removed_evidence_pct": _removed(counts, "evidence"),
        "removed_distractor_pct": _removed(counts, "distractor"),
    }


def removed_pct(counts: np.ndarray) -> float | None:
    """Characters removed from all texts, in percent, from summed :func:`text_counts`."""
    total = counts[_AT["relevant_chars"]] + counts[_AT["irrelevant_chars"]]
    kept = counts[_AT["kept_relevant_chars"]] + counts[_AT["kept_irrelevant_chars"]]
    return float(100.0 * (1.0 - kept / total)) if total else None


def pruning_metrics(
    records: Sequence[Record], kept: Kept, units: Units | None = None
) -> dict[str, float | None]:
    """Sentence P/R/F1/F2, ``answer_kept`` and removed-character percentages (see module doc)."""
    units = sentence_units(records) if units is None else units
    counts = np.zeros(len(COUNTS))
    for record, record_kept, record_units in zip(records, kept, units, strict=True):
        for i in range(len(record.texts)):
            counts += text_counts(record, i, record_kept[i], record_units[i])
    return metrics_from_counts(counts)


# --------------------------------------------------------------------------- the table


def format_value(name: str, value: Any) -> str:
    """A metric's value as the tables print it: "—" when missing, a threshold with 2 decimals,
    a percentage (``*_pct``) with 1, anything else with 3."""
    if value is None:
        return "—"
    if name == "threshold":
        return f"{value:.2f}"
    return f"{value:.1f}" if name.endswith("_pct") else f"{value:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table: one row per method, one column per metric; "—" where one is missing.

    Values have 3 decimals, percentages (``*_pct``) 1 decimal.
    """
    methods: dict[str, dict[str, Any]] = report["methods"]
    names = list(METRICS)
    for row in methods.values():
        names.extend(name for name in row if name not in names)
    names = [name for name in names if any(row.get(name) is not None for row in methods.values())]

    headers = ["method", *(METRIC_LABELS.get(name, name) for name in names)]
    rows = [
        [method, *(format_value(name, row.get(name)) for name in names)]
        for method, row in methods.items()
    ]
    widths = [max(len(r[j]) for r in [headers, *rows]) for j in range(len(headers))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
