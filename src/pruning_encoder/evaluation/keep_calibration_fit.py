"""Fit a calibration of sentence keep-probabilities on labelled records, and measure it.

The map itself, and how ``process()`` applies it, is :mod:`pruning_encoder.keep_calibration`.
Here it is fitted: one ``process()`` pass over every (query, text) pair of the records, with the
model's calibration switched off, gives each sentence its raw mean keep-probability; a sentence
is *relevant* by the rule of the evaluation (at least half of its characters inside the
record's ``relevant_spans``, :mod:`pruning_encoder.evaluation.metrics`); the map is then fitted
to those pairs:

- ``"platt"``: ``sigmoid(a * logit(p) + b)`` by maximum likelihood, with Platt's smoothed
  targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (J. Platt, 1999), by Newton's method with
  a backtracking line search (H.-T. Lin, C.-J. Lin and R. C. Weng, "A note on Platt's
  probabilistic outputs for support vector machines", Machine Learning 68, 2007);
- ``"isotonic"``: the non-decreasing step function of least squared error, by pool adjacent
  violators (B. Zadrozny and C. Elkan, KDD 2002), stored as the knots where its steps begin and
  end (linear in between).

Fit on a validation split, never on the data you report results on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import Record, load_records
from ..keep_calibration import METHODS
from .metrics import mostly_inside
from .predictions import sentence_probabilities

__all__ = [
    "fit_isotonic",
    "fit_keep_calibration",
    "fit_platt",
    "labelled_sentence_probabilities",
    "reliability",
]

logger = logging.getLogger(__name__)

# Raw probabilities are clipped to [EPS, 1 - EPS] for Platt's fit: a logit of ±16 at most.
EPS = 1e-7
NEWTON_STEPS = 100


def fit_keep_calibration(
    model: Any,
    records: str | Path | Iterable[dict[str, Any] | Record],
    *,
    method: str = "platt",
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> dict[str, Any]:
    """The calibration of ``model``'s sentence keep-probabilities fitted on ``records``.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` (any backend). Its own
            ``config.keep_calibration`` is ignored while fitting and left as it was.
        records: Records in the training format (a JSONL path, dicts or ``Record`` objects)
            with ``relevant_spans``; a relevant text without spans is skipped (its sentences
            have no labels).
        method: ``"platt"`` or ``"isotonic"``.
        batch_size: Passed to ``process()``.
        show_progress_bar: Passed to ``process()``.

    Returns:
        The map, for ``config.keep_calibration`` (see :mod:`pruning_encoder.keep_calibration`).

    Raises:
        ValueError: An unknown ``method``, or records without both a relevant and an irrelevant
            sentence; for Platt, a model whose keep-probabilities do not rise with relevance.
        DataError: A malformed record.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: expected one of {', '.join(METHODS)}.")
    probabilities, relevant = labelled_sentence_probabilities(
        model,
        load_records(records),
        raw=True,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )
    fitted = (
        fit_platt(probabilities, relevant)
        if method == "platt"
        else fit_isotonic(probabilities, relevant)
    )
    logger.info(
        "Fitted a %s keep calibration on %d sentences (%d relevant).",
        method,
        len(relevant),
        int(relevant.sum()),
    )
    return fitted


