"""retry_row_by_row: a failed batch is retried row by row, the bad row alone failing."""

from __future__ import annotations

import pytest

from pruning_encoder.batch_retry import retry_row_by_row


class Model:
    """Doubles its rows, refusing negative ones (the whole call fails), and records its calls."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, rows: list[int]) -> list[int]:
        self.calls.append(rows)
        bad = [row for row in rows if row < 0]
        if bad:
            raise ValueError(f"negative row {bad[0]}")
        return [2 * row for row in rows]


def test_a_good_batch_is_one_call() -> None:
    model = Model()
    assert retry_row_by_row(model, [1, 2, 3]) == [2, 4, 6]
    assert model.calls == [[1, 2, 3]]


def test_the_failing_row_gets_its_error_and_the_others_their_results_in_order() -> None:
    model = Model()
    outcomes = retry_row_by_row(model, [1, -5, 3, -7])
    assert outcomes[0] == 2 and outcomes[2] == 6
    assert [str(outcomes[1]), str(outcomes[3])] == ["negative row -5", "negative row -7"]
    assert all(isinstance(outcomes[i], ValueError) for i in (1, 3))
    assert model.calls == [[1, -5, 3, -7], [1], [-5], [3], [-7]]


def test_a_single_row_is_not_called_twice_and_no_rows_not_at_all() -> None:
    model = Model()
    [outcome] = retry_row_by_row(model, [-1])
    assert isinstance(outcome, ValueError)
    assert retry_row_by_row(model, []) == []
    assert model.calls == [[-1]]


def test_only_the_given_errors_mean_a_bad_row() -> None:
    def broken(rows: list[int]) -> list[int]:
        raise KeyError("a bug, not a bad row")

    with pytest.raises(KeyError):
        retry_row_by_row(broken, [1, 2])
    outcomes = retry_row_by_row(broken, [1, 2], errors=(Exception,))
    assert [type(outcome) for outcome in outcomes] == [KeyError, KeyError]


def test_a_call_that_loses_rows_is_a_bug_not_retried() -> None:
    with pytest.raises(RuntimeError, match="2 rows gave 1 results"):
        retry_row_by_row(lambda rows: rows[:1], [1, 2], errors=(Exception,))
