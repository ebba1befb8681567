"""Prune a corpus into Parquet shards, resumably: JSONL or Parquet files in (a file, a folder or
a glob), ``part-*.parquet`` out, in one process or on Ray Data.

The input rows are cut into shards of ``shard_rows`` consecutive rows of one file, named by
their file and first row, so that a shard is the same on every run. Each shard is written under
a temporary name and renamed into place, then recorded in ``_manifest.jsonl``; a rerun (after a
crash or Ctrl-C) prunes only the shards the manifest lacks and rewrites a shard that was renamed
but not recorded under the same name, so every input row is in the output exactly once. The
manifest's first line records the inputs and options: resuming with other ones is refused.

Each output row has ``source_file`` and ``source_row`` (from 0; a JSONL file's line number minus
1), the input's question, context (and title) columns, and :class:`BatchPruner`'s result
columns; a line that is not a JSON object, or lacks a field, has the reason in ``error``.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch_pruner import ERROR_COLUMN, BatchPruner

MANIFEST = "_manifest.jsonl"
ENGINES = ("local", "ray")
SOURCE_COLUMNS = ("source_file", "source_row")


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


def input_files(pattern: str) -> list[str]:
    """The ``.jsonl`` / ``.parquet`` files of a file, a folder or a glob, sorted.

    Raises:
        FileNotFoundError: Nothing matches.
    """
    if os.path.isdir(pattern):
        found = [str(p) for p in Path(pattern).rglob("*") if p.suffix in (".jsonl", ".parquet")]
    else:
        found = glob.glob(pattern, recursive=True)
    files = sorted(f for f in found if os.path.isfile(f))
    if not files:
        raise FileNotFoundError(f"No .jsonl or .parquet input matches {pattern}.")
    return files


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
            ``_manifest.jsonl`` in it are left alone.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data, ``workers`` actors; joins the
            running Ray cluster or starts a local one).
        shard_rows: Rows per output shard.
        workers: Ray actors, each loading the model once.
        num_gpus: GPUs per Ray actor.
        options: :class:`BatchPruner`'s keyword arguments (model, threshold, max_tokens, ...).

    Raises:
        ValueError: An unknown engine, a bad ``shard_rows``, or a manifest written for other
            inputs or options.
        FileNotFoundError: No input file.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}: expected one of {', '.join(ENGINES)}.")
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be a positive integer, got {shard_rows}.")
    folder = Path(output)
    # An output folder inside an input folder is not input (its shards would be, on a rerun).
    files = [f for f in input_files(inputs) if folder.resolve() not in Path(f).resolve().parents]
    if not files:
        raise FileNotFoundError(f"No .jsonl or .parquet input matches {inputs}.")
    folder.mkdir(parents=True, exist_ok=True)
    done = _read_manifest(folder, files, shard_rows, options)
    shards = [shard for i, file in enumerate(files) for shard in _shards(i, file, shard_rows)]
    pending = [shard for shard in shards if shard.name not in done]
    fields = [
        options.get("question_column", "question"),
        options.get("context_column", "context"),
        *([options["title_column"]] if options.get("title_column") else []),
    ]
    if engine == "ray":
        tables = _ray_tables(pending, fields, options, workers, num_gpus)
    else:
        pruner = BatchPruner(**options)
        tables = (_prune_table(pruner, _read_shard(shard, fields)) for shard in pending)
    rows, errors = 0, sum(done.values())
    with open(folder / MANIFEST, "a", encoding="utf-8") as manifest:
        for shard, table in zip(pending, tables, strict=True):
            _write_atomically(table, folder / f"part-{shard.name}.parquet")
            failed = table.num_rows - table[ERROR_COLUMN].null_count
            record = {"shard": shard.name, "rows": table.num_rows, "errors": failed}
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            os.fsync(manifest.fileno())
            rows += table.num_rows
            errors += failed
    return CorpusReport(len(pending), len(shards) - len(pending), rows, errors)


def _read_manifest(
    folder: Path, files: list[str], shard_rows: int, options: dict[str, Any]
) -> dict[str, int]:
    """The shards already done, with their rows in error; writes a new manifest's header."""
    header = {
        "inputs": [[os.path.abspath(f), os.path.getsize(f)] for f in files],
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
            f"{path} records another run (other inputs, shard size or options): give a new "
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


def _shards(index: int, file: str, shard_rows: int) -> Iterator[Shard]:
    """A file's shards, named by its place among the (sorted) inputs, its stem and first row."""
    total = _row_count(file)
    for start in range(0, total, shard_rows):
        rows = min(shard_rows, total - start)
        yield Shard(file, start, rows, f"{index:05d}-{Path(file).stem}-{start:010d}")


def _row_count(file: str) -> int:
    if file.endswith(".parquet"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(file).metadata.num_rows)
    with open(file, "rb") as stream:
        return sum(1 for _ in stream)


def _read_shard(shard: Shard, fields: list[str]) -> Any:
    """The shard's rows as an Arrow table, with their source position (of a JSONL file, the
    ``fields`` and ``_line_error``; of a Parquet file, every column)."""
    import pyarrow as pa

    if shard.file.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(shard.file).slice(shard.start, shard.rows)
        names = table.column_names
        columns = {name: table[name] for name in names}
    else:
        columns = _read_jsonl(shard, fields)
    positions = {
        "source_file": pa.array([shard.file] * shard.rows, pa.string()),
        "source_row": pa.array(range(shard.start, shard.start + shard.rows), pa.int64()),
    }
    return pa.table({**positions, **columns})


def _read_jsonl(shard: Shard, fields: list[str]) -> dict[str, Any]:
    """JSONL rows as string columns (a value that is not a string stays, as its JSON, for the
    pruner to refuse) plus ``_line_error`` for lines that are not JSON objects."""
    import pyarrow as pa

    records: list[dict[str, Any]] = []
    with open(shard.file, "rb") as stream:
        for number, line in enumerate(stream):
            if number < shard.start:
                continue
            if number >= shard.start + shard.rows:
                break
            problem = _line_problem(line, fields)
            if isinstance(problem, str):
                problem = {"_line_error": f"line {number + 1}: {problem}"}
            records.append(problem)
    return {
        name: pa.array([record.get(name) for record in records], pa.string())
        for name in [*fields, "_line_error"]
    }


def _line_problem(line: bytes, fields: list[str]) -> dict[str, Any] | str:
    """The line's record, or what is wrong with it: the question and context must be strings,
    the title (the third field, if any) a string or null."""
    if not line.strip():
        return "a blank line"
    try:
        record = json.loads(line)
    except ValueError as error:  # not JSON, or not UTF-8
        return f"not valid JSON: {error}"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for position, name in enumerate(fields):
        value = record.get(name)
        if name not in record and position < 2:
            return f"missing field {name!r}"
        if (value is not None and not isinstance(value, str)) or (value is None and position < 2):
            return f"field {name!r} must be a string, got {json.dumps(value)[:40]}"
    return record


def _prune_table(pruner: BatchPruner, table: Any) -> Any:
    """The shard pruned, a bad line's reason (``_line_error``) taking the place of its error."""
    import pyarrow as pa

    line_errors = table["_line_error"].to_pylist() if "_line_error" in table.column_names else None
    if line_errors is not None:
        table = table.drop_columns(["_line_error"])
    pruned = pruner.prune_table(table)
    if line_errors is None:
        return pruned
    errors = [
        line or error
        for line, error in zip(line_errors, pruned[ERROR_COLUMN].to_pylist(), strict=True)
    ]
    index = pruned.column_names.index(ERROR_COLUMN)
    return pruned.set_column(index, ERROR_COLUMN, pa.array(errors, pa.string()))


def _write_atomically(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _ray_tables(
    pending: list[Shard],
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

    def shard_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
        return _read_shard(pending[item["shard"]], fields).to_pylist()  # type: ignore[no-any-return]

    dataset = ray.data.from_items([{"shard": i} for i in range(len(pending))])
    rows = dataset.flat_map(shard_rows)
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
