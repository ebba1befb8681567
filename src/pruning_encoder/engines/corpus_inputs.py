"""The inputs of a corpus job: which files, what each holds (rows, a digest of its bytes, its
columns and their types), one Arrow schema for all of them, and a shard's rows in that schema.

Every input column passes through to the output, in one schema across all shards, whatever
each file or shard holds: a column's type is unified over every file of the job (a column null
in one file and a string in another is a string; ``string`` and ``large_string`` are
``large_string``; ``int64`` and ``double`` are ``double``), and a column whose values share no
type (a number in one row, a string in another) holds each value's JSON text, its field marked
``{"encoding": "json"}`` in the schema. The question, context and title columns are strings.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import check_text

if TYPE_CHECKING:  # pyarrow is imported where used: the command line runs without it
    import pyarrow as pa

SOURCE_COLUMNS = ("source_file", "source_row")
LINE_ERROR = "_line_error"
JSON_TEXT = {"encoding": "json"}
# Like Spark and pyarrow, files and folders named so are metadata, not data: our own
# _manifest.jsonl and .part-*.tmp among them.
HIDDEN_PREFIXES = (".", "_")
_CHUNK = 10_000


@dataclass(frozen=True)
class InputFile:
    """One input file: its rows, the SHA-256 of its bytes, and its columns' Arrow types in
    order (None: values of no one type, kept as JSON text)."""

    path: str
    rows: int
    digest: str
    types: dict[str, pa.DataType | None] = field(repr=False)


def input_files(pattern: str, exclude: Path | None = None) -> list[str]:
    """The ``.jsonl`` / ``.parquet`` files of a file, a folder or a glob, sorted; files or
    folders whose name starts with ``.`` or ``_`` are skipped, and so is ``exclude`` (the
    output folder) with everything in it.

    Raises:
        FileNotFoundError: Nothing matches.
    """
    if os.path.isdir(pattern):
        root = Path(pattern)
        found = [p for p in root.rglob("*") if p.suffix in (".jsonl", ".parquet")]
        visible = [p for p in found if not _hidden(p.relative_to(root).parts)]
    else:
        visible = [
            Path(p) for p in glob.glob(pattern, recursive=True) if not _hidden([Path(p).name])
        ]
    outside = exclude.resolve() if exclude is not None else None
    files = sorted(
        str(p)
        for p in visible
        if p.is_file() and (outside is None or outside not in p.resolve().parents)
    )
    if not files:
        raise FileNotFoundError(
            f"No .jsonl or .parquet input matches {pattern} (names starting with "
            f"{' or '.join(map(repr, HIDDEN_PREFIXES))} are metadata, not input)."
        )
    return files


def _hidden(parts: Iterable[str]) -> bool:
    return any(part.startswith(HIDDEN_PREFIXES) for part in parts)


def scan(path: str, fields: Sequence[str]) -> InputFile:
    """Read ``path`` once: its rows, digest and column types (``fields``, our question, context
    and title columns, are strings and not inferred).

    Raises:
        ValueError: A Parquet file without the question or context column.
    """
    import pyarrow as pa

    digest = hashlib.sha256()
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        schema = pq.read_schema(path)
        missing = [name for name in fields[:2] if name not in schema.names]
        if missing:
            raise ValueError(
                f"{path} has no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, schema.names))}."
            )
        rows = int(pq.ParquetFile(path).metadata.num_rows)
        columns = {f.name: pa.string() if f.name in fields else f.type for f in schema}
        return InputFile(path, rows, digest.hexdigest(), dict(columns))
    rows = 0
    types: dict[str, pa.DataType | None] = {}
    chunk: list[dict[str, Any]] = []
    with open(path, "rb") as stream:
        for line in stream:
            digest.update(line)
            rows += 1
            chunk.append(parse_line(line)[0])
            if len(chunk) == _CHUNK:
                _infer(chunk, fields, types)
                chunk = []
    _infer(chunk, fields, types)
    return InputFile(path, rows, digest.hexdigest(), types)


def _infer(records: list[dict[str, Any]], fields: Sequence[str], types: dict[str, Any]) -> None:
    """Unify ``types`` with the types of these records' values, key by key."""
    import pyarrow as pa

    names = {name: None for record in records for name in record}
    for name in names:
        if name in fields:
            types[name] = pa.string()
            continue
        try:
            found = pa.array([record.get(name) for record in records]).type
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            found = None
        types[name] = unify(types[name], found) if name in types else found


def unify(a: pa.DataType | None, b: pa.DataType | None) -> pa.DataType | None:
    """The type that holds values of both (None: none does, or either is None)."""
    import pyarrow as pa

    if a is None or b is None:
        return None
    if a == b:
        return a
    try:
        schemas = [pa.schema([("x", a)]), pa.schema([("x", b)])]
        return pa.unify_schemas(schemas, promote_options="permissive").field("x").type
    except (pa.ArrowException, NotImplementedError):
        return None


