"""Corpus mode: ``prune --engine local|ray`` from JSONL and Parquet into Parquet shards, bad rows
in the error column, and resuming after a crash or a kill with every row exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.engines import corpus

QUESTION = "where is paris?"
CONTEXT = "Paris is the capital of France. Cats purr. The city is big."


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> str:
    path = tmp_path_factory.mktemp("corpus") / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(path)
    return str(path)


def write_inputs(folder: Path, rows: int) -> None:
    """``rows`` JSONL lines with bad ones among them, and a Parquet file of 7 rows."""
    folder.mkdir()
    lines = [
        json.dumps({"question": f"{QUESTION} {i}", "context": f"{CONTEXT} {i}."})
        for i in range(rows)
    ]
    lines[2] = "not json"
    lines[4] = json.dumps({"question": QUESTION})
    lines[6] = json.dumps({"question": 3, "context": CONTEXT})
    lines[8] = json.dumps({"question": QUESTION, "context": " "})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.table(
        {
            "question": [QUESTION] * 7,
            "context": [f"{CONTEXT} p{i}." for i in range(7)],
            "id": list(range(7)),
        }
    )
    pq.write_table(table, folder / "b.parquet")


BAD = {
    2: "line 3: not valid JSON",
    4: "line 5: missing field 'context'",
    6: "line 7: field 'question' must be a string, got 3",
    8: "empty context",
}


def read_output(folder: Path) -> list[dict[str, Any]]:
    """Every shard's rows (shards of a Parquet input have its own columns too)."""
    rows = [
        row for shard in folder.glob("part-*.parquet") for row in pq.read_table(shard).to_pylist()
    ]
    return sorted(rows, key=lambda row: (row["source_file"], row["source_row"]))


def run(inputs: Path, output: Path, model: str, *extra: str) -> int:
    return main(
        [
            "prune",
            "--model",
            model,
            "--input",
            str(inputs),
            "--output",
            str(output),
            "--shard-rows",
            "5",
            *extra,
        ]
    )


def test_local_corpus_run_writes_every_row_once_and_resumes(model: str, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", 23)
    assert run(tmp_path / "in", tmp_path / "out", model, "--engine", "local") == 1  # bad rows
    rows = read_output(tmp_path / "out")
    assert len(rows) == 30
    jsonl = [row for row in rows if row["source_file"].endswith("a.jsonl")]
    assert [row["source_row"] for row in jsonl] == list(range(23))
    for i, row in enumerate(jsonl):
        if i in BAD:
            assert row["error"].startswith(BAD[i]) and row["pruned_context"] is None
        else:
            assert row["error"] is None and isinstance(row["reranking_score"], float)
    parquet = [row for row in rows if row["source_file"].endswith("b.parquet")]
    assert [row["id"] for row in parquet] == list(range(7))  # its own columns pass through
    shards = sorted(p.name for p in (tmp_path / "out").glob("part-*.parquet"))
    assert len(shards) == 5 + 2
    before = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in shards}
    # Nothing new to do; the output still holds the bad rows.
    assert run(tmp_path / "in", tmp_path / "out", model, "--engine", "local") == 1
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in shards} == before


