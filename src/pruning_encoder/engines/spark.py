"""Spark: prune a DataFrame's (question, context) columns with a pandas UDF.

Example (``pip install 'pruning-encoder[spark]'``; Spark needs Java 17 or newer)::

    from pruning_encoder.engines.spark import pruning_udf

    prune = pruning_udf(model="minilm-l6-wiki", threshold=0.1)
    pairs = session.read.parquet("pairs/")  # columns question, context
    pruned = pairs.withColumn("result", prune("question", "context"))
    pruned.select("*", "result.*").drop("result").write.parquet("pruned/")

The UDF is an iterator-of-batches pandas UDF (``pyspark.ml.functions.predict_batch_udf`` does
the same for tensor models, but accepts neither null results nor lists of spans). Spark calls it
once per partition, in Python worker processes that it reuses (``spark.python.worker.reuse``, on
by default): each process keeps the pruner it built for one set of options, so the model loads
once per worker process, not once per partition or job. Its struct has the columns of
:class:`~pruning_encoder.engines.BatchPruner`; pass it the question, context and (with
``title_column``) title columns, in that order. ``select("*", "result.*")`` would give a
DataFrame column named like a result column (``error``, ``pruned_context``, ...) a twin:
rename such columns first. Arrow batches go to each worker with
``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by default), read by the model
``batch_size`` windows at a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd

from .batch_pruner import BatchPruner, arrow_types, output_columns


def pruning_udf(**options: Any) -> Any:
    """A Spark pandas UDF that prunes (question, context[, title]) columns into a struct of
    result columns; ``options`` are :class:`BatchPruner`'s keyword arguments, and each Python
    worker process builds one pruner (loading the model) for all the partitions it gets."""
    from pyspark.sql.functions import pandas_udf

    schema = return_type(**options)
    names = [field.name for field in schema.fields]

    def frames(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        pruner = cached_pruner(**options)
        for columns in batches:
            named = dict(zip(pruner.inputs, (c.tolist() for c in columns), strict=True))
            yield pd.DataFrame(pruner.prune_columns(named), columns=names)

    # pandas_udf tells the kind of UDF by its type hints: an iterator of (Series, ...) tuples.
    if options.get("title_column") is None:

        def prune(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
            return frames(batches)

    else:

        def prune(  # type: ignore[misc]
            batches: Iterator[tuple[pd.Series, pd.Series, pd.Series]],
        ) -> Iterator[pd.DataFrame]:
            return frames(batches)

    return pandas_udf(prune, returnType=schema)  # type: ignore[call-overload]


_PRUNERS: dict[str, BatchPruner] = {}
_LOCK = threading.Lock()


def cached_pruner(**options: Any) -> BatchPruner:
    """This process's :class:`BatchPruner` for ``options`` (JSON-like keyword arguments),
    built (loading the model) on first use and kept for the life of the process."""
    key = json.dumps(options, sort_keys=True, default=repr)
    with _LOCK:
        if key not in _PRUNERS:
            _PRUNERS[key] = BatchPruner(**options)
        return _PRUNERS[key]


def return_type(**options: Any) -> Any:
    """The ``StructType`` of the result columns for these options (``max_tokens`` adds
    ``kept_tokens``; ``return_sentence_probabilities`` the probability columns), from their
    Arrow types."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    types = arrow_types()
    names = output_columns(
        options.get("max_tokens"), bool(options.get("return_sentence_probabilities"))
    )
    return from_arrow_schema(pa.schema([(name, types[name]) for name in names]))