def labelled_sentence_probabilities(
    model: Any,
    records: Sequence[Record],
    *,
    raw: bool = False,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled sentence's keep-probability and relevance, from one ``process()`` pass.

    Args:
        model: A :class:`~pruning_encoder.PruningEncoder` (any backend).
        records: Records with ``relevant_spans``; the sentences of a relevant text without spans
            are left out, and so are sentences of no tokens (probability 0: nothing scored them).
        raw: The mean keep-probabilities before the model's ``keep_calibration`` (else after).
        batch_size: Passed to ``process()``.
        show_progress_bar: Passed to ``process()``.

    Returns:
        ``(probabilities, relevant)``: ``[sentences]`` float64 and bool arrays.
    """
    config = model.config
    kept = config.keep_calibration
    if raw:
        config.keep_calibration = None
    try:
        all_spans, all_probabilities = sentence_probabilities(
            model, records, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
    finally:
        config.keep_calibration = kept
    probabilities: list[float] = []
    relevant: list[bool] = []
    skipped = 0
    for record, record_spans, record_probabilities in zip(
        records, all_spans, all_probabilities, strict=True
    ):
        for i, (spans, probs) in enumerate(zip(record_spans, record_probabilities, strict=True)):
            inside = record.relevant_spans[i]
            if record.relevance[i] > 0 and not inside:
                skipped += 1
                continue
            for span, probability in zip(spans, probs, strict=True):
                if probability > 0:
                    probabilities.append(float(probability))
                    relevant.append(mostly_inside(span, inside))
    if skipped:
        logger.warning("Left out %d relevant texts without relevant_spans.", skipped)
    return np.array(probabilities, dtype=np.float64), np.array(relevant, dtype=bool)


def fit_platt(probabilities: np.ndarray, relevant: np.ndarray) -> dict[str, Any]:
    """Platt scaling on the logit: ``{"method": "platt", "a", "b"}`` (see the module doc).

    Args:
        probabilities: ``[sentences]`` raw keep-probabilities in [0, 1].
        relevant: ``[sentences]`` bool labels.

    Raises:
        ValueError: Not both classes, or a fitted slope ``a <= 0`` (the probabilities do not
            rise with relevance, so no increasing map fits).
    """
    p, y = _labelled(probabilities, relevant)
    z = np.log(np.clip(p, EPS, 1 - EPS)) - np.log1p(-np.clip(p, EPS, 1 - EPS))
    positives = int(y.sum())
    negatives = len(y) - positives
    t = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = np.stack([z, np.ones_like(z)], axis=1)  # [sentences, 2]

    def loss(theta: np.ndarray) -> float:
        s = features @ theta
        return float(np.sum(t * np.logaddexp(0, -s) + (1 - t) * np.logaddexp(0, s)))

    theta = np.array([0.0, np.log((positives + 1) / (negatives + 1))])
    value = loss(theta)
    for _ in range(NEWTON_STEPS):
        q = 0.5 * (1 + np.tanh(0.5 * (features @ theta)))
        gradient = features.T @ (q - t)
        if np.max(np.abs(gradient)) < 1e-9 * len(t):
            break
        hessian = (features * (q * (1 - q))[:, None]).T @ features + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        rate = 1.0
        while rate > 1e-10:  # backtracking: accept a sufficient decrease (Armijo)
            candidate = theta - rate * step
            new_value = loss(candidate)
            if new_value <= value - 1e-4 * rate * float(gradient @ step):
                break
            rate /= 2
        else:
            break
        theta, value = candidate, new_value
    a, b = float(theta[0]), float(theta[1])
    if a <= 0:
        raise ValueError(
            f"The keep-probabilities do not rise with relevance on these records (Platt slope "
            f"a = {a:.3g}): no increasing calibration fits them."
        )
    return {"method": "platt", "a": a, "b": b}


def fit_isotonic(probabilities: np.ndarray, relevant: np.ndarray) -> dict[str, Any]:
    """Isotonic regression: ``{"method": "isotonic", "x", "y"}`` (see the module doc).

    Args:
        probabilities: ``[sentences]`` raw keep-probabilities in [0, 1].
        relevant: ``[sentences]`` bool labels.

    Raises:
        ValueError: Not both classes, or fewer than two distinct probabilities.
    """
    p, y = _labelled(probabilities, relevant)
    x, which = np.unique(p, return_inverse=True)
    if len(x) < 2:
        raise ValueError("An isotonic calibration needs at least two distinct probabilities.")
    weights = np.bincount(which).astype(np.float64)
    sums = np.bincount(which, weights=y.astype(np.float64))
    blocks: list[list[float]] = []  # [sum, weight, first index, last index], means increasing
    for i in range(len(x)):
        block = [sums[i], weights[i], i, i]
        while blocks and blocks[-1][0] / blocks[-1][1] >= block[0] / block[1]:
            previous = blocks.pop()
            block = [previous[0] + block[0], previous[1] + block[1], previous[2], block[3]]
        blocks.append(block)
    knots_x: list[float] = []
    knots_y: list[float] = []
    for total, weight, first, last in blocks:
        for index in sorted({int(first), int(last)}):
            knots_x.append(float(x[index]))
            knots_y.append(float(total / weight))
    if len(knots_x) < 2:  # one block: a constant map, drawn between the ends of the data
        knots_x, knots_y = [float(x[0]), float(x[-1])], knots_y * 2
    return {"method": "isotonic", "x": knots_x, "y": knots_y}


def reliability(
    probabilities: np.ndarray, relevant: np.ndarray, *, bins: int = 5, strategy: str = "quantile"
) -> dict[str, Any]:
    """How well probabilities match observed rates: a reliability table and its ECE.

    Args:
        probabilities: ``[sentences]`` keep-probabilities in [0, 1].
        relevant: ``[sentences]`` bool labels.
        bins: How many bins.
        strategy: ``"quantile"``: the sentences sorted by probability and cut into bins of
            (nearly) equal size, since raw keep-probabilities crowd in a narrow range where
            equal-width bins would leave all but one empty; ``"uniform"``: bins of equal width
            on [0, 1] (the last one closed), empty ones left out.

    Returns:
        ``{"bins": [{"low", "high", "sentences", "predicted", "observed"}, ...], "ece": ...}``:
        each bin's lowest and highest probability, size, mean probability and share of
        relevant sentences; ``ece`` is the expected calibration error, the size-weighted mean
        of ``|predicted - observed|`` (M. P. Naeini, G. Cooper and M. Hauskrecht, AAAI 2015).

    Raises:
        ValueError: An unknown ``strategy``, or arrays of different shapes.
    """
    p, y = _labelled(probabilities, relevant, both_classes=False)
    if strategy == "quantile":
        parts = np.array_split(np.argsort(p, kind="stable"), bins)
    elif strategy == "uniform":
        which = np.minimum((p * bins).astype(int), bins - 1)
        parts = [np.flatnonzero(which == b) for b in range(bins)]
    else:
        raise ValueError(f"Unknown strategy {strategy!r}: expected 'quantile' or 'uniform'.")
    rows = []
    error = 0.0
    for part in parts:
        if not len(part):
            continue
        predicted, observed = float(p[part].mean()), float(y[part].mean())
        error += len(part) * abs(predicted - observed)
        rows.append(
            {
                "low": float(p[part].min()),
                "high": float(p[part].max()),
                "sentences": len(part),
                "predicted": predicted,
                "observed": observed,
            }
        )
    return {"bins": rows, "ece": error / len(p)}


def _labelled(
    probabilities: np.ndarray, relevant: np.ndarray, *, both_classes: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(relevant, dtype=bool)
    if p.ndim != 1 or p.shape != y.shape:
        raise ValueError(
            f"probabilities and relevant must be 1-D arrays of one length, got shapes "
            f"{p.shape} and {y.shape}."
        )
    if not len(p):
        raise ValueError("No labelled sentences.")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie within [0, 1].")
    if both_classes and (y.all() or not y.any()):
        raise ValueError(
            f"A calibration needs relevant and irrelevant sentences; these {len(y)} are all "
            f"{'relevant' if y.all() else 'irrelevant'}."
        )
    return p, y
