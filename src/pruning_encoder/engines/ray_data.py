"""Ray Data: prune a corpus with ``Dataset.map_batches``, the model loaded once per actor.

Example (``pip install 'pruning-encoder[ray]'``)::

    import ray
    from pruning_encoder.engines import RayPruner

    pairs = ray.data.read_parquet("pairs/")  # columns question, context
    pruned = pairs.map_batches(
        RayPruner,
        fn_constructor_kwargs={"model": "minilm-l6-wiki", "threshold": 0.1},
        batch_size=64,
        compute=ray.data.ActorPoolStrategy(size=2),  # actors; num_gpus=1: a GPU each
        batch_format="pyarrow",
    )
    pruned.write_parquet("pruned/")
"""

from __future__ import annotations

from typing import Any

from .batch_pruner import BatchPruner, arrow_types, refuse_clashes


class RayPruner(BatchPruner):
    """A :class:`BatchPruner` that Ray Data calls on each batch (``map_batches``).

    Ray constructs it on each actor from ``fn_constructor_kwargs`` (the keyword arguments of
    :class:`BatchPruner`), so the model loads once per actor; ``compute`` (or ``concurrency``),
    ``num_gpus`` and ``batch_size`` go to ``map_batches`` as usual. A batch may come as a pyarrow
    Table (returned as one), a pandas DataFrame or a dict of numpy arrays (returned as a
    DataFrame), with the input columns first and the result columns after them, each of one
    fixed Arrow type (see :func:`~pruning_encoder.engines.batch_pruner.arrow_types`), so that
    every block of the output has the same schema. A batch with a column named like a result
    column is refused (ValueError).
    """

    def __call__(self, batch: Any) -> Any:
        import pandas as pd
        import pyarrow as pa

        if isinstance(batch, pa.Table):
            return self.prune_table(batch)
        types = arrow_types()
        # A column of mixed values (a number among strings) has no Arrow type: leave the input
        # in pandas, and give the results Arrow-backed columns of their fixed types.
        frame = pd.DataFrame(batch) if isinstance(batch, dict) else batch.copy()
        refuse_clashes(frame.columns, self.output_columns, "The batch")
        read = [name for name in frame.columns if name in self.inputs]
        results = self.prune_columns({name: frame[name].tolist() for name in read})
        for name, values in results.items():
            array = pa.array(values, type=types[name])
            frame[name] = pd.Series(pd.arrays.ArrowExtensionArray(array), index=frame.index)
        return frame
