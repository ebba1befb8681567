"""Corpus mode keeps every input field, in one schema, exactly once: JSONL fields pass through,
types are unified over shards and files, names clashing with ours are refused, our own files
are never input, resuming needs the same bytes, and a lone surrogate fails only its row."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_corpus import CONTEXT, QUESTION, model, read_output, run

from pruning_encoder.engines import BatchPruner, RayPruner, corpus
from pruning_encoder.engines.corpus_inputs import input_files

__all__ = ["model"]  # the fixture, shared with test_corpus


def line(i: int, **fields: object) -> str:
    return json.dumps({"id": i, "question": f"{QUESTION} {i}", "context": CONTEXT, **fields})


def test_jsonl_fields_pass_through_in_one_schema(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    lines = [
        # "note" is null in every row of the first shard (5 rows), a string later; "ref" is a
        # number in some rows and a string in others; "meta" an object, "tags" an array.
        line(i, note=None if i < 5 else f"n{i}", ref=i if i % 2 else f"r{i}", meta={"k": i})
        for i in range(12)
    ]
    lines[6] = json.dumps({"id": 6, "question": 3, "context": CONTEXT, "tags": ["x"]})
    lines[7] = "not json"
    lines[8] = line(8, context="\ud83d broken by a UTF-16 cut")  # json.dumps writes "\ud83d"
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(lines) + "\n")
    parquet = {"question": [QUESTION] * 3, "context": [CONTEXT] * 3, "id": [20, 21, 22]}
    pq.write_table(
        pa.table({**parquet, "note": pa.array(["a", None, "b"], pa.large_string())}),
        tmp_path / "in" / "b.parquet",
    )
    pq.write_table(
        pa.table({**parquet, "note": pa.nulls(3)}), tmp_path / "in" / "c.parquet"
    )  # a column of type null

    assert run(tmp_path / "in", tmp_path / "out", model, "--engine", "local") == 1  # bad rows
    assert "lone surrogate" not in capsys.readouterr().err  # reported in the rows, not a failure

    table = pq.read_table(tmp_path / "out")  # every shard in one schema
    assert len(pd.read_parquet(tmp_path / "out")) == 18
    types = {field.name: field.type for field in table.schema}
    assert types["id"] == pa.int64() and types["note"] == pa.large_string()
    assert types["meta"] == pa.struct([("k", pa.int64())])
    assert types["tags"] == pa.list_(pa.string())
    assert table.schema.field("ref").metadata == {b"encoding": b"json"}  # values of no one type
    assert table.column_names.count("error") == 1
    rows = read_output(tmp_path / "out")
    jsonl = [row for row in rows if row["source_file"].endswith("a.jsonl")]
    assert [row["id"] for row in jsonl] == [0, 1, 2, 3, 4, 5, 6, None, 8, 9, 10, 11]  # joinable
    assert jsonl[0]["note"] is None and jsonl[5]["note"] == "n5"
    assert [row["ref"] for row in jsonl[:2]] == ['"r0"', "1"]  # JSON text
    assert jsonl[1]["meta"] == {"k": 1} and jsonl[6]["tags"] == ["x"]
    assert jsonl[6]["error"] == "line 7: field 'question' must be a string, got 3"
    assert jsonl[6]["question"] is None and jsonl[6]["pruned_context"] is None
    assert jsonl[8]["error"].startswith(
        "line 9: field 'context' holds a lone surrogate (U+D83D) at character"
    )
    assert jsonl[8]["id"] == 8 and jsonl[8]["pruned_context"] is None
    good = [row for i, row in enumerate(jsonl) if i not in (6, 7, 8)]
    assert all(row["error"] is None and row["compression_rate"] is not None for row in good)
    parquet_ids = [row["id"] for row in rows if row["source_file"].endswith(".parquet")]
    assert parquet_ids == [20, 21, 22] * 2


def test_input_files_whose_types_disagree_share_one_schema(model: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    base = {"question": [QUESTION] * 2, "context": [CONTEXT] * 2}
    columns = [
        {"id": pa.array([1, 2]), "label": pa.array(["a", "b"], pa.string())},
        {"id": pa.array(["x", "y"]), "label": pa.array(["c", None], pa.large_string())},
    ]
    for name, extra in zip(("a", "b"), columns, strict=True):
        pq.write_table(pa.table({**base, **extra}), tmp_path / "in" / f"{name}.parquet")
    (tmp_path / "in" / "c.jsonl").write_text(line(3, label=None) + "\n")
    corpus.prune_corpus(str(tmp_path / "in"), str(tmp_path / "out"), model=model)
    table = pq.read_table(tmp_path / "out")
    assert table.schema.field("label").type == pa.large_string()
    assert table.schema.field("id").metadata == {b"encoding": b"json"}
    by_source = sorted(zip(table["source_file"].to_pylist(), table["id"].to_pylist(), strict=True))
    assert [value for _, value in by_source] == ["1", "2", '"x"', '"y"', "3"]


def test_columns_named_like_the_outputs_are_refused(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(line(0) + "\n" + line(1, error="old") + "\n")
    with pytest.raises(ValueError, match=r"a\.jsonl has columns named like the output's: 'error'"):
        corpus.prune_corpus(str(tmp_path / "in"), str(tmp_path / "out"), model=model)
    assert not (tmp_path / "out").exists()  # refused before anything is written
    (tmp_path / "in" / "a.jsonl").write_text(line(0) + "\n")
    corpus.prune_corpus(str(tmp_path / "in"), str(tmp_path / "out"), model=model)
    # Pruning an earlier output again: refused clearly, on the command line too.
    assert run(tmp_path / "out", tmp_path / "again", model, "--engine", "local") == 2
    error = capsys.readouterr().err
    assert "has columns named like the output's: 'source_file', 'source_row'" in error
    assert "'pruned_context'" in error and "Rename or drop them" in error
    pruner = BatchPruner(model)
    batch = pa.table({"question": [QUESTION], "context": [CONTEXT], "kept_spans": [None]})
    with pytest.raises(ValueError, match="The batch has columns named like the output's"):
        pruner.prune_table(batch)
    with pytest.raises(ValueError, match="named like the output's: 'kept_spans'"):
        RayPruner(model)(batch.to_pandas())


def test_our_manifest_and_temporary_files_are_never_input(model: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "_logs").mkdir(parents=True)
    (folder / "a.jsonl").write_text(line(0) + "\n")
    for name in (corpus.MANIFEST, "_logs/b.jsonl", ".c.jsonl", ".part-0.parquet.tmp"):
        (folder / name).write_text(line(1) + "\n")  # each would be valid input
    assert input_files(str(folder)) == [str(folder / "a.jsonl")]
    assert input_files(str(folder / "*")) == [str(folder / "a.jsonl")]
    with pytest.raises(FileNotFoundError, match=r"names starting with '\.' or '_' are metadata"):
        input_files(str(folder / corpus.MANIFEST))
    report = corpus.prune_corpus(str(folder), str(tmp_path / "out"), model=model)
    assert report.rows == 1


def test_an_input_edited_in_place_is_not_resumed(model: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "a.jsonl"
    path.write_text(line(0) + "\n" + line(1) + "\n")
    corpus.prune_corpus(str(path), str(tmp_path / "out"), model=model)
    before = path.stat()
    path.write_text(line(0) + "\n" + line(2) + "\n")  # same size, same modification time
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    with pytest.raises(ValueError, match="inputs edited since"):
        corpus.prune_corpus(str(path), str(tmp_path / "out"), model=model)
