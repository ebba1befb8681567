"""The argument rules, each written once in pruning_encoder.checks (their use on every surface:
test_argument_rules.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pruning_encoder.checks import (
    check_batch_size,
    check_choice,
    check_mode,
    check_num_labels,
    check_question_tokens,
    check_threshold,
    check_top_k,
)


@pytest.mark.parametrize("value", [True, False, "0.5", None, [0.5]])
def test_a_threshold_is_a_real_number_never_a_boolean(value: object) -> None:
    with pytest.raises(TypeError, match=r"threshold must be a number in \[0, 1\]"):
        check_threshold(value)


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan])
def test_a_threshold_lies_within_zero_and_one(value: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be within \[0, 1\]"):
        check_threshold(value)


def test_a_threshold_of_none_is_the_default_checked_alike() -> None:
    assert check_threshold(None, default=0.25) == 0.25
    assert check_threshold(np.float32(0.5)) == 0.5 and check_threshold(1) == 1.0
    with pytest.raises(TypeError, match=r"default_threshold must be a number"):
        check_threshold(None, default=True, name="default_threshold")


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "2"])
def test_a_batch_size_is_a_positive_integer(value: object) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        check_batch_size(value)
    assert check_batch_size(np.int64(3)) == 3


def test_top_k_mode_and_choices() -> None:
    assert check_top_k(None) is None and check_top_k(np.int64(2)) == 2
    with pytest.raises(ValueError, match="top_n must be a positive integer or None"):
        check_top_k(0, "top_n")
    assert check_mode("pruning_only") == "pruning_only"
    with pytest.raises(ValueError, match="Unknown mode 'ranking': expected one of"):
        check_mode("ranking")
    with pytest.raises(ValueError, match=r"Unknown backend \['onnx'\]"):
        check_choice(["onnx"], ("torch", "onnx"), "backend")


@pytest.mark.parametrize("value", [2, 0, True])
def test_a_ranking_head_has_one_label(value: object) -> None:
    with pytest.raises(ValueError, match=rf"^model-dir: num_labels={value!r}, but .* one label"):
        check_num_labels(value, "model-dir")
    assert check_num_labels(1) == 1


def test_a_question_may_take_up_to_its_limit() -> None:
    check_question_tokens(10, limit=10, max_length=64)
    with pytest.raises(ValueError, match=r"take 11 tokens, .* max_length=64 .* at most 10 fit"):
        check_question_tokens(11, limit=10, max_length=64)