def job_schema(files: Sequence[InputFile], fields: Sequence[str]) -> pa.Schema:
    """The schema of every shard as read: source position, each input column (in order of
    first appearance, of its type unified over all files), our fields, and ``_line_error``."""
    import pyarrow as pa

    types: dict[str, pa.DataType | None] = {}
    for file in files:
        for name, kind in file.types.items():
            types[name] = unify(types[name], kind) if name in types else kind
    for name in fields:
        types[name] = pa.string()
    inputs = [
        pa.field(name, pa.string(), metadata=JSON_TEXT) if kind is None else pa.field(name, kind)
        for name, kind in types.items()
    ]
    positions = [pa.field("source_file", pa.string()), pa.field("source_row", pa.int64())]
    return pa.schema([*positions, *inputs, pa.field(LINE_ERROR, pa.string())])


def read_shard(file: str, start: int, rows: int, schema: pa.Schema, fields: Sequence[str]) -> Any:
    """The rows ``start`` to ``start + rows`` of ``file`` as a table of ``schema``; a row that
    cannot be pruned (a line that is not a JSON object, a field of the wrong type) has the
    reason in ``_line_error`` and null question and context."""
    import pyarrow as pa

    if file.endswith(".parquet"):
        columns, errors = _parquet_columns(file, start, rows, schema, fields)
    else:
        columns, errors = _jsonl_columns(file, start, rows, schema, fields)
    columns["source_file"] = [file] * rows
    columns["source_row"] = list(range(start, start + rows))
    columns[LINE_ERROR] = errors
    return pa.table([_array(columns.get(f.name, [None] * rows), f) for f in schema], schema=schema)


def _array(values: Any, target: pa.Field) -> pa.Array:
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.cast(target.type).combine_chunks()
    if target.metadata:  # JSON text
        values = [
            None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values
        ]
    return pa.array(values, type=target.type)


def _parquet_columns(
    file: str, start: int, rows: int, schema: pa.Schema, fields: Sequence[str]
) -> tuple[dict[str, Any], list[str | None]]:
    import pyarrow.parquet as pq

    table = pq.read_table(file).slice(start, rows)
    errors: list[str | None] = [None] * rows
    columns: dict[str, Any] = {}
    for name in table.column_names:
        column = table[name]
        if name in fields and not _is_text(column.type):
            errors = [f"column {name!r} must hold strings, got {column.type}"] * rows
        elif name not in fields and schema.field(name).metadata:
            columns[name] = column.to_pylist()  # for their JSON text
        else:
            columns[name] = column
    return columns, errors


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    )


def _jsonl_columns(
    file: str, start: int, rows: int, schema: pa.Schema, fields: Sequence[str]
) -> tuple[dict[str, list[Any]], list[str | None]]:
    records: list[dict[str, Any]] = []
    errors: list[str | None] = []
    for number, line in enumerate(_lines(file, start, rows), start=start + 1):
        record, problem = parse_line(line)
        problem = problem or field_problem(record, fields)
        errors.append(None if problem is None else f"line {number}: {problem}")
        if problem is not None:  # not pruned; its other fields pass through
            record = {k: v for k, v in record.items() if k not in fields}
        records.append(record)
    names = [f.name for f in schema if f.name not in (*SOURCE_COLUMNS, LINE_ERROR)]
    return {name: [record.get(name) for record in records] for name in names}, errors


def _lines(file: str, start: int, rows: int) -> Iterator[bytes]:
    with open(file, "rb") as stream:
        for number, line in enumerate(stream):
            if number >= start + rows:
                break
            if number >= start:
                yield line


def parse_line(line: bytes) -> tuple[dict[str, Any], str | None]:
    """The line's JSON object and what is wrong with it, if anything: blank, not JSON, not an
    object (then the object is empty), or a field holding a lone surrogate escape such as
    ``"\\ud83d"``, which no UTF-8 text can hold (then that field is left out)."""
    if not line.strip():
        return {}, "a blank line"
    try:
        record = json.loads(line)
    except ValueError as error:  # not JSON, or not UTF-8
        return {}, f"not valid JSON: {error}"
    if not isinstance(record, dict):
        return {}, f"expected a JSON object, got {type(record).__name__}"
    problem = None
    for name, value in list(record.items()):
        invalid = _invalid_text(name, "a field's name") or _invalid_text(value, f"field {name!r}")
        if invalid:
            del record[name]  # Arrow cannot hold it
            problem = problem or invalid
    return record, problem


def _invalid_text(value: Any, what: str) -> str | None:
    """Why ``value`` (a string, or strings nested in lists and objects) is not valid Unicode
    text, by the rule of every surface (:func:`check_text`); None if it is."""
    if isinstance(value, str):
        try:
            check_text(value, what[:50])
        except ValueError as error:
            return str(error)
        return None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        return next((s for s in (_invalid_text(v, what) for v in value) if s), None)
    return None


def field_problem(record: dict[str, Any], fields: Sequence[str]) -> str | None:
    """What is wrong with the record's question, context (present strings) or title (the
    third field, if any: a string or null)."""
    for position, name in enumerate(fields):
        value = record.get(name)
        if name not in record and position < 2:
            return f"missing field {name!r}"
        if (value is not None and not isinstance(value, str)) or (value is None and position < 2):
            return f"field {name!r} must be a string, got {json.dumps(value)[:40]}"
    return None
