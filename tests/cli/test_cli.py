"""The ``pruning-encoder`` command line, run in-process on one saved tiny model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import fanoutqa_dev, fanoutqa_summaries

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main

CONTEXT = "Paris is the capital of France. Cats purr."
RESULT_TYPES = {
    "pruned_context": str,
    "reranking_score": float,
    "compression_rate": float,
    "kept_spans": list,
}


@pytest.fixture(scope="module")
def model_dir(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("cli") / "model"
    PruningEncoder(tiny_backbone, device="cpu").save_pretrained(directory)
    return str(directory)


def prune(model_dir: str, *args: str) -> int:
    return main(["prune", "--model", model_dir, "--device", "cpu", *args])


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pair(i: int, question: object = "where is paris?", context: object = CONTEXT) -> str:
    return json.dumps({"id": i, "question": question, "context": context, "extra": [i]})


def test_text_mode_reads_file_and_applies_threshold(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT + "\n", encoding="utf-8")
    args = ["--question", "where is paris?", str(context_file)]

    assert prune(model_dir, *args, "--threshold", "0") == 0
    assert capsys.readouterr().out == CONTEXT + "\n"  # threshold 0 keeps every sentence
    assert prune(model_dir, *args, "--threshold", "1") == 0
    assert capsys.readouterr().out == "\n"  # threshold 1 keeps none


@pytest.mark.parametrize("file_args", [[], ["-"]], ids=["omitted", "dash"])
def test_text_mode_reads_stdin(
    model_dir: str,
    file_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(CONTEXT))
    assert prune(model_dir, "--question", "q?", "--threshold", "0", *file_args) == 0
    assert capsys.readouterr().out == CONTEXT + "\n"


def test_json_flag_prints_the_full_result(
    model_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(CONTEXT))
    assert prune(model_dir, "--question", "where is paris?", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    expected = PruningEncoder.from_pretrained(model_dir, device="cpu").process(
        "where is paris?", CONTEXT
    )
    assert {key: type(value) for key, value in result.items()} == RESULT_TYPES
    assert result["pruned_context"] == expected["pruned_context"]
    assert result["reranking_score"] == pytest.approx(expected["reranking_score"], abs=1e-6)


def test_text_mode_question_the_model_refuses_is_exit_1(
    model_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(CONTEXT))
    assert prune(model_dir, "--question", "what " * 70) == 1  # over the tiny model's 64 tokens
    assert capsys.readouterr().err.startswith("error: cannot prune: The question")


def test_jsonl_round_trip_keeps_fields_and_order(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contexts = [CONTEXT, "The cat is a cat. It was in 1990.", "", "What a dog."]
    source = write_lines(
        tmp_path / "pairs.jsonl", [pair(i, context=c) for i, c in enumerate(contexts)]
    )
    output = tmp_path / "out.jsonl"
    # A batch size of 3 splits the 4 records over two batches.
    assert (
        prune(model_dir, "--input", str(source), "--output", str(output), "--batch-size", "3") == 0
    )
    assert capsys.readouterr() == ("", "")

    records = read_jsonl(output)
    assert [record["id"] for record in records] == [0, 1, 2, 3]
    for i, record in enumerate(records):
        assert record["context"] == contexts[i] and record["extra"] == [i]
        assert {key: type(record[key]) for key in RESULT_TYPES} == RESULT_TYPES
        kept = "".join(contexts[i][start:end] for start, end in record["kept_spans"])
        assert record["pruned_context"] == kept


def test_jsonl_stdin_to_stdout(
    model_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (pair(0) + "\n" + pair(1) + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert prune(model_dir, "--input", "-", "--threshold", "0") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["pruned_context"] for line in lines] == [CONTEXT, CONTEXT]


def test_invalid_lines_are_reported_and_skipped(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_lines(
        tmp_path / "pairs.jsonl",
        [
            pair(0),
            "not json",
            pair(1),
            "[1, 2]",
            "",  # blank: skipped without a word
            pair(2, question=3),
            json.dumps({"id": 3, "question": "q"}),
            pair(4, question="what " * 70),  # too long for the tiny model's 64 tokens
            pair(5),
        ],
    )
    output = tmp_path / "out.jsonl"
    assert prune(model_dir, "--input", str(source), "--output", str(output), "-q") == 1

    assert [record["id"] for record in read_jsonl(output)] == [0, 1, 5]
    errors = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[0] for line in errors] == [
        f"{source}:{number}" for number in (2, 4, 6, 7, 8)
    ]
    assert "not valid JSON" in errors[0]
    assert "expected a JSON object, got an array" in errors[1]
    assert "field 'question' must be a string, got a number" in errors[2]
    assert "missing field 'context'" in errors[3]
    assert "cannot prune" in errors[4]


def test_output_file_is_replaced_only_on_success(
    model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_lines(tmp_path / "pairs.jsonl", [pair(i) for i in range(4)])
    output = tmp_path / "out.jsonl"
    output.write_text("previous\n")
    process = PruningEncoder.process
    batches = iter(range(4))

    def crash_on_second_batch(self: PruningEncoder, *args: Any, **kwargs: Any) -> Any:
        if next(batches) == 1:
            raise RuntimeError("crash")
        return process(self, *args, **kwargs)

    monkeypatch.setattr(PruningEncoder, "process", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="crash"):
        prune(model_dir, "--input", str(source), "--output", str(output), "--batch-size", "2")
    assert output.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl", "pairs.jsonl"]  # no temporary file left


@pytest.mark.parametrize("kind", ["missing", "no-config", "plain-bert"])
def test_bad_model_dir_is_one_error_line(
    kind: str, tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = {"missing": tmp_path / "nope", "no-config": tmp_path, "plain-bert": tiny_backbone}[
        kind
    ]
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT)
    assert prune(str(directory), "--question", "q?", str(context_file)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load a model from") and err.count("\n") == 1


@pytest.mark.parametrize("mode", ["--question", "--input"])
def test_missing_input_file_is_a_usage_error(
    mode: str, model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.txt")
    args = ["--question", "q?", missing] if mode == "--question" else ["--input", missing]
    assert prune(model_dir, *args) == 2
    assert capsys.readouterr().err == f"error: cannot read {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--question", "q?", "--input", "pairs.jsonl"],
        [],  # neither --question nor --input
        ["--question", "q?", "--threshold", "1.5"],
        ["--input", "pairs.jsonl", "--batch-size", "0"],
    ],
    ids=["both-modes", "no-mode", "threshold-range", "batch-size"],
)
def test_argument_misuse_is_an_argparse_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--model", "m", *args]) == 2
    assert "pruning-encoder prune: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "pairs.jsonl", "context.txt"], "a context FILE goes with --question"),
        (["--input", "pairs.jsonl", "--json"], "--json goes with --question"),
        (["--question", "q?", "--output", "out.jsonl"], "--output goes with --input"),
    ],
)
def test_options_of_the_other_mode_are_refused(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--model", "m", *args]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_module_entry_point_help() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pruning_encoder", "prune", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    assert "--input pairs.jsonl --output pruned.jsonl" in completed.stdout


def records_file(path: Path) -> Path:
    row = {
        "query": "where is paris?",
        "texts": [CONTEXT, "Cats purr. Dogs bark."],
        "labels": [1, 0],
        "relevant_spans": [[[0, 31]], []],
    }
    return write_lines(path, [json.dumps(row)] * 3)


def test_eval_prints_a_table_and_writes_the_report(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = records_file(tmp_path / "data.jsonl")
    output = tmp_path / "report.json"
    args = ["eval", "--model", model_dir, "--device", "cpu", "--data", str(data)]
    plot = tmp_path / "curves.png"
    assert main([*args, "--no-baselines", "--output", str(output), "--plot", str(plot)]) == 0
    report = json.loads(output.read_text())
    assert report["counts"]["queries"] == 3
    assert set(report["methods"]) == {"model"}
    out = capsys.readouterr().out
    assert "model" in out
    assert (
        "Trade-off by threshold (answer kept, distractor and evidence characters removed):" in out
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_refused_before_any_work(
    model_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    data = str(records_file(tmp_path / "data.jsonl"))
    plot = str(tmp_path / "curves.png")
    for command in (
        ["eval", "--data", data],
        ["calibrate", "--data", data, "--target-compression", "0.5"],
    ):
        assert main([*command, "--model", model_dir, "--plot", plot]) == 2
        assert capsys.readouterr() == (
            "",
            "error: --plot needs matplotlib: pip install 'pruning-encoder[plot]'\n",
        )


def test_eval_reports_bad_data_with_file_and_line(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_lines(tmp_path / "bad.jsonl", ['{"query": "q", "texts": []}'])
    assert main(["eval", "--model", model_dir, "--data", str(data), "--no-baselines"]) == 2
    assert "bad.jsonl:1:" in capsys.readouterr().err


def test_eval_without_data_runs_the_fanoutqa_benchmark(
    model_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pruning_encoder import wiki_data
    from pruning_encoder.evaluation import GRID

    monkeypatch.setattr(
        wiki_data, "load_sources", lambda: (fanoutqa_summaries(), [], fanoutqa_dev())
    )
    output = tmp_path / "fanoutqa.json"
    args = ["eval", "--model", model_dir, "--device", "cpu", "--output", str(output)]
    assert main([*args, "--threshold", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "FanOutQA validation: 3 ranking cases, 2 pruning cases; model threshold 0.40" in out
    report = json.loads(output.read_text())
    assert report["benchmark"] == "fanoutqa-validation"
    assert report["threshold"] == 0.4
    # The bi-encoder is the model's backbone, as a SentenceTransformer.
    assert list(report["methods"]) == [
        "model",
        "bm25",
        "bi-encoder",
        "keep-all",
        "keep-first-sentence",
    ]
    assert report["bi_encoder_threshold"] in GRID.tolist()
    model_row, bi_row = report["methods"]["model"], report["methods"]["bi-encoder"]
    # At the model's answer-kept rate, unless no grid threshold reaches it.
    lowest = report["bi_encoder_threshold"] == 0.01
    assert bi_row["answer_kept"] >= model_row["answer_kept"] or lowest
    for name in report["methods"]:
        assert name in out
    assert "answer kept" in out and "rm distr %" in out and "rm evid %" in out
    # Then the trade-off curves of the model and the bi-encoder, each threshold marked.
    curves = out.split("Trade-off by threshold")[1].splitlines()
    assert curves[1].split() == ["model", "bi-encoder"]
    assert any(line.startswith("     0.40") and "<- model" in line for line in curves)
    assert set(report["curves"]) == {"model", "bi-encoder"}

    assert main(["eval", "--model", model_dir, "--device", "cpu", "--no-baselines"]) == 0
    assert "keep-all" not in capsys.readouterr().out


def test_eval_without_data_names_the_missing_sources(
    model_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pruning_encoder import wiki_data

    def missing(name: str) -> None:
        raise wiki_data.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(wiki_data.importlib.metadata, "distribution", missing)
    assert main(["eval", "--model", model_dir, "--no-baselines"]) == 2
    assert wiki_data.INSTALL in capsys.readouterr().err
    tune = records_file(tmp_path / "tune.jsonl")
    assert main(["eval", "--model", model_dir, "--tune-data", str(tune)]) == 2
    assert "--tune-data goes with --data" in capsys.readouterr().err


def test_train_names_an_unknown_config_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model: {base: x, colour: red}\ndata: {train: t.jsonl}\ntraining: {}\n")
    assert main(["train", str(config)]) == 2
    assert "model.colour" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_export_onnx_then_prune_with_the_onnx_backend(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "onnx-model"
    assert main(["export", "--model", model_dir, "--onnx", str(target)]) == 0
    assert (target / "onnx" / "model.onnx").is_file()
    assert (target / "onnx" / "model_qint8.onnx").is_file()
    capsys.readouterr()
    question = ["--question", "where is paris?", "--json", "-"]
    results = {}
    for backend in (["--backend", "torch"], ["--backend", "onnx"]):
        sys.stdin = io.StringIO(CONTEXT)
        try:
            assert main(["prune", "--model", str(target), *backend, *question]) == 0
        finally:
            sys.stdin = sys.__stdin__
        results[backend[1]] = json.loads(capsys.readouterr().out)
    assert results["onnx"]["kept_spans"] == results["torch"]["kept_spans"]
    assert results["onnx"]["reranking_score"] == pytest.approx(
        results["torch"]["reranking_score"], abs=1e-5
    )


def test_export_ranking_model_and_usage_errors(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--model", model_dir, "--ranking-model", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "config.json").is_file()
    assert main(["export", "--model", model_dir]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert prune(model_dir, "--backend", "onnx", "--question", "q", "-") == 2
    assert "export --onnx" in capsys.readouterr().err


def test_rank_text_mode_sorts_lines_best_first(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = ["Cats purr.", "Paris is the capital of France.", "The dog."]
    path = write_lines(tmp_path / "docs.txt", [documents[0], "", *documents[1:]])
    assert main(["rank", "--model", model_dir, "--query", "paris?", str(path)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    expected = PruningEncoder(model_dir, device="cpu").rank("paris?", documents)
    assert [int(row[1]) - 1 for row in rows] == [e["corpus_id"] for e in expected]
    assert [row[2] for row in rows] == [documents[e["corpus_id"]] for e in expected]
    top = ["--top-k", "1", "--json", str(path)]
    assert main(["rank", "--model", model_dir, "--query", "paris?", *top]) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert [r["corpus_id"] for r in ranking] == [expected[0]["corpus_id"]]


def test_rank_jsonl_reports_bad_lines(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"query": "paris?", "documents": ["Cats purr.", "Paris is big."], "id": 1}),
        json.dumps({"query": "paris?", "documents": "Cats purr."}),
        json.dumps({"query": "paris?", "documents": ["ok", 3]}),
    ]
    source = write_lines(tmp_path / "in.jsonl", lines)
    output = tmp_path / "out.jsonl"
    args = ["rank", "--model", model_dir, "--input", str(source), "--output", str(output)]
    assert main(args) == 1
    records = read_jsonl(output)
    assert len(records) == 1
    assert records[0]["id"] == 1
    assert sorted(r["corpus_id"] for r in records[0]["ranking"]) == [0, 1]
    errors = capsys.readouterr().err
    assert f"{source}:2: field 'documents' must be an array of strings, got a string" in errors
    assert f"{source}:3: field 'documents' must be an array of strings" in errors
    assert main(["rank", "--model", model_dir, "--input", str(source), "--json"]) == 2


@pytest.mark.parametrize("option", ["--data", "--tune-data"])
def test_eval_names_the_option_whose_file_it_cannot_read(
    option: str, model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """eval and calibrate read records through one rule, which names the option."""
    good = tmp_path / "good.jsonl"
    record = {"query": "q", "texts": ["A b."], "labels": [1.0], "relevant_spans": [[[0, 4]]]}
    good.write_text(json.dumps(record) + "\n")
    missing = str(tmp_path / "missing.jsonl")
    data = missing if option == "--data" else str(good)
    extra = ["--tune-data", missing] if option == "--tune-data" else []
    assert main(["eval", "--model", model_dir, "--data", data, *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot read {option} {missing}: No such file or directory\n"
