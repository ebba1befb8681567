"""Columnar batches of (question, context) rows in, the same rows with their results out: the
part that every data engine shares (Ray Data, Spark, the command line's corpus mode)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from ..batch_retry import retry_row_by_row
from ..bundled import DEFAULT_MODEL
from ..checks import check_batch_size, check_max_tokens, check_threshold
from ..context_pruning import RESULT_FIELDS, SENTENCE_FIELDS
from ..onnx_backend import FP32_FILE
from ..pruning_encoder import PruningEncoder

ERROR_COLUMN = "error"
Columns = dict[str, list[Any]]


class BatchPruner:
    """Prunes columnar batches; built from plain keyword arguments, so that an engine can ship
    them to its workers, where the model loads once per worker (on construction).

    Args:
        model: A bundled model name, a saved PruningEncoder folder or a published
            Provence-family checkpoint, as for :class:`~pruning_encoder.PruningEncoder`.
        device: Torch device (default: CUDA when available, else CPU).
        dtype: The precision of inference, as for :class:`~pruning_encoder.PruningEncoder`
            (default ``"auto"``: bfloat16 where the device has it natively, else float32).
        threshold: Keep threshold in [0, 1] (default: the model's).
        max_tokens: Token budget per context (see ``process()``); None: no budget.
        batch_size: Full-length windows per forward pass.
        question_column: The input column holding the questions (strings).
        context_column: The input column holding the contexts (strings).
        title_column: An optional input column of titles, shown to the model before each
            window of their context and never part of the output.
        return_sentence_probabilities: Also output ``sentence_spans`` and
            ``sentence_probabilities``.
        backend: ``"torch"``, or ``"onnx"`` for a folder written by ``export_onnx``.
        file_name: With ``backend="onnx"``, the graph to run.
        threads: Torch CPU threads per worker (None: torch's default), so that several workers
            on one machine do not oversubscribe its cores.

    Output columns, flat and Arrow-friendly: the input columns, then ``pruned_context`` (str),
    ``reranking_score`` (float; null for a ``pruning_only`` model), ``compression_rate`` (float,
    percent of characters removed), ``kept_spans`` (list of ``[start, end]`` character offsets),
    ``kept_tokens`` (int, with ``max_tokens``), the probability columns on request, and
    ``error`` (str): null, or why the row has no results (a question or context that is not a
    string, an empty context, a question too long for the window). A bad row never stops the
    batch and is never dropped. A table or frame with a column named like a result column is
    refused (ValueError), never given a second column of that name or overwritten.

    Raises:
        ValueError, TypeError: On a bad ``threshold``, ``max_tokens`` or ``batch_size``, and
            whatever loading the model raises.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = "auto",
        threshold: float | None = None,
        max_tokens: int | None = None,
        batch_size: int = 32,
        question_column: str = "question",
        context_column: str = "context",
        title_column: str | None = None,
        return_sentence_probabilities: bool = False,
        backend: str = "torch",
        file_name: str = FP32_FILE,
        threads: int | None = None,
    ) -> None:
        self.threshold = None if threshold is None else check_threshold(threshold)
        self.max_tokens = check_max_tokens(max_tokens)
        self.batch_size = check_batch_size(batch_size)
        self.question_column = question_column
        self.context_column = context_column
        self.title_column = title_column
        self.return_sentence_probabilities = return_sentence_probabilities
        if threads is not None:
            torch.set_num_threads(threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        with _no_progress_bars():
            self.model = PruningEncoder(
                model, device=device, dtype=dtype, backend=backend, file_name=file_name
            )

    @property
    def inputs(self) -> list[str]:
        """The input columns this pruner reads: question, context and, if set, title."""
        names = [self.question_column, self.context_column]
        return names if self.title_column is None else [*names, self.title_column]

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The result columns this pruner adds, in order."""
        return output_columns(self.max_tokens, self.return_sentence_probabilities)

    def prune_table(self, table: Any) -> Any:
        """A pyarrow Table with the result columns appended, each of its fixed Arrow type."""
        import pyarrow as pa

        refuse_clashes(table.column_names, self.output_columns, "The batch")
        types = arrow_types()
        read = [name for name in table.column_names if name in self.inputs]
        results = self.prune_columns({name: table[name].to_pylist() for name in read})
        for name, values in results.items():
            table = table.append_column(name, pa.array(values, type=types[name]))
        return table

    def prune_columns(self, columns: Mapping[str, Sequence[Any]]) -> Columns:
        """The result columns (:attr:`output_columns`) of a batch given as columns.

        Raises:
            KeyError: The question, context or title column is missing from the batch.
        """
        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise KeyError(
                f"The batch has no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, columns))}."
            )
        questions = list(columns[self.question_column])
        contexts = list(columns[self.context_column])
        titles = list(columns[self.title_column]) if self.title_column else [None] * len(questions)
        results: list[dict[str, Any]] = [{} for _ in questions]
        good = []
        for row, (question, context, title) in enumerate(
            zip(questions, contexts, titles, strict=True)
        ):
            error = _row_error(question, context, title)
            if error is None:
                good.append(row)
            else:
                results[row] = {ERROR_COLUMN: error}
        for row, result in zip(good, self._process(questions, contexts, titles, good), strict=True):
            results[row] = result
        return {name: [_cell(result, name) for result in results] for name in self.output_columns}

    def _process(
        self, questions: list[Any], contexts: list[Any], titles: list[Any], rows: list[int]
    ) -> list[dict[str, Any]]:
        def call(part: list[int]) -> list[dict[str, Any]]:
            return self._call(
                [questions[r] for r in part], [contexts[r] for r in part], [titles[r] for r in part]
            )

        # A row the model refuses (a question too long for the window) gets its error alone.
        return [
            {ERROR_COLUMN: str(outcome)} if isinstance(outcome, Exception) else outcome
            for outcome in retry_row_by_row(call, rows)
        ]

    def _call(
        self, questions: list[str], contexts: list[str], titles: list[str | None]
    ) -> list[dict[str, Any]]:
        title = None if all(t is None for t in titles) else [t or "" for t in titles]
        results: list[dict[str, Any]] = self.model.process(
            questions,
            contexts,
            title=title,
            threshold=self.threshold,
            max_tokens=self.max_tokens,
            batch_size=self.batch_size,
            return_sentence_probabilities=self.return_sentence_probabilities,
            show_progress_bar=False,
        )
        return results


def _row_error(question: Any, context: Any, title: Any) -> str | None:
    for name, value in (("question", question), ("context", context)):
        if not isinstance(value, str):
            return f"{name} must be a string, got {_kind(value)}"
    if not context.strip():
        return "empty context"
    if title is not None and not isinstance(title, str):
        return f"title must be a string or null, got {_kind(title)}"
    return None


def _kind(value: Any) -> str:
    # pandas shows a missing value as None, NaN or its NA singleton.
    if value is None or type(value).__name__ == "NAType":
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "null"
    return type(value).__name__


def refuse_clashes(columns: Iterable[str], reserved: Iterable[str], source: str) -> None:
    """Refuse input ``columns`` named like output columns (``reserved``).

    Raises:
        ValueError: Naming ``source`` and the clashing columns.
    """
    names = set(reserved)
    clashes = [name for name in columns if name in names]
    if clashes:
        raise ValueError(
            f"{source} has columns named like the output's: {', '.join(map(repr, clashes))} "
            "(an earlier output?). Rename or drop them: an output column is never duplicated "
            "or overwritten."
        )


def output_columns(max_tokens: int | None, sentence_probabilities: bool) -> tuple[str, ...]:
    """The result columns of a pruner with these options, in order."""
    columns = [*RESULT_FIELDS]
    if max_tokens is not None:
        columns.append("kept_tokens")
    if sentence_probabilities:
        columns.extend(SENTENCE_FIELDS)
    return (*columns, ERROR_COLUMN)


def arrow_types() -> dict[str, Any]:
    """The Arrow type of each result column (explicit, so that a batch whose rows all have
    empty lists or all failed has the same schema as the others)."""
    import pyarrow as pa

    spans = pa.list_(pa.list_(pa.int64()))
    return {
        "pruned_context": pa.string(),
        "reranking_score": pa.float64(),
        "compression_rate": pa.float64(),
        "kept_spans": spans,
        "kept_tokens": pa.int64(),
        "sentence_spans": spans,
        "sentence_probabilities": pa.list_(pa.float64()),
        ERROR_COLUMN: pa.string(),
    }


def _cell(result: dict[str, Any], name: str) -> Any:
    value = result.get(name)
    if name in ("kept_spans", "sentence_spans") and value is not None:
        return [list(span) for span in value]
    return value


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No Transformers progress bars while a worker loads its model (they go to no terminal)."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
