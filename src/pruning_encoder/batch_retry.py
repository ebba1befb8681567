"""Retry a failed batch row by row: one bad row (a question too long for the window, a request
the model refuses) must not cost the rows batched with it their results. The service, the data
engines and the command line's ``--input`` all batch this way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Row = TypeVar("Row")
Outcome = TypeVar("Outcome")


def retry_row_by_row(
    call: Callable[[list[Row]], Sequence[Outcome]],
    rows: Sequence[Row],
    *,
    errors: tuple[type[Exception], ...] = (ValueError, TypeError),
) -> list[Outcome | Exception]:
    """``call(rows)``'s results, one per row, in order; when that call raises one of
    ``errors``, each row is called alone, so that a row that fails alone gets its exception in
    its place and the others their results. A single row is not called twice.

    Args:
        call: Rows → one result per row.
        rows: The batch.
        errors: The exceptions that mean "some row is bad"; others propagate.

    Returns:
        Per row, its result or the exception its call raised (a result is never an exception).

    Example:
        >>> retry_row_by_row(lambda rows: [10 // r for r in rows], [1, 0, 2],
        ...                  errors=(ZeroDivisionError,))
        [10, ZeroDivisionError('integer division or modulo by zero'), 5]
    """
    if not rows:
        return []
    try:
        results = call(list(rows))
    except errors as error:
        if len(rows) == 1:
            return [error]
    else:
        return _one_each(results, rows)
    outcomes: list[Outcome | Exception] = []
    for row in rows:
        try:
            results = call([row])
        except errors as error:
            outcomes.append(error)
        else:
            outcomes.extend(_one_each(results, [row]))
    return outcomes


def _one_each(results: Sequence[Outcome], rows: Sequence[Row]) -> list[Outcome | Exception]:
    if len(results) != len(rows):  # a bug in ``call``, not a bad row: never retried
        raise RuntimeError(f"{len(rows)} rows gave {len(results)} results.")
    return list(results)
