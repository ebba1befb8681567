"""Prune a corpus into Parquet shards, resumably: JSONL or Parquet files in (a file, a folder or
a glob), ``part-*.parquet`` out, in one process or on Ray Data.

The input rows are cut into shards of ``shard_rows`` consecutive rows of one file, named by
their file and first row, so that a shard is the same on every run. Each shard is written under
a temporary name and renamed into place, then recorded in ``_manifest.jsonl``; a rerun (after a
crash or Ctrl-C) prunes only the shards the manifest lacks and rewrites a shard that was renamed
but not recorded under the same name, so every input row is in the output exactly once. The
manifest's first line records the inputs (by the SHA-256 of their bytes) and options: resuming
with other ones, or with an input edited since, is refused.

Each output row has ``source_file`` and ``source_row`` (from 0; a JSONL file's line number minus
1), every field of its input row (JSONL fields as Parquet columns), and :class:`BatchPruner`'s
result columns, in one schema for all shards (see :mod:`.corpus_inputs`); a line that is not a
JSON object, or lacks a field, has the reason in ``error``. Input columns named like output
columns are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..saving import atomic_file
from .batch_pruner import ERROR_COLUMN, BatchPruner, arrow_types, output_columns, refuse_clashes
from .corpus_inputs import (
    LINE_ERROR,
    SOURCE_COLUMNS,
    InputFile,
    input_files,
    job_schema,
    read_shard,
    scan,
)

if TYPE_CHECKING:  # pyarrow is imported where used: the command line runs without it
    import pyarrow as pa

MANIFEST = "_manifest.jsonl"
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Shard:
    """``rows`` consecutive rows of ``file`` from ``start``."""

    file: str
    start: int
    rows: int
    name: str


@dataclass(frozen=True)
class CorpusReport:
    """What a run did: shards pruned now and found done, rows written now, and rows with an
    error in the whole output (those of earlier runs too)."""

    shards_pruned: int
    shards_skipped: int
    rows: int
    errors: int


def prune_corpus(
    inputs: str,
    output: str,
    *,
    engine: str = "local",
    shard_rows: int = 10_000,
    workers: int = 2,
    num_gpus: float = 0,
    **options: Any,
) -> CorpusReport:
    """Prune every row of ``inputs`` into Parquet shards in the folder ``output``.

    Args:
        inputs: A ``.jsonl`` or ``.parquet`` file, a folder of them, or a glob.
        output: The output folder (created if missing); files not named ``part-*`` or
            ``_manifest.jsonl`` in it are left alone. Never read as input, nor are files
            whose name starts with ``.`` or ``_``.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data, ``workers`` actors; joins the
            running Ray cluster or starts a local one).
        shard_rows: Rows per output shard.
        workers: Ray actors, each loading the model once.
        num_gpus: GPUs per Ray actor.
        options: :class:`BatchPruner`'s keyword arguments (model, threshold, max_tokens, ...).

    Raises:
        ValueError: An unknown engine, a bad ``shard_rows``, a manifest written for other
            inputs or options, input columns named like output columns, or a Parquet input
            without the question or context column.
        FileNotFoundError: No input file.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}: expected one of {', '.join(ENGINES)}.")
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be a positive integer, got {shard_rows}.")
    import pyarrow as pa

    folder = Path(output)
    fields = [
        options.get("question_column", "question"),
        options.get("context_column", "context"),
        *([options["title_column"]] if options.get("title_column") else []),
    ]
    files = [scan(path, fields) for path in input_files(inputs, exclude=folder)]
    results = output_columns(
        options.get("max_tokens"), bool(options.get("return_sentence_probabilities"))
    )
    for file in files:
        refuse_clashes(file.types, [*SOURCE_COLUMNS, *results, LINE_ERROR], file.path)
    read = job_schema(files, fields)  # each shard as read; as written:
    types = arrow_types()
    schema = pa.schema(
        [*(f for f in read if f.name != LINE_ERROR), *(pa.field(n, types[n]) for n in results)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".part-*.tmp.parquet"):  # what a killed run was writing
        stale.unlink()
    done = _read_manifest(folder, files, shard_rows, options)
    shards = [shard for i, file in enumerate(files) for shard in _shards(i, file, shard_rows)]
    pending = [shard for shard in shards if shard.name not in done]
    if engine == "ray":
        tables = _ray_tables(pending, read, fields, options, workers, num_gpus)
    else:
        pruner = BatchPruner(**options)
        tables = (_prune_table(pruner, _read_shard(shard, read, fields)) for shard in pending)
    rows, errors = 0, sum(done.values())
    with open(folder / MANIFEST, "a", encoding="utf-8") as manifest:
        for shard, table in zip(pending, tables, strict=True):
            table = table.select(schema.names).cast(schema)  # one schema, whatever Ray did
            _write_shard(table, folder / f"part-{shard.name}.parquet")
            failed = table.num_rows - table[ERROR_COLUMN].null_count
            record = {"shard": shard.name, "rows": table.num_rows, "errors": failed}
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            os.fsync(manifest.fileno())
            rows += table.num_rows
            errors += failed
    return CorpusReport(len(pending), len(shards) - len(pending), rows, errors)


def _read_manifest(
    folder: Path, files: list[InputFile], shard_rows: int, options: dict[str, Any]
) -> dict[str, int]:
    """The shards already done, with their rows in error; writes a new manifest's header."""
    header = {
        "inputs": [[os.path.abspath(f.path), f.rows, f.digest] for f in files],
        "shard_rows": shard_rows,
        "options": {k: v for k, v in sorted(options.items()) if k not in ("device", "threads")},
    }
    path = folder / MANIFEST
    if not path.exists():
        path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if json.loads(lines[0]) != json.loads(json.dumps(header)):
        raise ValueError(
            f"{path} records another run (other inputs, inputs edited since, another shard "
            "size or other options): give a new "
            "output folder, or the same inputs and options to resume."
        )
    done = {}
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except ValueError:  # the last line of a run killed while writing it
            continue
        if (folder / f"part-{record['shard']}.parquet").is_file():
            done[record["shard"]] = int(record["errors"])
    return done


def _shards(index: int, file: InputFile, shard_rows: int) -> Iterator[Shard]:
    """A file's shards, named by its place among the (sorted) inputs, its stem and first row."""
    for start in range(0, file.rows, shard_rows):
        rows = min(shard_rows, file.rows - start)
        yield Shard(file.path, start, rows, f"{index:05d}-{Path(file.path).stem}-{start:010d}")


def _read_shard(shard: Shard, schema: pa.Schema, fields: list[str]) -> Any:
    return read_shard(shard.file, shard.start, shard.rows, schema, fields)


def _prune_table(pruner: BatchPruner, table: Any) -> Any:
    """The shard pruned, a bad line's reason (``_line_error``) taking the place of its error."""
    import pyarrow as pa

    line_errors = table[LINE_ERROR].to_pylist() if LINE_ERROR in table.column_names else None
    if line_errors is not None:
        table = table.drop_columns([LINE_ERROR])
    pruned = pruner.prune_table(table)
    if line_errors is None:
        return pruned
    errors = [
        line or error
        for line, error in zip(line_errors, pruned[ERROR_COLUMN].to_pylist(), strict=True)
    ]
    index = pruned.column_names.index(ERROR_COLUMN)
    return pruned.set_column(index, ERROR_COLUMN, pa.array(errors, pa.string()))


def _write_shard(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_file(path) as staging:
        pq.write_table(table, staging)


def _ray_tables(
    pending: list[Shard],
    schema: pa.Schema,
    fields: list[str],
    options: dict[str, Any],
    workers: int,
    num_gpus: float,
) -> Iterator[Any]:
    """The pruned tables of the pending shards, in order, from one Ray Data pipeline whose
    actors each load the model once; the driver holds one shard at a time."""
    import pyarrow as pa
    import ray

    if not pending:
        return iter(())
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False

    def shard_table(item: Any) -> Any:  # a table of one row: the shard's index
        return pa.concat_tables(
            _read_shard(pending[i], schema, fields) for i in item["shard"].to_pylist()
        )

    dataset = ray.data.from_items([{"shard": i} for i in range(len(pending))])
    # Shards read as Arrow tables of the job's schema (rows as Python dicts would lose it).
    rows = dataset.map_batches(shard_table, batch_size=1, batch_format="pyarrow")
    pruned = rows.map_batches(
        _RayShardPruner,
        fn_constructor_kwargs=options,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=num_gpus or None,
    )

    def tables() -> Iterator[Any]:
        buffered: list[Any] = []
        count = 0
        index = 0
        batches: Iterable[Any] = pruned.iter_batches(batch_format="pyarrow", batch_size=None)
        for batch in batches:
            offset = 0
            while offset < batch.num_rows:
                take = min(pending[index].rows - count, batch.num_rows - offset)
                buffered.append(batch.slice(offset, take))
                offset += take
                count += take
                if count == pending[index].rows:
                    yield pa.concat_tables(buffered)
                    buffered, count, index = [], 0, index + 1

    return tables()


class _RayShardPruner:
    """Ray's actor: a :class:`BatchPruner` over Arrow batches of shard rows."""

    def __init__(self, **options: Any) -> None:
        self.pruner = BatchPruner(**options)

    def __call__(self, batch: Any) -> Any:
        return _prune_table(self.pruner, batch)
