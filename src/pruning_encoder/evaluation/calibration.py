"""Calibrate the keep threshold on your own records: the trade-off curve and the threshold that
reaches a target.

One ``process(..., return_sentence_probabilities=True)`` call scores every sentence of every
record (one forward pass per text, whatever the number of thresholds); every threshold of the
grid 0.01, 0.02, ..., 0.99 is then applied to those probabilities with ``process()``'s own rules
(:func:`~pruning_encoder.evaluation.thresholds.threshold_curve`), so each row of the curve is
what ``eval --threshold T`` would report. A row holds:

- ``answer_kept``: the share of relevant texts whose pruned text still holds every answer
  (records with ``answers``), and ``relevant_kept``: the share of relevant sentences kept
  (sentence recall against ``relevant_spans``);
- ``removed_relevant_pct`` / ``removed_irrelevant_pct``: characters removed from the relevant and
  from the irrelevant texts, ``removed_evidence_pct`` / ``removed_distractor_pct`` from inside and
  outside the relevant spans, and ``removed_pct`` from all texts;
- ``tokens_kept_pct``: tokens of the model's tokenizer kept, out of every text's sentences.

Targets: ``target_answer_kept`` picks the highest threshold (the most removed) whose
``answer_kept`` (or, for records with spans but no answers, ``relevant_kept``) reaches the target;
``target_compression`` the lowest threshold (the most kept) whose ``removed_pct`` reaches
``100 * target``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..context_pruning import sentence_tokens
from ..data.records import Record, load_records
from ..saving import atomic_file
from .curves import new_figure, plot_columns
from .metrics import METRIC_LABELS, Units, format_value, relevant_units, sentence_units
from .predictions import sentence_probabilities
from .thresholds import GRID, highest_reaching, keep_masks, lowest_reaching, threshold_curve

__all__ = ["CURVE_COLUMNS", "calibrate", "format_calibration", "plot_calibration", "summary"]

CURVE_COLUMNS = (
    "threshold",
    "answer_kept",
    "relevant_kept",
    "removed_relevant_pct",
    "removed_irrelevant_pct",
    "removed_evidence_pct",
    "removed_distractor_pct",
    "removed_pct",
    "tokens_kept_pct",
)
_LABELS = {
    **METRIC_LABELS,
    "threshold": "threshold",
    "relevant_kept": "relevant kept",
    "removed_pct": "rm all %",
    "tokens_kept_pct": "tokens kept %",
}
_PLOT_LABELS = {
    "answer_kept": "answer kept",
    "relevant_kept": "relevant sentences kept",
    "removed_pct": "characters removed (all texts)",
    "removed_distractor_pct": "characters removed (outside relevant spans)",
    "tokens_kept_pct": "tokens kept",
}
_TARGET_LABELS = {
    "answer_kept": "answer kept",
    "relevant_kept": "relevant sentences kept",
    "compression": "characters removed",
}


def calibrate(
    model: Any,
    records: str | os.PathLike[str] | Iterable[dict[str, Any]] | Sequence[Record],
    *,
    target_answer_kept: float | None = None,
    target_compression: float | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> dict[str, Any]:
    """Sweep the keep threshold over ``records`` and choose the one that reaches the target.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` (any backend, imported models too).
        records: Records in the training format (a JSONL path, dicts or
            :class:`~pruning_encoder.data.records.Record`), each with ``answers`` or
            ``relevant_spans``.
        target_answer_kept: In (0, 1]: keep every answer of this share of the relevant texts
            (relevant sentences instead, when the records have spans but no answers).
        target_compression: In (0, 1]: remove this share of all characters.
        batch_size: Passed to ``process()``.
        show_progress_bar: Passed to ``process()``.

    Returns:
        ``{"threshold": the chosen threshold or None when no grid threshold reaches the
        target, "target": {"metric": "answer_kept" | "relevant_kept" | "compression",
        "value": ...}, "curve": [row per grid threshold, keys CURVE_COLUMNS, values None where
        they do not apply], "default_threshold": the model's, "counts": {...}}``,
        JSON-serialisable.

    Raises:
        ValueError: Not exactly one target, a target outside (0, 1], a record without answers
            or relevant spans, or too few relevant texts (sentences) to tell the target apart
            from 1.0; :class:`~pruning_encoder.data.records.DataError` on malformed records.
        TypeError: A target that is not a number.

    Example:
        >>> calibration = model.calibrate("examples/calibration.jsonl", target_answer_kept=0.9)
        ... # doctest: +SKIP
        >>> calibration["threshold"]  # doctest: +SKIP
        0.27
    """
    metric, target = _target(target_answer_kept, target_compression)
    records = _records(records)
    units = sentence_units(records)
    metric, counts = _check_records(records, units, metric, target)
    spans, probabilities = sentence_probabilities(
        model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    curve = _curve(model, records, units, spans, probabilities)
    if metric == "compression":  # the lowest threshold that removes enough keeps the most
        threshold = lowest_reaching(curve, "removed_pct", 100.0 * target)
    else:  # the highest that keeps enough removes the most
        threshold = highest_reaching(curve, metric, target)
    return {
        "threshold": threshold,
        "target": {"metric": metric, "value": target},
        "curve": curve,
        "default_threshold": float(model.config.default_threshold),
        "counts": counts,
    }


def _target(answer_kept: float | None, compression: float | None) -> tuple[str, float]:
    if (answer_kept is None) == (compression is None):
        raise ValueError("Give one target: target_answer_kept or target_compression.")
    name, value = (
        ("target_answer_kept", answer_kept)
        if answer_kept is not None
        else ("target_compression", compression)
    )
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a number in (0, 1], got {value!r}.")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be within (0, 1], got {value}.")
    return ("answer_kept" if name == "target_answer_kept" else "compression"), float(value)


def _records(records: Any) -> list[Record]:
    if (
        isinstance(records, list | tuple)
        and records
        and all(isinstance(r, Record) for r in records)
    ):
        return list(records)
    return load_records(records)


def _check_records(
    records: list[Record], units: Units, metric: str, target: float
) -> tuple[str, dict[str, int]]:
    """The metric the target applies to, and the counts; refuses records it cannot use."""
    has_answers = [bool(record.answers) for record in records]
    has_spans = [any(spans for spans in record.relevant_spans) for record in records]
    for i, (answers, spans) in enumerate(zip(has_answers, has_spans, strict=True)):
        if not answers and not spans:
            raise ValueError(
                f"Record {i} has neither answers nor relevant_spans: calibration needs one or "
                "the other in every record."
            )
    relevant_texts = sum(rel > 0 for record in records for rel in record.relevance)
    relevant_sentences = relevant_units(records, units)
    counts = {
        "records": len(records),
        "texts": sum(len(record.texts) for record in records),
        "relevant_texts": int(relevant_texts),
        "relevant_sentences": int(relevant_sentences),
    }
    if metric == "compression":
        return metric, counts
    if all(has_answers):
        metric, count, what = "answer_kept", relevant_texts, "relevant texts with answers"
    elif all(has_spans):
        metric, count, what = "relevant_kept", relevant_sentences, "relevant sentences"
    else:
        first = has_answers.index(False)
        raise ValueError(
            f"Record {first} has no answers and record {has_spans.index(False)} no relevant "
            "spans: give every record answers (answer kept) or every record relevant_spans "
            "(relevant sentences kept)."
        )
    # A share of n units moves in steps of 1/n: below 1/(1 - target) units, one miss already
    # falls short of the target, which then cannot be told apart from 1.0.
    needed = 1 if target >= 1.0 else math.ceil(round(1.0 / (1.0 - target), 6))
    if count < needed:
        raise ValueError(
            f"Too few records for target_answer_kept={target:g}: it needs at least {needed} "
            f"{what} (so that one miss in {needed} is allowed), and these {len(records)} "
            f"records have {count}."
        )
    return metric, counts


def _curve(
    model: Any,
    records: list[Record],
    units: Units,
    spans: Units,
    probabilities: list[list[np.ndarray]],
) -> list[dict[str, float | None]]:
    """The :data:`CURVE_COLUMNS` at every grid threshold."""
    texts = [text for record in records for text in record.texts]
    flat_spans = [s for record_spans in spans for s in record_spans]
    tokens = [
        np.asarray(sentence_tokens(model.tokenizer, text, s), dtype=np.int64)
        for text, s in zip(texts, flat_spans, strict=True)
    ]
    masks = keep_masks([p for group in probabilities for p in group], GRID.tolist())
    kept_tokens = sum(
        (t @ mask for t, mask in zip(tokens, masks, strict=True)), np.zeros(len(GRID))
    )
    total_tokens = sum(int(t.sum()) for t in tokens)
    curve = threshold_curve(records, spans, probabilities, units=units)
    return [
        {
            "threshold": row["threshold"],
            "answer_kept": row["answer_kept"],
            "relevant_kept": row["sentence_recall"],
            "removed_relevant_pct": row["removed_relevant_pct"],
            "removed_irrelevant_pct": row["removed_irrelevant_pct"],
            "removed_evidence_pct": row["removed_evidence_pct"],
            "removed_distractor_pct": row["removed_distractor_pct"],
            "removed_pct": row["removed_pct"],
            "tokens_kept_pct": 100.0 * float(kept) / total_tokens if total_tokens else None,
        }
        for row, kept in zip(curve, kept_tokens, strict=True)
    ]


def _row_at(calibration: dict[str, Any], threshold: float) -> dict[str, Any]:
    return min(calibration["curve"], key=lambda row: abs(row["threshold"] - threshold))


def summary(calibration: dict[str, Any]) -> str:
    """One line: the chosen threshold and what it keeps, or why there is none."""
    target = calibration["target"]
    label = _TARGET_LABELS[target["metric"]]
    column = "removed_pct" if target["metric"] == "compression" else target["metric"]
    wanted = f"{label} >= {target['value']:g}"
    if calibration["threshold"] is None:
        values = [row[column] for row in calibration["curve"] if row[column] is not None]
        best = max(values) if values else None
        shown = "none" if best is None else format_value(column, best)
        return (
            f"No threshold of {GRID[0]:.2f}..{GRID[-1]:.2f} reaches {wanted} (the best is {shown})."
        )
    row = _row_at(calibration, calibration["threshold"])
    reached = "" if column == "removed_pct" else f"{label} {format_value(column, row[column])}, "
    return (
        f"Threshold {calibration['threshold']:.2f} reaches {wanted}: {reached}"
        f"{row['removed_pct']:.1f}% of the characters removed, "
        f"{row['tokens_kept_pct']:.1f}% of the tokens kept "
        f"(the model's default threshold is {calibration['default_threshold']:.2f})."
    )


def format_calibration(calibration: dict[str, Any], *, step: float = 0.05) -> str:
    """The trade-off table (every ``step`` of threshold, the chosen and the default threshold
    marked) and the summary line."""
    curve = calibration["curve"]
    names = [n for n in CURVE_COLUMNS if any(row[n] is not None for row in curve)]
    marks = {calibration["default_threshold"]: "default"}
    if calibration["threshold"] is not None:
        marks[calibration["threshold"]] = "chosen"
    every = round(step * 100)
    rows = []
    for row in curve:
        threshold = row["threshold"]
        mark = next((m for t, m in marks.items() if abs(t - threshold) < 1e-9), "")
        if mark or round(threshold * 100) % every == 0 or threshold in (GRID[0], GRID[-1]):
            rows.append([*(format_value(n, row[n]) for n in names), f"<- {mark}" if mark else ""])
    headers = [*(_LABELS[n] for n in names), ""]
    widths = [max(len(r[j]) for r in [headers, *rows]) for j in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) for c, w in zip(cells[:-1], widths, strict=False)).rstrip() + (
            f"  {cells[-1]}" if cells[-1] else ""
        )

    rule = "  ".join("-" * w for w in widths[:-1])
    return "\n".join(
        [line(headers).rstrip(), rule, *(line(r) for r in rows), "", summary(calibration)]
    )


def plot_calibration(calibration: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw the curve to ``path`` (PNG, or any format matplotlib infers from the suffix),
    atomically.

    Raises:
        ImportError: matplotlib is missing (the message has the install line).
    """
    curve = calibration["curve"]
    figure = new_figure(figsize=(7, 4.8))
    axes = figure.add_subplot()
    styles = (("answer_kept", "-"), ("relevant_kept", "-"), ("removed_pct", "--"))
    plot_columns(
        axes,
        curve,
        (*styles, ("removed_distractor_pct", ":"), ("tokens_kept_pct", "-.")),
        _PLOT_LABELS,
    )
    target = calibration["target"]
    axes.axhline(target["value"], color="grey", linewidth=0.8)
    if calibration["threshold"] is not None:
        axes.axvline(calibration["threshold"], color="black", linewidth=1.0)
        axes.annotate(
            f"chosen {calibration['threshold']:.2f}",
            (calibration["threshold"], 0.02),
            xytext=(4, 0),
            textcoords="offset points",
        )
    axes.set_xlabel("keep threshold")
    axes.set_ylabel("share (0..1)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_title(f"target: {_TARGET_LABELS[target['metric']]} >= {target['value']:g}")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, fontsize="small")
    with atomic_file(path) as staging:
        figure.savefig(staging, dpi=110)