def test_a_crash_leaves_finished_shards_and_the_rerun_completes(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_inputs(tmp_path / "in", 23)
    assert run(tmp_path / "in", tmp_path / "clean", model, "--engine", "local") == 1
    write = corpus._write_shard
    written: list[Path] = []

    def crash_on_the_third(table: Any, path: Path) -> None:
        if len(written) == 2:
            # Killed half-way through writing: only a temporary file is left.
            path.with_name(f".{path.stem}.{'0' * 32}.tmp{path.suffix}").write_bytes(b"PAR1 half")
            raise KeyboardInterrupt
        write(table, path)
        written.append(path)

    monkeypatch.setattr(corpus, "_write_shard", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        corpus.prune_corpus(str(tmp_path / "in"), str(tmp_path / "out"), shard_rows=5, model=model)
    monkeypatch.setattr(corpus, "_write_shard", write)
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 2
    # A shard renamed into place whose manifest line was lost is done again, under its name.
    written[1].unlink()
    report = corpus.prune_corpus(
        str(tmp_path / "in"), str(tmp_path / "out"), shard_rows=5, model=model
    )
    assert (report.shards_pruned, report.shards_skipped) == (6, 1)
    assert not list((tmp_path / "out").glob(".*"))  # the killed run's temporary file too
    assert read_output(tmp_path / "out") == read_output(tmp_path / "clean")


def test_resuming_with_other_options_is_refused(model: str, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", 10)
    assert run(tmp_path / "in", tmp_path / "out", model, "--engine", "local") == 1
    assert (
        run(tmp_path / "in", tmp_path / "out", model, "--engine", "local", "--threshold", "0.2")
        == 2
    )
    assert (
        main(
            [
                "prune",
                "--model",
                model,
                "--input",
                str(tmp_path / "none*.jsonl"),
                "--output",
                str(tmp_path / "o"),
                "--engine",
                "local",
            ]
        )
        == 2
    )


@pytest.mark.slow
def test_a_killed_ray_run_resumes_to_the_single_process_output(model: str, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    write_inputs(tmp_path / "in", 200)
    # float32 in both: the Ray run's processes run the real bf16 probe, the test a pinned one.
    local = ("--engine", "local", "--dtype", "float32")
    assert run(tmp_path / "in", tmp_path / "local", model, *local) == 1
    command = [
        sys.executable,
        "-m",
        "pruning_encoder",
        "prune",
        "--dtype",
        "float32",
        "--model",
        model,
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "ray"),
        "--shard-rows",
        "5",
        "--engine",
        "ray",
        "--workers",
        "2",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    driver = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manifest = tmp_path / "ray" / corpus.MANIFEST
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 3:  # header + 2 shards
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
    driver.wait()
    done = len(manifest.read_text().splitlines()) - 1
    assert 2 <= done < 42, done  # killed in the middle
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 1, finished.stderr[-2000:]  # the bad rows
    got, expected = read_output(tmp_path / "ray"), read_output(tmp_path / "local")
    assert len(got) == len(expected) == 207
    for row, want in zip(got, expected, strict=True):
        assert (row["source_file"], row["source_row"]) == (want["source_file"], want["source_row"])
        assert row["error"] == want["error"] and row["kept_spans"] == want["kept_spans"]
        if want["reranking_score"] is not None:
            assert row["reranking_score"] == pytest.approx(want["reranking_score"], abs=1e-5)


def test_files_of_one_name_and_an_output_inside_the_input_folder(
    model: str, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        line = json.dumps({"question": QUESTION, "context": f"{CONTEXT} {folder}"})
        (tmp_path / "in" / folder / "pairs.jsonl").write_text(line + "\n")
    output = tmp_path / "in" / "out"
    for _ in range(2):  # the rerun must not read its own shards as input
        assert run(tmp_path / "in", output, model, "--engine", "local") == 0
    rows = read_output(output)
    assert [row["context"][-1] for row in rows] == ["a", "b"]


def test_bad_corpus_settings_are_named(model: str, tmp_path: Path) -> None:
    write_inputs(tmp_path / "in", 10)
    inputs, output = str(tmp_path / "in"), str(tmp_path / "out")
    with pytest.raises(ValueError, match="Unknown engine 'spark': expected one of local, ray"):
        corpus.prune_corpus(inputs, output, engine="spark", model=model)
    with pytest.raises(ValueError, match="shard_rows must be a positive integer, got 0"):
        corpus.prune_corpus(inputs, output, shard_rows=0, model=model)
    with pytest.raises(FileNotFoundError, match=r"No \.jsonl or \.parquet input matches"):
        corpus.prune_corpus(str(tmp_path / "none*.jsonl"), output, model=model)
    corpus.prune_corpus(inputs, output, shard_rows=5, model=model)
    with pytest.raises(ValueError, match="records another run"):
        corpus.prune_corpus(inputs, output, shard_rows=4, model=model)
