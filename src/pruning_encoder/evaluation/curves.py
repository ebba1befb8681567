"""The trade-off curve of an evaluation, as a table and as a plot.

Per keep threshold (the grid 0.01 ... 0.99 of :mod:`.thresholds`), for the model (its
keep-probabilities) and the bi-encoder baseline (its cosines): ``answer_kept``,
``removed_distractor_pct`` and ``removed_evidence_pct``, each what an evaluation at that threshold
reports. The two methods' thresholds are on different scales; the plot's third panel compares
them on what they trade, answers kept against distractor characters removed.
"""

from __future__ import annotations

import os
from typing import Any

from ..saving import atomic_file
from .metrics import METRIC_LABELS, format_value

__all__ = [
    "SHOWN_THRESHOLDS",
    "TRADEOFF_COLUMNS",
    "format_curves",
    "new_figure",
    "plot_columns",
    "plot_curves",
    "tradeoff",
]

TRADEOFF_COLUMNS = ("threshold", "answer_kept", "removed_distractor_pct", "removed_evidence_pct")
SHOWN_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_MARKS = {"model": "threshold", "bi-encoder": "bi_encoder_threshold"}
_PLOT_LABELS = {
    "answer_kept": "answer kept",
    "removed_distractor_pct": "distractor characters removed",
    "removed_evidence_pct": "evidence characters removed",
}
_INSTALL_PLOT = "pip install 'pruning-encoder[plot]'"


def tradeoff(curve: list[dict[str, float | None]]) -> list[dict[str, float | None]]:
    """The rows of a :func:`~.thresholds.threshold_curve` cut to :data:`TRADEOFF_COLUMNS`."""
    return [{name: row[name] for name in TRADEOFF_COLUMNS} for row in curve]


def _operating_points(report: dict[str, Any]) -> dict[float, list[str]]:
    """Grid threshold -> the methods whose threshold in ``report`` it is."""
    points: dict[float, list[str]] = {}
    for method, key in _MARKS.items():
        if method in report.get("curves", {}) and report.get(key) is not None:
            points.setdefault(round(float(report[key]), 2), []).append(method)
    return points


def format_curves(
    report: dict[str, Any], *, thresholds: tuple[float, ...] = SHOWN_THRESHOLDS
) -> str:
    """The report's ``curves`` as one table: a row per threshold (``thresholds`` and each
    method's own), per method its answers kept and characters removed; the methods' thresholds
    are marked."""
    curves: dict[str, list[dict[str, Any]]] = report["curves"]
    points = _operating_points(report)
    shown = sorted({round(t, 2) for t in thresholds} | set(points))
    columns = TRADEOFF_COLUMNS[1:]
    headers = ["threshold", *(METRIC_LABELS[c] for _ in curves for c in columns)]
    rows = []
    for threshold in shown:
        cells = [format_value("threshold", threshold)]
        for curve in curves.values():
            row = next((r for r in curve if abs(r["threshold"] - threshold) < 1e-9), None)
            cells.extend(format_value(c, None if row is None else row[c]) for c in columns)
        mark = ", ".join(points.get(threshold, []))
        rows.append((cells, f"<- {mark}" if mark else ""))
    widths = [max(len(r[j]) for r in [headers, *(c for c, _ in rows)]) for j in range(len(headers))]
    group = ""  # each method's name above its first column
    for i, method in enumerate(curves):
        start = sum(widths[: 1 + i * len(columns)]) + 2 * (1 + i * len(columns))
        group = (group.ljust(start) if len(group) < start else group + " ") + method

    def line(cells: list[str], mark: str = "") -> str:
        text = "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return f"{text}  {mark}" if mark else text

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([group, line(headers), rule, *(line(cells, mark) for cells, mark in rows)])


def new_figure(**options: Any) -> Any:
    """A matplotlib ``Figure`` (``layout="constrained"``; no pyplot state).

    Raises:
        ImportError: matplotlib is missing (the message has the install line).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"Plotting needs matplotlib: {_INSTALL_PLOT}") from error
    return Figure(layout="constrained", **options)


def plot_columns(
    axes: Any,
    curve: list[dict[str, Any]],
    styles: tuple[tuple[str, str], ...],
    labels: dict[str, str],
) -> None:
    """Each ``(column, line style)`` of ``styles`` against the curve's thresholds, as a share
    (``*_pct`` columns divided by 100); a column with a missing value is left out."""
    thresholds = [row["threshold"] for row in curve]
    for name, style in styles:
        values = [row[name] for row in curve]
        if any(v is None for v in values):
            continue
        scale = 100.0 if name.endswith("_pct") else 1.0
        axes.plot(thresholds, [v / scale for v in values], style, label=labels[name])


def plot_curves(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw the report's ``curves`` to ``path`` (PNG, or any format matplotlib infers from the
    suffix), atomically: per method, answers kept and characters removed against its threshold,
    and the methods side by side as answers kept against distractor characters removed.

    Raises:
        ImportError: matplotlib is missing (the message has the install line).
    """
    curves: dict[str, list[dict[str, Any]]] = report["curves"]
    points = {m: t for t, methods in _operating_points(report).items() for m in methods}
    figure = new_figure(figsize=(4.2 * (len(curves) + 1), 4.4))
    axes = figure.subplots(1, len(curves) + 1, sharey=True, squeeze=False)[0]
    for ax, (method, curve) in zip(axes, curves.items(), strict=False):
        styles = (("answer_kept", "-"), ("removed_distractor_pct", "--"))
        plot_columns(ax, curve, (*styles, ("removed_evidence_pct", ":")), _PLOT_LABELS)
        if method in points:
            ax.axvline(points[method], color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("keep threshold" if method == "model" else "cosine threshold")
        ax.set_title(method)
        ax.legend(loc="center left", fontsize="small")
    tradeoff_axes = axes[-1]
    for method, curve in curves.items():
        pairs = [
            (row["removed_distractor_pct"] / 100.0, row["answer_kept"])
            for row in curve
            if row["answer_kept"] is not None and row["removed_distractor_pct"] is not None
        ]
        if not pairs:
            continue
        line = tradeoff_axes.plot(*zip(*pairs, strict=True), "-", label=method)
        chosen = [
            r for r in curve if method in points and abs(r["threshold"] - points[method]) < 1e-9
        ]
        if chosen and chosen[0]["answer_kept"] is not None:
            tradeoff_axes.plot(
                chosen[0]["removed_distractor_pct"] / 100.0,
                chosen[0]["answer_kept"],
                "o",
                color=line[0].get_color(),
            )
    tradeoff_axes.set_xlabel("distractor characters removed")
    tradeoff_axes.set_xlim(0, 1)
    tradeoff_axes.set_title("answers kept against distractors removed")
    tradeoff_axes.legend(loc="lower left", fontsize="small")
    axes[0].set_ylabel("share (0..1)")
    axes[0].set_ylim(0, 1.02)
    with atomic_file(path) as staging:
        figure.savefig(staging, dpi=110)
