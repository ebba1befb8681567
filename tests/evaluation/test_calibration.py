"""calibrate(): the threshold sweep against a brute-force run per threshold, the choice, the
refusals, and the ``calibrate`` command (--json, --plot, --save)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pruning_encoder import PruningEncoder
from pruning_encoder.cli import main
from pruning_encoder.data.records import Record, load_records, write_records
from pruning_encoder.evaluation import GRID, pruning_metrics
from pruning_encoder.evaluation.calibration import calibrate, format_calibration

SENTENCES = [
    "Paris is the capital of France.",
    "Cats purr in the city.",
    "It was in the city of paris.",
    "The dog is a dog.",
    "What is the capital of it?",
    "A cat and a dog.",
]


def make_records(count: int = 24, *, answers: bool = True) -> list[dict[str, Any]]:
    """Records of 2 texts: a relevant one (its first sentence holds the answer) and another."""
    rows = []
    for i in range(count):
        lead = f"Paris {i} is the capital of France."
        rest = " ".join(SENTENCES[1 + (i + j) % 5] for j in range(1 + i % 3))
        relevant = f"{lead} {rest}"
        other = " ".join(SENTENCES[1 + (i * 7 + j) % 5] for j in range(2))
        row: dict[str, Any] = {
            "query": "what is the capital of france?",
            "texts": [relevant, other],
            "labels": [1, 0],
            "relevant_spans": [[[0, len(lead)]], []],
        }
        if answers:
            row["answers"] = [f"Paris {i}"]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def model(tiny_backbone: Path) -> PruningEncoder:
    torch.manual_seed(0)
    return PruningEncoder(tiny_backbone, device="cpu")


def brute_force(model: PruningEncoder, records: list[Record], threshold: float) -> dict[str, Any]:
    """One process() run at ``threshold``: the metrics eval would report, and tokens kept."""
    questions = [r.query for r in records for _ in r.texts]
    contexts = [t for r in records for t in r.texts]
    results = model.process(questions, contexts, threshold=threshold, max_tokens=10**9)
    everything = model.process(questions, contexts, threshold=0.0, max_tokens=10**9)
    kept, i = [], 0
    for record in records:
        kept.append([results[i + j]["kept_spans"] for j in range(len(record.texts))])
        i += len(record.texts)
    metrics = pruning_metrics(records, kept)
    chars = sum(len(c) for c in contexts)
    return {
        "threshold": threshold,
        "answer_kept": metrics["answer_kept"],
        "relevant_kept": metrics["sentence_recall"],
        "removed_relevant_pct": metrics["removed_relevant_pct"],
        "removed_irrelevant_pct": metrics["removed_irrelevant_pct"],
        "removed_evidence_pct": metrics["removed_evidence_pct"],
        "removed_distractor_pct": metrics["removed_distractor_pct"],
        "removed_pct": 100 * (1 - sum(len(r["pruned_context"]) for r in results) / chars),
        "tokens_kept_pct": 100
        * sum(r["kept_tokens"] for r in results)
        / sum(r["kept_tokens"] for r in everything),
    }


def test_the_curve_and_the_choice_match_a_run_per_threshold(model: PruningEncoder) -> None:
    records = load_records(make_records())
    calibration = calibrate(model, records, target_answer_kept=0.95)
    assert [row["threshold"] for row in calibration["curve"]] == GRID.tolist()
    expected = [brute_force(model, records, t) for t in GRID.tolist()]
    for row, truth in zip(calibration["curve"], expected, strict=True):
        assert row == pytest.approx(truth)
    reaching = [r["threshold"] for r in expected if r["answer_kept"] >= 0.95]
    assert calibration["threshold"] == max(reaching)
    assert calibration["target"] == {"metric": "answer_kept", "value": 0.95}
    assert calibration["counts"] == {
        "records": 24,
        "texts": 48,
        "relevant_texts": 24,
        "relevant_sentences": 24,
    }
    assert len({r["answer_kept"] for r in expected}) > 1  # the sweep is not constant
    compression = calibrate(model, records, target_compression=0.5)
    removing = [r["threshold"] for r in expected if r["removed_pct"] >= 50]
    assert compression["threshold"] == (min(removing) if removing else None)
    table = format_calibration(calibration)
    assert f"{calibration['threshold']:.2f}" in table and "<- chosen" in table


def test_one_forward_pass_serves_every_threshold(
    model: PruningEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    score = model.model.score_documents

    def counting(documents: Any, **options: Any) -> Any:
        calls.append(len(documents))
        return score(documents, **options)

    monkeypatch.setattr(model.model, "score_documents", counting)
    calibrate(model, make_records(), target_answer_kept=0.9)
    assert calls == [48]  # every text of every record, once


def test_records_with_spans_only_calibrate_relevant_sentences(model: PruningEncoder) -> None:
    records = load_records(make_records(answers=False))
    calibration = model.calibrate(records, target_answer_kept=0.9)
    assert calibration["target"]["metric"] == "relevant_kept"
    assert all(row["answer_kept"] is None for row in calibration["curve"])
    values = {row["threshold"]: row["relevant_kept"] for row in calibration["curve"]}
    if calibration["threshold"] is not None:
        assert values[calibration["threshold"]] >= 0.9


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({}, ValueError, "Give one target"),
        ({"target_answer_kept": 0.9, "target_compression": 0.5}, ValueError, "Give one target"),
        ({"target_answer_kept": 0.0}, ValueError, r"within \(0, 1\], got 0.0"),
        ({"target_compression": 1.5}, ValueError, r"target_compression must be within \(0, 1\]"),
        ({"target_answer_kept": True}, TypeError, "must be a number"),
    ],
)
def test_targets_are_refused_outside_0_1(
    model: PruningEncoder, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        calibrate(model, make_records(), **options)


def test_records_it_cannot_use_are_refused(model: PruningEncoder) -> None:
    rows = make_records()
    rows[3] = {**rows[3], "relevant_spans": [[], []]}
    del rows[3]["answers"]
    with pytest.raises(ValueError, match="Record 3 has neither answers nor relevant_spans"):
        calibrate(model, rows, target_answer_kept=0.9)
    mixed = make_records()
    del mixed[5]["answers"]  # spans only: fine, the records calibrate relevant sentences
    assert calibrate(model, mixed, target_answer_kept=0.9)["target"]["metric"] == "relevant_kept"
    mixed[7]["relevant_spans"] = [[], []]  # answers only: neither metric covers every record
    with pytest.raises(ValueError, match="Record 5 has no answers and record 7 no relevant"):
        calibrate(model, mixed, target_answer_kept=0.9)


def test_too_few_records_for_the_target_precision_are_refused(model: PruningEncoder) -> None:
    with pytest.raises(
        ValueError,
        match=r"target_answer_kept=0.95: it needs at least 20 relevant texts with answers .* "
        r"these 19 records have 19",
    ):
        calibrate(model, make_records(19), target_answer_kept=0.95)
    assert calibrate(model, make_records(10), target_answer_kept=0.9)["counts"]["records"] == 10
    with pytest.raises(ValueError, match="needs at least 12 relevant texts"):
        calibrate(model, make_records(10), target_answer_kept=0.91)


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def model_dir(model: PruningEncoder, tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("calibrate") / "model"
    model.save_pretrained(directory)
    return str(directory)


@pytest.fixture
def data(tmp_path: Path) -> str:
    path = tmp_path / "records.jsonl"
    write_records(load_records(make_records()), path)
    return str(path)


def test_calibrate_json_plot_and_save_round_trip(
    model_dir: str, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved, plot = tmp_path / "calibrated", tmp_path / "curve.png"
    argv = ["calibrate", "--model", model_dir, "--data", data, "--target-answer-kept", "0.9"]
    assert main([*argv, "--json", "--plot", str(plot), "--save", str(saved)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"threshold", "target", "curve"} <= set(result)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = PruningEncoder.from_pretrained(saved, device="cpu")
    assert loaded.config.default_threshold == result["threshold"]
    original = PruningEncoder.from_pretrained(model_dir, device="cpu")
    question, context = "what is the capital?", make_records(1)[0]["texts"][0]
    assert loaded.process(question, context) == original.process(
        question, context, threshold=result["threshold"]
    )
    assert main(argv) == 0
    assert "<- chosen" in capsys.readouterr().out


def test_calibrate_that_reaches_nothing_saves_nothing(
    model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_records()
    rows[0]["answers"] = ["Lyon"]  # in no text: no threshold keeps every answer
    data = str(tmp_path / "records.jsonl")
    write_records(load_records(rows), data)
    saved = tmp_path / "calibrated"
    argv = ["calibrate", "--model", model_dir, "--data", data, "--target-answer-kept", "1"]
    assert main([*argv, "--save", str(saved)]) == 1
    captured = capsys.readouterr()
    assert "No threshold of 0.01..0.99 reaches answer kept >= 1 (the best is 0.958)" in captured.out
    assert f"error: nothing saved to {saved}" in captured.err
    assert not saved.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target-answer-kept", "1.5"], r"target_answer_kept must be within \(0, 1\]"),
        (["--target-answer-kept", "0.999"], "needs at least 1000 relevant texts"),
    ],
)
def test_calibrate_refusals_are_one_error_line(
    model_dir: str, data: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibrate", "--model", model_dir, "--data", data, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert __import__("re").search(message, err)


def test_calibrate_refuses_a_missing_file(
    model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", "--model", model_dir, "--data", "missing.jsonl", "--target-compression"]
    assert main([*argv, "0.5"]) == 2
    assert capsys.readouterr().err == (
        "error: cannot read --data missing.jsonl: No such file or directory\n"
    )


@pytest.mark.parametrize("family", ["provence", "zilliz"])
def test_imported_published_models_calibrate_and_save_the_same_way(
    family: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from published_formats import write_checkpoint

    checkpoint = write_checkpoint(family, tmp_path / family)
    data = tmp_path / "records.jsonl"
    write_records(load_records(make_records()), data)
    saved = tmp_path / "calibrated"
    argv = ["calibrate", "--model", str(checkpoint), "--data", str(data), "--json"]
    assert main([*argv, "--target-compression", "0.3", "--save", str(saved)]) == 0
    threshold = json.loads(capsys.readouterr().out)["threshold"]
    loaded = PruningEncoder.from_pretrained(saved, device="cpu")
    assert loaded.config.default_threshold == threshold
    imported = PruningEncoder.from_pretrained(checkpoint, device="cpu")
    assert imported.calibrate(data, target_compression=0.3)["threshold"] == threshold
