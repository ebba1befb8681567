"""Calibrated keep-probabilities: a monotonic map applied to each sentence's mean keep-probability.

A pruning head trained on token labels gives relevant sentences mean keep-probabilities that need
not mean "the chance this sentence is relevant" (the bundled model's relevant sentences score
about 0.03 to 0.1). ``PruningEncoderConfig.keep_calibration`` stores a map fitted on labelled
records (see :mod:`pruning_encoder.evaluation.keep_calibration_fit`) that turns a sentence's mean
keep-probability ``p`` into an estimate of that chance; ``process()`` applies it right after the
per-sentence means, so thresholds, token budgets and ``sentence_probabilities`` all see the
calibrated value. The map is non-decreasing, so the order of the sentences never changes.

Two methods, as a JSON-serialisable dict:

- ``{"method": "platt", "a": A, "b": B}``: Platt scaling (J. Platt, "Probabilistic outputs for
  support vector machines and comparisons to regularized likelihood methods", 1999) on the logit
  of ``p``: ``sigmoid(A * log(p / (1 - p)) + B)``, ``A > 0``. Temperature scaling (C. Guo et al.,
  "On calibration of modern neural networks", ICML 2017) is this map with ``B = 0``; a pruning
  head whose relevant sentences all sit far below 0.5 needs the shift ``B`` as well, so Platt is
  the default.
- ``{"method": "isotonic", "x": [...], "y": [...]}``: isotonic regression (B. Zadrozny and
  C. Elkan, "Transforming classifier scores into accurate multiclass probability estimates",
  KDD 2002), stored as knots of a piecewise-linear map: ``x`` strictly increasing, ``y``
  non-decreasing, both in [0, 1]; ``p`` outside the knots takes the nearest end's ``y``.

With either, a sentence of no tokens (mean 0: nothing scored it) keeps probability 0.

This module travels with saved weights (``trust_remote_code=True``): it imports only the standard
library and numpy.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

METHODS = ("platt", "isotonic")
_KEYS = {"platt": ("a", "b"), "isotonic": ("x", "y")}


def check_keep_calibration(calibration: Any) -> dict[str, Any] | None:
    """``calibration`` as a plain dict of floats (None stays None: no calibration).

    Raises:
        ValueError: Not a dict, an unknown ``method``, missing or unknown keys, a Platt ``a``
            that is not a positive number (the map must rise with ``p``) or a ``b`` that is not
            finite, or isotonic knots that are not two equal-length lists of at least two
            numbers in [0, 1] with ``x`` strictly increasing and ``y`` non-decreasing. The
            message starts with ``keep_calibration`` and says what is wrong.
    """
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise ValueError(
            f"keep_calibration must be a dict such as {{'method': 'platt', 'a': 1.0, 'b': 0.0}} "
            f"or None, got {type(calibration).__name__}."
        )
    method = calibration.get("method")
    if method not in METHODS:
        raise ValueError(
            f"keep_calibration has method {method!r}: expected one of {', '.join(METHODS)}."
        )
    expected = {"method", *_KEYS[method]}
    if set(calibration) != expected:
        raise ValueError(
            f"keep_calibration of method {method!r} takes the keys {sorted(expected)}, got "
            f"{sorted(calibration)}."
        )
    if method == "platt":
        a, b = _number(calibration["a"], "a"), _number(calibration["b"], "b")
        if a <= 0:
            raise ValueError(
                f"keep_calibration's Platt slope a must be positive (the calibrated probability "
                f"must rise with the model's), got {a}."
            )
        return {"method": "platt", "a": a, "b": b}
    x, y = _knots(calibration["x"], "x"), _knots(calibration["y"], "y")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"keep_calibration's isotonic x and y must be lists of the same length, at least 2; "
            f"got {len(x)} and {len(y)}."
        )
    if any(right <= left for left, right in itertools.pairwise(x)):
        raise ValueError("keep_calibration's isotonic x must be strictly increasing.")
    if any(right < left for left, right in itertools.pairwise(y)):
        raise ValueError("keep_calibration's isotonic y must be non-decreasing.")
    return {"method": "isotonic", "x": x, "y": y}


def apply_keep_calibration(
    probabilities: np.ndarray, calibration: dict[str, Any] | None
) -> np.ndarray:
    """Calibrated sentence keep-probabilities.

    Args:
        probabilities: ``[sentences]`` mean keep-probabilities in [0, 1].
        calibration: A map as the module describes (checked with
            :func:`check_keep_calibration`), or None.

    Returns:
        ``probabilities`` itself when ``calibration`` is None; else a new float64 array of the
        same shape, non-decreasing in ``probabilities``, with 0 for a sentence whose mean is 0.

    Raises:
        ValueError: A malformed ``calibration`` (see :func:`check_keep_calibration`).
    """
    checked = check_keep_calibration(calibration)
    if checked is None:
        return probabilities
    p = np.asarray(probabilities, dtype=np.float64)
    if checked["method"] == "platt":
        with np.errstate(divide="ignore"):
            logit = np.log(p) - np.log1p(-p)  # ±inf at 0 and 1, mapped to 0 and 1 (a > 0)
        # tanh form of the sigmoid: no overflow at ±inf.
        mapped = 0.5 * (1.0 + np.tanh(0.5 * (checked["a"] * logit + checked["b"])))
    else:
        mapped = np.interp(p, checked["x"], checked["y"])
    return np.where(p > 0, mapped, 0.0)


def _number(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.number)
        or not math.isfinite(value)
    ):
        raise ValueError(f"keep_calibration's {name} must be a finite number, got {value!r}.")
    return float(value)


def _knots(values: Any, name: str) -> list[float]:
    if not isinstance(values, list | tuple):
        raise ValueError(
            f"keep_calibration's isotonic {name} must be a list of numbers, got "
            f"{type(values).__name__}."
        )
    knots = [_number(value, f"isotonic {name}") for value in values]
    if any(not 0.0 <= knot <= 1.0 for knot in knots):
        raise ValueError(f"keep_calibration's isotonic {name} must lie within [0, 1].")
    return knots
